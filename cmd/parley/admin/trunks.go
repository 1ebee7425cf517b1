package admin

import (
	"fmt"
	"net/http"

	"github.com/parley-sip/parley/dialog/trunk"
)

// Trunks is what the API reads of the upstream providers (*trunk.Set).
type Trunks interface {
	// Trunks lists every trunk's registration state, in the config's
	// order; never a password.
	Trunks() []trunk.Status
}

// WithTrunks makes /api/trunks list the trunks of t. Without it the list
// is empty.
func WithTrunks(t Trunks) Option {
	return func(s *Server) error {
		if t == nil {
			return fmt.Errorf("%w: nil Trunks", ErrBadOption)
		}
		s.trunks = t
		return nil
	}
}

// registerTrunks adds the trunks to the API:
//
//	GET /api/trunks   every trunk: registrar, user, state (registering, registered, failed, unregistered), expiry, failures
func registerTrunks(mux *http.ServeMux, s *Server) {
	mux.HandleFunc("GET /api/trunks", func(w http.ResponseWriter, _ *http.Request) {
		list := []trunk.Status{}
		if s.trunks != nil {
			list = append(list, s.trunks.Trunks()...)
		}
		writeJSON(w, http.StatusOK, list)
	})
}

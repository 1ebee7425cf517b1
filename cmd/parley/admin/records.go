package admin

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/parley-sip/parley/dialog/cdr"
)

// Records is what the admin API needs to read call records: the Redis
// stream with store.redis, else the cdr.path file. *cdr.Stream and
// cdr.FileReader implement it.
type Records = cdr.Reader

// KickBody is the body of POST /api/users/{user}/kick.
type KickBody struct {
	// RegistrationsRemoved is how many bindings the user had.
	RegistrationsRemoved int `json:"registrations_removed"`
	// CallsEnded is how many of the user's calls were hung up.
	CallsEnded int `json:"calls_ended"`
}

// defaultRecent is how many records GET /api/cdr returns without n.
const defaultRecent = 50

// maxUserLen bounds the user a request names.
const maxUserLen = 128

// WithRecords makes /api/cdr read call records from r. Without it the
// list is empty: records are off.
func WithRecords(r Records) Option {
	return func(s *Server) error {
		if r == nil {
			return fmt.Errorf("%w: nil Records", ErrBadOption)
		}
		s.records = r
		return nil
	}
}

// registerRecords adds the call records and the users' endpoints to mux:
//
//	GET  /api/cdr?n=N&user=U       the newest N call records (default 50, at most 1000), U's only with user
//	POST /api/users/{user}/kick    remove the user's registrations and hang up the user's calls
//	                               ({"registrations_removed":N,"calls_ended":M}; the token is needed)
func registerRecords(mux *http.ServeMux, s *Server) {
	mux.HandleFunc("GET /api/cdr", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n := defaultRecent
		if v := q.Get("n"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > cdr.MaxRecent {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("n=%q: want 1 to %d records", v, cdr.MaxRecent))
				return
			}
		}
		user := q.Get("user")
		if len(user) > maxUserLen {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("user: at most %d bytes", maxUserLen))
			return
		}
		list := []cdr.Record{}
		if s.records != nil {
			var err error
			if list, err = s.records.Recent(r.Context(), n, user); err != nil {
				writeError(w, http.StatusServiceUnavailable, "call records cannot be read: "+err.Error())
				return
			}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /api/users/{user}/kick", func(w http.ResponseWriter, r *http.Request) {
		user := r.PathValue("user")
		if user == "" || len(user) > maxUserLen {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("user: want 1 to %d bytes", maxUserLen))
			return
		}
		// Registrations first, so that no new call reaches the phone
		// while its calls are hung up.
		body := KickBody{RegistrationsRemoved: s.regs.RemoveUser(user)}
		for _, c := range s.calls.Calls() {
			if (c.From == user || c.To == user) && s.calls.Hangup(c.ID) {
				body.CallsEnded++
			}
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("/api/cdr", notAllowedHere("GET, HEAD"))
	mux.HandleFunc("/api/users/{user}/kick", notAllowedHere("POST"))
}

// notAllowedHere answers a method an endpoint does not take, in JSON.
func notAllowedHere(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
	}
}

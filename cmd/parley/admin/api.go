package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/guard"
	"github.com/parley-sip/parley/dialog/store"
	"github.com/parley-sip/parley/registrar"
)

// RemovedBody is the body of a successful DELETE
// /api/registrations/{user}.
type RemovedBody struct {
	// Removed is how many bindings the user had.
	Removed int `json:"removed"`
}

// ErrorBody is the body of every error the API answers.
type ErrorBody struct {
	// Error says what went wrong, for an operator to read.
	Error string `json:"error"`
}

// registerAPI adds the JSON admin API to mux:
//
//	GET    /api/calls                 calls in progress, oldest first
//	DELETE /api/calls/{id}            hang up one call (204, or 404)
//	GET    /api/registrations         live bindings, by user
//	DELETE /api/registrations/{user}  remove a user's bindings ({"removed":N}, or 404)
//	GET    /api/bans                  banned source addresses, oldest expiry first
//	DELETE /api/bans/{addr}           lift the ban on one address (204, 404 without one, or 400)
//	GET    /api/nodes                 the cluster's nodes, by ID: heartbeat, alive, calls owned
//
// Every error is JSON too, including 404 for an unknown path and 405 for a
// method an endpoint does not take.
func registerAPI(mux *http.ServeMux, calls CallTable, regs Registrations, bans Bans, nodes Nodes) {
	mux.HandleFunc("GET /api/nodes", func(w http.ResponseWriter, _ *http.Request) {
		list := nodes.Nodes()
		if list == nil {
			list = []store.NodeInfo{}
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /api/calls", func(w http.ResponseWriter, _ *http.Request) {
		list := calls.Calls()
		if list == nil {
			list = []dialog.Snapshot{} // [] rather than null
		}
		sort.SliceStable(list, func(i, j int) bool {
			if !list[i].Start.Equal(list[j].Start) {
				return list[i].Start.Before(list[j].Start)
			}
			return list[i].ID < list[j].ID
		})
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("DELETE /api/calls/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !calls.Hangup(id) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no call with ID %q", id))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/registrations", func(w http.ResponseWriter, _ *http.Request) {
		list := regs.All()
		if list == nil {
			list = []registrar.Binding{}
		}
		// By user; within a user, the registrar's order (newest first).
		sort.SliceStable(list, func(i, j int) bool { return list[i].User < list[j].User })
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("DELETE /api/registrations/{user}", func(w http.ResponseWriter, r *http.Request) {
		user := r.PathValue("user")
		n := regs.RemoveUser(user)
		if n == 0 {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no registration for user %q", user))
			return
		}
		writeJSON(w, http.StatusOK, RemovedBody{Removed: n})
	})
	mux.HandleFunc("GET /api/bans", func(w http.ResponseWriter, _ *http.Request) {
		list := bans.Bans()
		if list == nil {
			list = []guard.Ban{}
		}
		sort.SliceStable(list, func(i, j int) bool {
			if !list[i].Until.Equal(list[j].Until) {
				return list[i].Until.Before(list[j].Until)
			}
			return list[i].Address < list[j].Address
		})
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("DELETE /api/bans/{addr}", func(w http.ResponseWriter, r *http.Request) {
		addr := r.PathValue("addr")
		// A malformed address is the operator's mistake, not a ban that
		// is missing: say so rather than answer 404.
		if _, err := netip.ParseAddr(addr); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not an IP address (bans are by source address, e.g. 192.0.2.7 or 2001:db8::7)", addr))
			return
		}
		if !bans.Unban(addr) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no ban on %s", addr))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	// The method-less patterns below only match what the ones above do
	// not, so the API answers JSON where the mux would answer text.
	notAllowed := func(allow string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		}
	}
	mux.HandleFunc("/api/calls", notAllowed("GET, HEAD"))
	mux.HandleFunc("/api/calls/{id}", notAllowed("DELETE"))
	mux.HandleFunc("/api/registrations", notAllowed("GET, HEAD"))
	mux.HandleFunc("/api/registrations/{user}", notAllowed("DELETE"))
	mux.HandleFunc("/api/bans", notAllowed("GET, HEAD"))
	mux.HandleFunc("/api/bans/{addr}", notAllowed("DELETE"))
	mux.HandleFunc("/api/nodes", notAllowed("GET, HEAD"))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s", r.URL.Path))
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

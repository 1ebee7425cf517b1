// Package admin is parley's admin HTTP server: the endpoints an operator,
// a monitoring system or a load balancer reaches over HTTP.
//
// It owns these routes:
//
//	GET    /healthz                   the process is up (always 200)
//	GET    /readyz                    200 once the SIP listeners are bound; 503 before, and while draining
//	GET    /metrics                   the Prometheus registry given by WithMetrics
//	GET    /api/calls                 calls in progress, oldest first
//	DELETE /api/calls/{id}            hang up one call (204, or 404)
//	GET    /api/registrations         live bindings, by user
//	DELETE /api/registrations/{user}  remove a user's bindings (RemovedBody, or 404)
//	GET    /api/bans                  banned source addresses, oldest expiry first
//	DELETE /api/bans/{addr}           lift the ban on one address (204; 404 without one; 400 for no IP address)
//	GET    /                          the live dashboard (ui/, embedded; ui.go)
//	GET    /ui/...                    the dashboard's script and style sheet
//	GET    /api/events                the dashboard's feed: server-sent "snapshot" events (DashboardState; events.go)
//	GET    /api/cdr?n=N&user=U        the newest call records, newest first (records.go)
//	POST   /api/users/{user}/kick     remove a user's registrations and hang up their calls (KickBody)
//	GET    /api/trunks                the upstream providers' registrations (trunk.Status; trunks.go)
//	GET    /debug/pprof/...           Go's profiler, only with WithPProf(true) (admin.pprof); 404 otherwise
//
// The API under /api/ answers JSON, errors included (ErrorBody), also for
// an unknown path (404) and a method an endpoint does not take (405).
//
// Two checks come before every route, because the admin server may be
// reachable from a browser or a hostile network:
//   - The Host header must name the listener itself: the host and port of
//     admin.listen, or localhost, 127.0.0.1 or [::1] with its port, or with
//     a listener on 0.0.0.0 or :: any address of this machine. Anything
//     else gets 403, so a web page that DNS rebinding points here is
//     refused. /healthz and /readyz are exempt, for probes by any address.
//   - A request that may change state (any method but GET and HEAD) must
//     carry Authorization: Bearer TOKEN with the token of WithToken,
//     compared in constant time; without it, or with another, it gets 401
//     with WWW-Authenticate: Bearer realm="parley". KeepToken makes and
//     keeps the token in the store directory when admin.token is empty,
//     where the operator commands find it.
//
// The dashboard is a page of plain HTML, CSS and JavaScript, embedded in
// the binary. It reads /api/events, whose streams are bounded (16 at
// once, each write within 5 s) and owned by the Server: Serve ends them
// all before it shuts the listener down. Its buttons call the API with
// the token the user types into the page, which keeps it in the browser's
// localStorage. The rooms in a snapshot are what GET /api/rooms answers,
// read through the Server's own routes, so the dashboard shows rooms
// whenever some other part of parley serves that endpoint.
//
// It reads calls through the CallTable interface, registrations through
// the Registrations interface and bans through the Bans interface, all
// defined here; cmd/parley plugs in the B2BUA (package dialog), the
// registrar and the guard (package dialog/guard). It does not know how
// any of them works, keeps no state of its own beyond readiness, and does
// not decide when parley is ready or draining: the wiring says so with
// SetReady and SetDraining.
//
// The operator commands (parley calls, parley hangup, parley registrations,
// parley bans, parley unban) are this API's client and live in package cli.
package admin

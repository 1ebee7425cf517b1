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
//	GET    /debug/pprof/...           Go's profiler, for finding what limits parley under load
//
// The API under /api/ answers JSON, errors included (ErrorBody), also for
// an unknown path (404) and a method an endpoint does not take (405).
//
// It reads calls through the CallTable interface and registrations through
// the Registrations interface, both defined here; cmd/parley plugs in the
// B2BUA (package dialog) and the registrar. It does not know how either
// works, keeps no state of its own beyond readiness, and does not decide
// when parley is ready or draining: the wiring says so with SetReady and
// SetDraining. Authentication is not its business either: the listener is
// on loopback by default (admin.listen).
//
// The operator commands (parley calls, parley hangup, parley registrations)
// are this API's client and live in package cli.
package admin

// Package cli holds parley's operator commands, for operators who live in
// a terminal:
//
//	parley calls                 the calls in progress, like who lists logins
//	parley hangup ID             end one call, like kill ends a process
//	parley registrations         the registered contacts
//
// Each is a client of a running parley's admin API (package admin): it
// finds the API from -admin, or from admin.listen in -config, or at
// admin.listen's default, and prints what the API answers as aligned
// columns (or, with -json, as the API's JSON). It owns the command lines,
// the HTTP client and the tables; it does not reach calls or registrations
// other than through the API.
package cli

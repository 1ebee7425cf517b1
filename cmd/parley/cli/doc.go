// Package cli holds parley's operator commands, for operators who live in
// a terminal:
//
//	parley calls                 the calls in progress, like who lists logins
//	parley hangup ID             end one call, like kill ends a process
//	parley registrations         the registered contacts
//	parley bans                  the banned source addresses
//	parley unban ADDR            lift the ban on one address
//	parley last [-n N] [USER]    the newest call records, like last lists logins
//	parley who                   who is registered, and on a call
//	parley kick USER             remove a user's registrations and end their calls
//
// Each is a client of a running parley's admin API (package admin): it
// finds the API from -admin, or from admin.listen in -config, or at
// admin.listen's default, and prints what the API answers as aligned
// columns (or, with -json, as the API's JSON). It owns the command lines,
// the HTTP client and the tables; it does not reach calls, registrations
// or bans other than through the API.
//
// The API refuses changes (parley hangup, parley unban, parley kick) without the admin
// token, which the commands send as a bearer token. They take it from
// -token, else $PARLEY_ADMIN_TOKEN, else admin.token in -config, else the
// file parley keeps it in (admin.TokenFile) in the store.path of -config
// or of the default config (./data), so that on parley's own host, in the
// directory it runs in, parley hangup and parley unban need no flag.
package cli

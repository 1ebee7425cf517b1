// Package dialog is parley's back-to-back user agent.
//
// It owns the SIP listeners, the call table and every call's two legs: it
// takes an INVITE, authenticates it, routes it (to a registered user, a
// configured route or a built-in service), places the second leg, relays
// provisional and final responses, and passes ACK, BYE, CANCEL and other
// in-dialog requests between the legs. Each call has one state machine (see
// State). It does not store registrations or check passwords itself: it
// reaches those through the Locator and Authenticator interfaces it defines,
// which cmd/parley plugs in. Media relaying belongs to package media.
package dialog

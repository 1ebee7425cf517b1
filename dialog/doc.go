// Package dialog is parley's back-to-back user agent.
//
// It owns the call table and every call's two legs: it takes an INVITE,
// authenticates it, routes it (to a registered user, a configured route or
// a built-in service), places the second leg, relays provisional and final
// responses, and passes ACK, BYE, CANCEL and other in-dialog requests
// between the legs. Each call has one state machine (state.go) and one
// owner, its queue (serial.go): every event of a call runs through it, in
// order, and an established call holds no goroutine.
//
// The layers below are packages of their own, which never import this
// one: dialog/transport binds the listeners and reads UDP, and
// dialog/transaction runs the UDP transactions; layers.go connects them.
// dialog/sipmsg builds responses and maps errors to them. Registrations,
// passwords, media and the built-in services are reached through the
// Locator, Authenticator, Media and Service interfaces defined here, which
// cmd/parley plugs in; the services themselves live beneath
// dialog/service. See ARCHITECTURE.md.
package dialog

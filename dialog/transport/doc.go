// Package transport is parley's SIP transport layer (RFC 3261 §18): it
// binds the listeners of sip.listen, reads UDP itself (one reading
// goroutine per socket, parsing on one goroutine per CPU chosen by
// Call-ID), parses with a lenient parser so bad headers can be answered
// 400, mends what it can of a request the parser refuses so the sender
// learns why (problem.go), and knows the address parley announces
// towards each destination.
//
// It hands what it reads to a Sink (the transaction layer) and never
// imports dialog. A Tap, when given (tap.go), is shown every message read
// and written, as bytes with its addresses (for HEP capture). TCP is served by sipgo on a GuardedListener around the
// Listener's socket (tcp.go), which bounds the connections it accepts
// (TCPLimits: how many in all and per source, idle and first-message
// timeouts, message size, framed by framer.go) and keeps accepting
// through errors that pass. TLS is the same guarded listener with
// WithTLS (tls.go): the handshake runs on a connection's first read, under
// the same limits, and Certificates swaps the certificate on reload.
// WebSocket listeners belong here too.
package transport

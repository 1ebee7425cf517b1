// Package transport is parley's SIP transport layer (RFC 3261 §18): it
// binds the listeners of sip.listen, reads UDP itself (one reading
// goroutine per socket, parsing on one goroutine per CPU chosen by
// Call-ID), parses with a lenient parser so bad headers can be answered
// 400, and knows the address parley announces towards each destination.
//
// It hands what it reads to a Sink (the transaction layer) and never
// imports dialog. TCP is served by sipgo on the Listener's socket; TLS and
// WebSocket listeners belong here too.
package transport

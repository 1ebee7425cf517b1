// Package transaction is parley's SIP transaction layer over UDP (RFC 3261
// §17, RFC 6026): server transactions that answer retransmissions from the
// last response and match CANCEL to INVITE, client transactions that
// retransmit on Timers A and E and ACK non-2xx finals, and one sweep that
// ends them all (Timers B, D, F, H, I, J, K, L, M).
//
// parley runs these instead of sipgo's for memory and CPU at high rates: a
// finished transaction keeps only its key and the bytes of its last
// response, and expires from a FIFO queue rather than a timer of its own.
// The layer is handed a Handler and the Ports to send on; it never imports
// dialog or transport. TCP, and requests to host names, stay with sipgo.
package transaction

// Package registrar owns SIP registration for parley's local users: digest
// authentication of requests (RFC 3261 §22, RFC 7616, RFC 8760), REGISTER
// processing as RFC 3261 §10.3 describes it, and the location service that
// maps an address-of-record to the contacts a phone registered, with the
// address and transport the REGISTER really came from (RFC 3581) so a call
// reaches a phone behind NAT over the same path.
//
// The in-memory location map is authoritative: lookups and updates never
// touch the disk. A [Store] keeps a copy that survives a restart; the
// [Registrar] writes to it from its own goroutine (see [Registrar.Run]) in
// batches, never once per REGISTER, and retries a failed write until it
// lands.
//
// Several nodes can share one Store, a [RedisStore] (a [Watcher]): each
// binding names the node that took the REGISTER ([WithNode], [WithNodeAddr])
// and so holds the phone's flow, every write is announced, and
// [Registrar.Run] applies what the other nodes write ([Registrar.Apply]), so
// a call entering any node finds the phone and the node to send it through.
// A node pings only its own phones, and writes them again when the shared
// store comes back from a restart.
//
// With [WithQualify] the Registrar also qualifies contacts: every interval
// it pings each binding with OPTIONS through a [Pinger], marks one that
// misses two pings in a row unreachable ([Registrar.Lookup] skips it) and
// restores it on the next answer or REGISTER. Reachability and round-trip
// time are in memory only, shown by [Registrar.All] and the parley_contacts
// and parley_contact_rtt_seconds metrics. Over UDP the pings also keep the
// phone's NAT binding open.
//
// The package does not route calls, build SIP requests of its own or know
// about dialogs: the dialog package asks [Registrar.Lookup] for contacts,
// uses [Digest.Authenticate] to challenge INVITEs and implements [Pinger].
// Responses come from the SIP message leaf, dialog/sipmsg: its RFC 3261
// §8.2.6 builder, and for a failure a *sipmsg.Error (with Min-Expires on a
// 423, Unsupported on a 420) that sipmsg.Response turns into the response,
// as dialog does with its own. That leaf is the only SIP package registrar
// imports; it never imports dialog.
//
// # Choices worth knowing
//
//   - Nonces are stateless: a timestamp sealed with an HMAC under a secret
//     the process draws at start (or [WithSecret]). A nonce is good for
//     [WithNonceLifetime] (5 minutes by default); after that a correct answer
//     earns a fresh challenge with stale=true. Nonce counts are not tracked,
//     so an answer can be replayed within the lifetime; REGISTER replays are
//     caught by the Call-ID/CSeq ordering of §10.3, and parley is meant for
//     networks where that is an acceptable trade for speed.
//   - Both challenges are offered side by side (RFC 8760), MD5 first by
//     default because SIPp 3.6 aborts on a leading SHA-256 challenge; see
//     [DefaultAlgorithms] and [WithAlgorithms].
//   - An unknown user name in credentials is answered exactly like a wrong
//     password (a fresh 401/407, counted as a failure), so responses do not
//     reveal which accounts exist.
package registrar

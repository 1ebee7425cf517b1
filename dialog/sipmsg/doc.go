// Package sipmsg is the leaf every SIP layer of parley shares: the RFC 3261
// §8.2.6 response builder, tags and branches, case-insensitive header
// lookups, and Error, the one error type that carries a SIP status.
//
// Handlers anywhere in parley (dialog, registrar, media, the services)
// return errors; Response turns any error into the response it maps to, so
// a Warning header is formatted in one place. The package imports only
// sipgo's sip package: the transport, the transactions, the B2BUA, the
// registrar and the media relay may all use it.
package sipmsg

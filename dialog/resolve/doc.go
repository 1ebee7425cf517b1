// Package resolve finds where a SIP request for a URI goes, the way RFC
// 3263 §4 says: a numeric host is used as it is; a host name with a port
// is looked up for A and AAAA records; with a transport, for that
// transport's SRV records (RFC 2782); with neither, for NAPTR records
// that lead to SRV records, then A and AAAA. The targets come back in the
// order a client tries them (RFC 3263 §4.3): SRV priority first, then a
// weighted random pick within a priority.
//
// It asks DNS servers through github.com/miekg/dns (the system's
// /etc/resolv.conf, or the servers it is given), caches answers for their
// TTL in a bounded cache, times every query out, and bounds what it takes
// from an answer (records, CNAME chains, TTLs), since an answer comes from
// the network. It imports none of parley's packages: the B2BUA resolves
// route targets with it, and other callers (trunks' registrars) can too.
//
// It does not send anything, keep state per target (RFC 3263 §4.3's
// blacklisting), or do DNSSEC.
package resolve

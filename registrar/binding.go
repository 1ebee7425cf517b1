package registrar

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Binding is one contact registered for a user: where to send requests for
// the address-of-record, and how the REGISTER reached us.
type Binding struct {
	// User is the user part of the address-of-record.
	User string `json:"user"`
	// Contact is the Contact URI as the phone sent it, with its URI
	// parameters but without the header's parameters (expires, q, ...).
	Contact string `json:"contact"`
	// Source is the "ip:port" the REGISTER came from (RFC 3581): send
	// requests there, not to the Contact host, to cross the phone's NAT.
	Source string `json:"source"`
	// Transport is "udp", "tcp" or "tls" (lowercase), the transport the REGISTER
	// used.
	Transport string `json:"transport"`
	// Expires is when the binding lapses.
	Expires time.Time `json:"expires"`
	// CallID and CSeq are those of the REGISTER that last wrote the binding;
	// RFC 3261 §10.3 step 7 orders updates by them.
	CallID string `json:"call_id"`
	CSeq   uint32 `json:"cseq"`
	// Q is the contact's ;q= preference, 1 when absent.
	Q float64 `json:"q"`
	// UserAgent is the User-Agent header of the REGISTER, if any.
	UserAgent string `json:"user_agent,omitempty"`
	// Node is the ID of the parley node that took the REGISTER and so
	// holds the phone's flow (see [WithNode]); empty for a binding written
	// by a node without one. Other nodes sharing the Store route calls for
	// the binding through that node.
	Node string `json:"node,omitempty"`
	// NodeAddr is Node's SIP address, "ip:port" (see [WithNodeAddr]): where
	// another node sends a call for the binding.
	NodeAddr string `json:"node_addr,omitempty"`

	// Reachable is what qualification (see [WithQualify]) last found:
	// [ReachableUnknown], [ReachableYes] or [ReachableNo]. It, RTT and
	// LastPing live in memory only; the Store never keeps them, and a
	// binding loaded at start is unknown again.
	Reachable string `json:"reachable"`
	// RTT is the round-trip time of the last answered ping; zero before the
	// first answer and while the contact is unreachable.
	RTT time.Duration `json:"rtt_ns,omitempty"`
	// LastPing is when the last ping finished, answered or not.
	LastPing time.Time `json:"last_ping,omitzero"`

	key   string // contactKey(Contact), cached for comparisons
	fails int    // pings in a row that got no answer
}

// Values of [Binding.Reachable]. A binding is routed to unless it is
// ReachableNo.
const (
	// ReachableUnknown is a binding not pinged since it was registered or
	// loaded, or one whose pings have failed fewer than qualifyFailures
	// times in a row before ever being answered.
	ReachableUnknown string = "unknown"
	// ReachableYes is a binding whose last ping was answered, or that was
	// unreachable and has since sent a REGISTER.
	ReachableYes string = "yes"
	// ReachableNo is a binding whose last qualifyFailures pings went
	// unanswered. Lookup skips it.
	ReachableNo string = "no"
)

// routable reports whether calls may be sent to the binding at now.
func (b *Binding) routable(now time.Time) bool {
	return b.live(now) && b.Reachable != ReachableNo
}

// carry keeps what qualification knew of old, the binding a REGISTER
// refresh replaces, when the refresh came over the same path (a ping result
// for another source says nothing about this one). A refresh is a sign of
// life, so an unreachable binding comes back as reachable and the failure
// count starts again.
func (b *Binding) carry(old *Binding) {
	if old.Source != b.Source || old.Transport != b.Transport {
		return
	}
	b.Reachable, b.RTT, b.LastPing = old.Reachable, old.RTT, old.LastPing
	if b.Reachable == ReachableNo {
		b.Reachable = ReachableYes
	}
}

// forget clears what qualification learnt: the Store keeps none of it.
func (b *Binding) forget() {
	b.Reachable, b.RTT, b.LastPing, b.fails = "", 0, time.Time{}, 0
}

// live reports whether the binding has not expired at now.
func (b *Binding) live(now time.Time) bool { return now.Before(b.Expires) }

// contactKey is the form two Contact URIs are compared in (RFC 3261 §10.3
// step 6 asks for the URI comparison of §19.1.4): scheme and host are
// case-insensitive, the rest is compared as written. This is stricter than
// §19.1.4 about parameter order, which only costs a phone that reorders its
// own URI parameters a duplicate binding until the old one expires.
func contactKey(u *sip.Uri) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(scheme(u)))
	b.WriteByte(':')
	if u.User != "" {
		b.WriteString(u.User)
		b.WriteByte('@')
	}
	b.WriteString(strings.ToLower(u.Host))
	if u.Port > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(u.Port))
	}
	if u.UriParams.Length() > 0 {
		b.WriteByte(';')
		b.WriteString(u.UriParams.ToString(';'))
	}
	return b.String()
}

// keyOf parses a stored Contact string back into its comparison key.
func keyOf(contact string) string {
	var u sip.Uri
	if err := sip.ParseUri(contact, &u); err != nil {
		return contact
	}
	return contactKey(&u)
}

package registrar

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// location is the authoritative in-memory location service: user →
// bindings, newest first. Every method is safe for concurrent use.
type location struct {
	mu    sync.RWMutex
	users map[string][]Binding
	count tally // bindings held, expired or not (the sweeper trims them)
	// maxContacts bounds one user's bindings (registrar.max_contacts); 0:
	// no bound.
	maxContacts int

	// onCount is called with the new count under mu whenever it changes.
	onCount func(tally)
	// onRestore, if set, is called under mu when a REGISTER refreshes a
	// binding that was unreachable.
	onRestore func(user, contact string)
	// onChange, if set, is called under mu with a user whose bindings this
	// node changed (a REGISTER, a removal, the sweep): the Registrar marks it
	// for the Store there, so no binding from another node can slip in
	// between the change and the mark (see replace).
	onChange func(user string)

	// node and nodeAddr are stamped on every binding a REGISTER writes
	// (WithNode, WithNodeAddr).
	node, nodeAddr string
}

// tally counts bindings by reachability, and by transport (udp, tcp, tls,
// in the order of Transports).
type tally struct {
	reachable, unreachable, unknown int
	transport                       [len(Transports)]int
}

// add counts b n times (n is 1 or -1).
func (t *tally) add(b *Binding, n int) {
	for i, tr := range Transports {
		if b.Transport == tr {
			t.transport[i] += n
		}
	}
	switch b.Reachable {
	case ReachableYes:
		t.reachable += n
	case ReachableNo:
		t.unreachable += n
	default:
		t.unknown += n
	}
}

// addAll counts every binding of bs n times.
func (t *tally) addAll(bs []Binding, n int) {
	for i := range bs {
		t.add(&bs[i], n)
	}
}

func (t tally) total() int { return t.reachable + t.unreachable + t.unknown }

func newLocation(onCount func(tally)) *location {
	return &location{users: map[string][]Binding{}, onCount: onCount}
}

// load puts stored bindings back, dropping expired ones. Within a user the
// stored order (newest first) is kept.
func (l *location) load(bs []Binding, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs {
		if !b.live(now) || b.User == "" {
			continue
		}
		b.key = keyOf(b.Contact)
		b.forget()
		b.Reachable = ReachableUnknown
		l.users[b.User] = append(l.users[b.User], b)
		l.count.add(&b, 1)
	}
	l.onCount(l.count)
}

// lookup returns copies of user's bindings that calls may go to (unexpired
// and not unreachable), newest first.
func (l *location) lookup(user string, now time.Time) []Binding {
	l.mu.RLock()
	defer l.mu.RUnlock()
	cur := l.users[user]
	out := make([]Binding, 0, len(cur))
	for _, b := range cur {
		if b.routable(now) {
			out = append(out, b)
		}
	}
	return out
}

// all returns copies of every unexpired binding, reachable or not, sorted
// by user and newest first within a user.
func (l *location) all(now time.Time) []Binding {
	l.mu.RLock()
	defer l.mu.RUnlock()
	users := make([]string, 0, len(l.users))
	n := 0
	for u, bs := range l.users {
		users = append(users, u)
		n += len(bs)
	}
	slices.Sort(users)
	out := make([]Binding, 0, n)
	for _, u := range users {
		for _, b := range l.users[u] {
			if b.live(now) {
				out = append(out, b)
			}
		}
	}
	return out
}

// snapshot returns a copy of user's bindings for the store, without what
// qualification learnt.
func (l *location) snapshot(user string) []Binding {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := slices.Clone(l.users[user])
	for i := range out {
		out[i].forget()
	}
	return out
}

// remove drops every binding of user. It returns how many were live and
// whether anything was held at all (expired bindings not yet swept count
// for the second but not the first).
func (l *location) remove(user string, now time.Time) (live int, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bs, ok := l.users[user]
	if !ok {
		return 0, false
	}
	for i := range bs {
		if bs[i].live(now) {
			live++
		}
	}
	l.count.addAll(bs, -1)
	delete(l.users, user)
	l.onCount(l.count)
	l.changed(user)
	return live, true
}

// qualified records the outcome of a ping sent to b (err nil: answered in
// rtt). The result counts only if the binding is still there with the
// same contact, source and transport: one removed or re-registered from
// elsewhere while the ping was out is left alone. It returns the
// reachability before and after; both are "" when the result was dropped.
func (l *location) qualified(b *Binding, rtt time.Duration, err error, now time.Time) (was, is string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bs := l.users[b.User]
	i := slices.IndexFunc(bs, func(c Binding) bool {
		return c.key == b.key && c.Source == b.Source && c.Transport == b.Transport
	})
	if i < 0 {
		return "", ""
	}
	cur := &bs[i]
	was = cur.Reachable
	l.count.add(cur, -1)
	cur.LastPing = now
	if err == nil {
		cur.fails = 0
		cur.RTT = rtt
		cur.Reachable = ReachableYes
	} else {
		cur.fails++
		if cur.fails >= qualifyFailures {
			cur.Reachable = ReachableNo
			cur.RTT = 0
		}
	}
	l.count.add(cur, 1)
	if cur.Reachable != was {
		l.onCount(l.count)
	}
	return was, cur.Reachable
}

// contactUpdate is one Contact of a REGISTER, already validated.
type contactUpdate struct {
	key     string // contactKey of the URI
	contact string // the URI as sent
	expires int    // seconds, already bounded; 0 removes
	q       float64
}

// registerUpdate is everything a REGISTER asks of one address-of-record.
type registerUpdate struct {
	user      string
	wildcard  bool // Contact: * with Expires: 0
	contacts  []contactUpdate
	callID    string
	cseq      uint32
	source    string
	transport string
	userAgent string
}

// apply performs RFC 3261 §10.3 steps 6-7 atomically: either every contact
// is processed or, on a Call-ID/CSeq ordering violation, nothing changes.
// It returns the user's live bindings afterwards, how many were live before,
// and whether anything changed.
func (l *location) apply(u *registerUpdate, now time.Time) (bs []Binding, before int, changed bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.users[u.user]

	// Step 7: for an existing binding with the same Call-ID, only a higher
	// CSeq may change it; otherwise the whole request fails. Checked before
	// anything is touched so a failure leaves the bindings as they were.
	outOfOrder := func(b *Binding) bool { return b.CallID == u.callID && u.cseq <= b.CSeq }
	for i := range cur {
		b := &cur[i]
		if !b.live(now) {
			continue
		}
		before++
		if u.wildcard && outOfOrder(b) {
			return nil, 0, false, errOutOfOrder
		}
		for _, c := range u.contacts {
			if c.key == b.key && outOfOrder(b) {
				return nil, 0, false, errOutOfOrder
			}
		}
	}

	next := make([]Binding, 0, len(cur)+len(u.contacts))
	if !u.wildcard {
		// Dead bindings go now rather than at the next sweep.
		for _, b := range cur {
			if b.live(now) {
				next = append(next, b)
			}
		}
		for _, c := range u.contacts {
			var old Binding
			i := slices.IndexFunc(next, func(b Binding) bool { return b.key == c.key })
			if i >= 0 {
				old = next[i]
				next = slices.Delete(next, i, i+1)
			}
			if c.expires == 0 {
				continue
			}
			b := Binding{
				User:      u.user,
				Contact:   c.contact,
				Source:    u.source,
				Transport: u.transport,
				Expires:   now.Add(time.Duration(c.expires) * time.Second),
				CallID:    u.callID,
				CSeq:      u.cseq,
				Q:         c.q,
				UserAgent: u.userAgent,
				Node:      l.node,
				NodeAddr:  l.nodeAddr,
				Reachable: ReachableUnknown,
				key:       c.key,
			}
			if i >= 0 {
				b.carry(&old)
				if old.Reachable == ReachableNo && l.onRestore != nil {
					l.onRestore(u.user, c.contact)
				}
			}
			next = slices.Insert(next, 0, b)
		}
	}
	if l.maxContacts > 0 && len(next) > l.maxContacts && len(next) > before {
		// A REGISTER that would leave the user more bindings than allowed
		// fails whole; refreshing or removing within the bound works.
		return nil, 0, false, &sipmsg.Error{Code: 403, Reason: "Forbidden",
			Warning: fmt.Sprintf("too many contacts: registrar.max_contacts is %d", l.maxContacts)}
	}
	changed = u.wildcard && len(cur) > 0 || len(u.contacts) > 0
	if changed {
		l.count.addAll(cur, -1)
		l.count.addAll(next, 1)
		if len(next) == 0 {
			delete(l.users, u.user)
		} else {
			l.users[u.user] = next
		}
		l.onCount(l.count)
		l.changed(u.user)
	} else {
		next = cur
	}
	bs = make([]Binding, 0, len(next))
	for _, b := range next {
		if b.live(now) {
			bs = append(bs, b)
		}
	}
	return bs, before, changed, nil
}

// sweep removes expired bindings and returns the users it changed. It finds
// them under the read lock first, so a sweep that finds nothing (the usual
// case, once a second) never blocks registrations.
func (l *location) sweep(now time.Time) []string {
	var stale []string
	l.mu.RLock()
	for user, bs := range l.users {
		for i := range bs {
			if !bs[i].live(now) {
				stale = append(stale, user)
				break
			}
		}
	}
	l.mu.RUnlock()
	if len(stale) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var changed []string
	for _, user := range stale {
		bs := l.users[user]
		kept := bs[:0:0]
		for _, b := range bs {
			if b.live(now) {
				kept = append(kept, b)
			}
		}
		if len(kept) == len(bs) {
			continue // refreshed since the read pass
		}
		l.count.addAll(bs, -1)
		l.count.addAll(kept, 1)
		if len(kept) == 0 {
			delete(l.users, user)
		} else {
			l.users[user] = kept
		}
		changed = append(changed, user)
		l.changed(user)
	}
	if len(changed) > 0 {
		l.onCount(l.count)
	}
	return changed
}

// changed reports a change this node made to user's bindings; l.mu is held.
func (l *location) changed(user string) {
	if l.onChange != nil {
		l.onChange(user)
	}
}

// replace puts bs, user's bindings as another node wrote them to the shared
// Store, in place of what the location holds, dropping expired ones and
// keeping bs's order. What qualification knew of a binding that bs still
// has over the same path is kept. If holdBack, asked under mu, says this
// node has a change of its own for user on its way to the Store, nothing is
// replaced (that change is newer: it will overwrite bs there) and replace
// reports false.
func (l *location) replace(user string, bs []Binding, now time.Time, holdBack func(user string) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if holdBack(user) {
		return false
	}
	cur := l.users[user]
	next := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if !b.live(now) || b.Contact == "" {
			continue
		}
		b.User = user
		b.key = keyOf(b.Contact)
		b.forget()
		b.Reachable = ReachableUnknown
		i := slices.IndexFunc(cur, func(c Binding) bool {
			return c.key == b.key && c.Source == b.Source && c.Transport == b.Transport
		})
		if i >= 0 {
			old := &cur[i]
			if old.CallID == b.CallID && old.CSeq == b.CSeq && old.Expires.Equal(b.Expires) {
				// The same registration written again: nothing new is known.
				b.Reachable, b.RTT, b.LastPing, b.fails = old.Reachable, old.RTT, old.LastPing, old.fails
			} else {
				b.carry(old)
			}
		}
		next = append(next, b)
	}
	l.count.addAll(cur, -1)
	l.count.addAll(next, 1)
	if len(next) == 0 {
		delete(l.users, user)
	} else {
		l.users[user] = next
	}
	l.onCount(l.count)
	return true
}

// owned returns the users holding an unexpired binding that node took.
func (l *location) owned(node string, now time.Time) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []string
	for user, bs := range l.users {
		if slices.ContainsFunc(bs, func(b Binding) bool { return b.Node == node && b.live(now) }) {
			out = append(out, user)
		}
	}
	return out
}

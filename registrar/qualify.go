package registrar

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Pinger sends one OPTIONS to a binding's contact (Request-URI b.Contact,
// sent to b.Source over b.Transport) and returns the round-trip time. Any
// final response, even 4xx/5xx (404, 405 or 501 from phones that do not
// implement OPTIONS), means the contact is reachable; only a timeout or a
// transport error is an error. Ping must return once ctx is done: Run waits
// for pings in flight before it returns. The dialog package implements it.
type Pinger interface {
	Ping(ctx context.Context, b Binding) (time.Duration, error)
}

// How qualification paces and judges its pings.
const (
	// qualifyFailures is how many pings in a row must go unanswered before a
	// binding is marked unreachable. One lost exchange is not enough: a
	// phone busy rebooting its network or a burst of loss on a Wi-Fi link
	// should not take it out of routing for a whole interval. The next
	// answered ping (or a REGISTER) restores it.
	qualifyFailures = 2
	// qualifyConcurrency bounds the pings in flight. When many contacts
	// stop answering, each holds its slot for the whole timeout and a round
	// stretches past its interval; the rounds that would have started
	// meanwhile are skipped, not queued.
	qualifyConcurrency = 32
	// qualifyTimeout bounds one ping, and so does the interval if it is
	// shorter. Over UDP the Pinger's transaction retransmits inside it
	// (RFC 3261 timer E: at 0.5, 1.5 and 3.5 s), so a contact gets four
	// tries per ping; a phone that has not answered by then is not one a
	// caller would wait for either.
	qualifyTimeout = 5 * time.Second
)

// qualify runs rounds of pings, one per interval, until ctx is done. The
// first round starts one interval after Run, when the SIP listeners are
// surely up; until then, and for any binding registered since the last
// round, reachability is unknown, which routes like reachable.
func (r *Registrar) qualify(ctx context.Context) {
	tick := time.NewTicker(r.qualifyEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.qualifyRound(ctx)
	}
}

// qualifyRound pings every unexpired binding once, starting the pings
// evenly over one interval rather than all at once (thousands of OPTIONS in
// one burst would be a self-inflicted flood), at most qualifyConcurrency at
// a time. Each binding keeps its place in the round (the order of All), so
// it is pinged about once per interval. The round returns when every ping
// it started has finished.
func (r *Registrar) qualifyRound(ctx context.Context) {
	// Bindings another node took are its to ping: from here the phone's
	// NAT would not let the ping through.
	targets := slices.DeleteFunc(r.loc.all(r.now()), func(b Binding) bool { return !r.owns(&b) })
	if len(targets) == 0 {
		return
	}
	gap := r.qualifyEvery / time.Duration(len(targets))
	timeout := min(r.qualifyEvery, qualifyTimeout)
	sem := make(chan struct{}, qualifyConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	for i, b := range targets {
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.ping(ctx, b, timeout)
		})
	}
}

// ping qualifies one binding and records the outcome.
func (r *Registrar) ping(ctx context.Context, b Binding, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	rtt, err := r.pinger.Ping(pctx, b)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: says nothing about the contact
	}
	if err == nil {
		r.rtt.Observe(rtt.Seconds())
	}
	was, is := r.loc.qualified(&b, rtt, err, r.now())
	switch {
	case was == "":
		// Removed, expired or re-registered from elsewhere meanwhile.
	case is == ReachableNo && was != ReachableNo:
		r.log.Info("registrar: contact unreachable", "user", b.User, "contact", b.Contact,
			"source", b.Source, "transport", b.Transport, "failures", qualifyFailures, "err", err)
	case was == ReachableNo && is != ReachableNo:
		r.log.Info("registrar: contact reachable again", "user", b.User, "contact", b.Contact,
			"source", b.Source, "transport", b.Transport, "rtt", rtt)
	case err != nil:
		r.log.Debug("registrar: contact did not answer a ping", "user", b.User, "contact", b.Contact,
			"source", b.Source, "transport", b.Transport, "err", err)
	}
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster's bans live beside the checkpoints: one key per banned
// address, expiring with its ban, so that a node that starts or
// reconnects finds the bans in force; and a pub/sub channel that tells the
// nodes connected now of each ban and lift at once.

// bansChannel carries every ban and lift, as a banMessage.
const bansChannel = keyPrefix + "bans"

// banKeyPrefix begins every ban's key.
const banKeyPrefix = keyPrefix + "ban:"

// banKey holds the ban on addr, as a banRecord.
func banKey(addr netip.Addr) string { return banKeyPrefix + addr.String() }

// banScanCount is the COUNT hint of each SCAN for bans.
const banScanCount = 500

// banRetry is how often Watch tries again to read the bans in force after
// a read failed.
const banRetry = time.Second

// banSweep is how often Watch forgets the expired bans it applied.
const banSweep = time.Minute

// banRecord is what a ban's key holds.
type banRecord struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	Node   string    `json:"node"`
}

// banMessage is what bansChannel carries: a ban, or with a zero until a
// lift.
type banMessage struct {
	Addr   string    `json:"addr"`
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason,omitempty"`
	Node   string    `json:"node"`
}

// Publish records a ban on addr until `until`, or with a zero until lifts
// it, and tells every node watching: the key parley:ban:<addr> expires at
// until (PXAT) or is deleted, and the change goes out on parley:bans, in
// one MULTI/EXEC transaction. It implements the guard's BanStore.
func (r *Redis) Publish(ctx context.Context, addr netip.Addr, until time.Time, reason string) error {
	return r.done(opBanPublish, r.publish(ctx, addr, until, reason))
}

func (r *Redis) publish(ctx context.Context, addr netip.Addr, until time.Time, reason string) error {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return errors.New("publish a ban: no address")
	}
	msg, err := json.Marshal(banMessage{Addr: addr.String(), Until: until, Reason: reason, Node: r.node})
	if err != nil {
		return fmt.Errorf("publish the ban on %s: %w", addr, err)
	}
	var rec []byte
	if !until.IsZero() {
		if rec, err = json.Marshal(banRecord{Until: until, Reason: reason, Node: r.node}); err != nil {
			return fmt.Errorf("publish the ban on %s: %w", addr, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if until.IsZero() {
			p.Del(ctx, banKey(addr))
		} else {
			// A PXAT in the past stores a key that is gone at once.
			p.Do(ctx, "SET", banKey(addr), rec, "PXAT", max(until.UnixMilli(), 1))
		}
		p.Publish(ctx, bansChannel, msg)
		return nil
	})
	if err != nil {
		what := "ban on"
		if until.IsZero() {
			what = "lift of the ban on"
		}
		return fmt.Errorf("publish the %s %s to redis: %w", what, addr, err)
	}
	r.mu.Lock()
	delete(r.banned, addr) // this node's own: never lifted by a resync
	r.mu.Unlock()
	return nil
}

// Watch subscribes to parley:bans and calls apply for every ban and lift
// another node publishes, until ctx ends; then it unsubscribes and
// returns nil. It implements the guard's BanStore.
//
// Redis pub/sub reaches only those subscribed, so each time the
// subscription is (re)established (go-redis reconnects on its own and
// reports a *redis.Subscription each time) Watch reads every ban in force
// with SCAN and applies it, and lifts the bans of other nodes it applied
// before whose key is gone before their expiry: they were lifted while
// this node was not listening. A read that fails is tried again every
// second.
func (r *Redis) Watch(ctx context.Context, apply func(addr netip.Addr, until time.Time, reason string)) error {
	ps := r.client.Subscribe(ctx, bansChannel)
	msgs := ps.ChannelWithSubscriptions()
	defer func() {
		_ = ps.Close()
		// go-redis's reader goroutine closes msgs once it sees the PubSub
		// closed; it may be blocked handing over a message until then.
		for range msgs {
		}
	}()
	retry := time.NewTicker(banRetry)
	defer retry.Stop()
	owed := false // a resynchronisation, after a failed read
	swept := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, open := <-msgs:
			if !open {
				return r.done(opBanWatch, errors.New("watch bans in redis: subscription closed"))
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					owed = !r.resyncBans(ctx, apply)
				}
			case *redis.Message:
				r.applyBanMessage(m.Payload, apply)
			}
		case now := <-retry.C:
			if owed {
				owed = !r.resyncBans(ctx, apply)
			}
			if now.Sub(swept) >= banSweep {
				r.sweepBanned(now)
				swept = now
			}
		}
	}
}

// applyBanMessage applies a message of parley:bans, unless this node sent
// it.
func (r *Redis) applyBanMessage(payload string, apply func(netip.Addr, time.Time, string)) {
	var m banMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		r.errs.WithLabelValues(opBanWatch).Inc()
		return
	}
	if m.Node == r.node {
		return
	}
	addr, err := netip.ParseAddr(m.Addr)
	if err != nil {
		r.errs.WithLabelValues(opBanWatch).Inc()
		return
	}
	addr = addr.Unmap()
	r.mu.Lock()
	if m.Until.IsZero() {
		delete(r.banned, addr)
	} else {
		r.banned[addr] = m.Until
	}
	r.mu.Unlock()
	apply(addr, m.Until, m.Reason)
}

// resyncBans applies every ban in force, and lifts those of other nodes
// applied before that are gone early. It reports whether the read worked.
func (r *Redis) resyncBans(ctx context.Context, apply func(netip.Addr, time.Time, string)) bool {
	bans, err := r.bansInForce(ctx)
	if r.done(opBanWatch, err) != nil {
		return false
	}
	now := time.Now()
	var lifted []netip.Addr
	r.mu.Lock()
	for addr, until := range r.banned {
		if _, ok := bans[addr]; ok {
			continue
		}
		delete(r.banned, addr)
		if now.Before(until) {
			lifted = append(lifted, addr)
		}
	}
	for addr, b := range bans {
		if b.Node != r.node {
			r.banned[addr] = b.Until
		}
	}
	r.mu.Unlock()
	for _, addr := range lifted {
		apply(addr, time.Time{}, "")
	}
	for addr, b := range bans {
		apply(addr, b.Until, b.Reason)
	}
	return true
}

// sweepBanned forgets the bans of other nodes that have expired by now.
func (r *Redis) sweepBanned(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, until := range r.banned {
		if !now.Before(until) {
			delete(r.banned, addr)
		}
	}
}

// bansInForce reads every ban's key. A key that is not a ban (or not one
// this build can read) is skipped.
func (r *Redis) bansInForce(ctx context.Context) (map[netip.Addr]banRecord, error) {
	out := map[netip.Addr]banRecord{}
	var cursor uint64
	for {
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		keys, next, err := r.client.Scan(cctx, cursor, banKeyPrefix+"*", banScanCount).Result()
		var vals []any
		if err == nil && len(keys) > 0 {
			vals, err = r.client.MGet(cctx, keys...).Result()
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read the bans in redis: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // expired since the SCAN
			}
			addr, err := netip.ParseAddr(strings.TrimPrefix(keys[i], banKeyPrefix))
			var b banRecord
			if err != nil || json.Unmarshal([]byte(s), &b) != nil || b.Until.IsZero() {
				continue
			}
			out[addr.Unmap()] = b
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

package registrar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Where the Redis store keeps bindings and announces changes.
const (
	// redisKeyPrefix + user is the key holding the JSON array of the user's
	// bindings, newest first, expiring with the last of them.
	redisKeyPrefix = "parley:reg:"
	// redisChannel carries a redisChange after every write.
	redisChannel = "parley:reg"
	// redisScanCount is the COUNT hint of each SCAN step, and the most keys
	// read by one MGET.
	redisScanCount = 500
	// redisTimeout bounds one operation of Load or SaveBatch, which have no
	// context of their own.
	redisTimeout = 10 * time.Second
	// DefaultRedisPingInterval is how often Watch checks that Redis answers
	// (see [RedisStore.Healthy]).
	DefaultRedisPingInterval = 5 * time.Second
)

// redisChange is the message published on redisChannel after a write:
// which node wrote, and the users whose key it changed.
type redisChange struct {
	Node  string   `json:"node"`
	Users []string `json:"users"`
}

// RedisStore keeps bindings in Redis, shared by every parley node that uses
// the same database (store.redis), so a phone registered through one node is
// found by a call entering another. It is a [BatchStore] and a [Watcher].
//
// Each user's bindings are one key, parley:reg:<user>, holding their JSON
// array; the key expires when the last of them does, so the bindings of a
// node that died go on their own. Every write is one MULTI/EXEC that also
// publishes the changed users on the channel parley:reg; Watch reads those
// users back on the other nodes. Conflicting writes for one user from two
// nodes at the same moment are settled by Redis's order: the later wins.
type RedisStore struct {
	client    *redis.Client
	node      string
	log       *slog.Logger
	pingEvery time.Duration
	errs      *prometheus.CounterVec

	// syncMu makes SaveBatch and Watch's read-then-apply exclusive, so Watch
	// never applies a value it read before a write of this node that
	// finished before the apply.
	syncMu sync.Mutex

	mu       sync.Mutex
	closed   bool
	writeErr error // of the last SaveBatch; nil once one succeeds
	readErr  error // of the last ping, load or get; nil once one succeeds
	// known holds the users Redis held at the last resynchronisation, and
	// those written or applied since: a resynchronisation empties those no
	// longer there.
	known    map[string]struct{}
	onResync func()
	refresh  map[string]struct{}
	// refreshC wakes Watch when refresh has users.
	refreshC chan struct{}
}

// RedisOption configures a RedisStore. It returns an error for a value it
// cannot use.
type RedisOption func(*RedisStore) error

// WithRedisNode sets the ID this node publishes its changes under, so that
// its own Watch ignores them. Use the same ID as [WithNode]. Without it the
// store draws a random one.
func WithRedisNode(id string) RedisOption {
	return func(s *RedisStore) error {
		if id == "" {
			return fmt.Errorf("%w: empty Redis node ID", ErrBadOption)
		}
		s.node = id
		return nil
	}
}

// WithRedisLogger sets the logger; the default discards.
func WithRedisLogger(l *slog.Logger) RedisOption {
	return func(s *RedisStore) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrBadOption)
		}
		s.log = l
		return nil
	}
}

// WithRedisPingInterval sets how often Watch pings Redis to keep
// [RedisStore.Healthy] current, and retries a resynchronisation that failed.
func WithRedisPingInterval(d time.Duration) RedisOption {
	return func(s *RedisStore) error {
		if d <= 0 {
			return fmt.Errorf("%w: Redis ping interval %v must be positive", ErrBadOption, d)
		}
		s.pingEvery = d
		return nil
	}
}

// OpenRedisStore returns a Store on the Redis database client talks to,
// after checking with a PING (under ctx) that it answers. The caller keeps
// client: Close leaves it open.
func OpenRedisStore(ctx context.Context, client *redis.Client, opts ...RedisOption) (*RedisStore, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrBadOption)
	}
	s := &RedisStore{
		client:    client,
		log:       slog.New(slog.DiscardHandler),
		pingEvery: DefaultRedisPingInterval,
		errs:      newStoreErrors("redis"),
		known:     map[string]struct{}{},
		refresh:   map[string]struct{}{},
		refreshC:  make(chan struct{}, 1),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.node == "" {
		s.node = randomNodeID()
	}
	if err := client.Ping(ctx).Err(); err != nil {
		s.fail("ping", err)
		return nil, fmt.Errorf("registrar: redis store: %w", err)
	}
	return s, nil
}

// randomNodeID names a node that was given no ID.
func randomNodeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "node-" + hex.EncodeToString(b[:])
}

// errorCounter hands parley_store_errors_total to the Registrar (see
// storeMetrics).
func (s *RedisStore) errorCounter() *prometheus.CounterVec { return s.errs }

// Healthy returns nil while Redis works: the last write succeeded and so did
// the last ping, load or read (Watch pings every [WithRedisPingInterval]).
// Otherwise it returns the failure, for a readiness check.
func (s *RedisStore) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.writeErr != nil:
		return fmt.Errorf("registrar: redis store: last write failed: %w", s.writeErr)
	case s.readErr != nil:
		return fmt.Errorf("registrar: redis store: %w", s.readErr)
	}
	return nil
}

// fail counts a failed op and records it for Healthy.
func (s *RedisStore) fail(op string, err error) {
	s.errs.WithLabelValues(op).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "save" {
		s.writeErr = err
	} else if op != "decode" {
		s.readErr = err
	}
}

// ok clears the failure Healthy reports for the kind of op that just
// succeeded.
func (s *RedisStore) ok(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "save" {
		s.writeErr = nil
	} else {
		s.readErr = nil
	}
}

func (s *RedisStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Load reads every user's bindings, walking the keys with SCAN (never KEYS,
// which would stall Redis on a large database). A record that is not valid
// JSON is skipped and counted.
func (s *RedisStore) Load() ([]Binding, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	users, err := s.loadUsers(ctx)
	if err != nil {
		s.fail("load", err)
		return nil, err
	}
	s.mu.Lock()
	for u := range users {
		s.known[u] = struct{}{}
	}
	s.mu.Unlock()
	var out []Binding
	for _, bs := range users {
		out = append(out, bs...)
	}
	return out, nil
}

// loadUsers reads every parley:reg:* key. The caller counts a failure.
func (s *RedisStore) loadUsers(ctx context.Context) (map[string][]Binding, error) {
	out := map[string][]Binding{}
	var cursor uint64
	for {
		keys, next, err := s.client.Scan(ctx, cursor, redisKeyPrefix+"*", redisScanCount).Result()
		if err != nil {
			return nil, fmt.Errorf("registrar: redis store: load: %w", err)
		}
		users := make([]string, len(keys))
		for i, k := range keys {
			users[i] = strings.TrimPrefix(k, redisKeyPrefix)
		}
		got, err := s.get(ctx, users)
		if err != nil {
			return nil, fmt.Errorf("registrar: redis store: load: %w", err)
		}
		for u, bs := range got {
			if len(bs) > 0 {
				out[u] = bs
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	s.ok("load")
	return out, nil
}

// get reads users' keys with MGET, at most redisScanCount at a time. A user
// whose key is gone maps to nil; a damaged record is left out.
func (s *RedisStore) get(ctx context.Context, users []string) (map[string][]Binding, error) {
	out := make(map[string][]Binding, len(users))
	for chunk := range slices.Chunk(users, redisScanCount) {
		keys := make([]string, len(chunk))
		for i, u := range chunk {
			keys[i] = redisKeyPrefix + u
		}
		vals, err := s.client.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			u := chunk[i]
			text, isString := v.(string)
			if !isString {
				out[u] = nil // no such key
				continue
			}
			var bs []Binding
			if err := json.Unmarshal([]byte(text), &bs); err != nil {
				// One damaged record must not lose everyone's bindings.
				s.fail("decode", err)
				s.log.Warn("registrar: redis store: skipping a damaged record", "key", keys[i], "err", err)
				continue
			}
			for j := range bs {
				bs[j].User = u
			}
			out[u] = bs
		}
	}
	return out, nil
}

// Save replaces the bindings of user; an empty bs deletes the user.
func (s *RedisStore) Save(user string, bs []Binding) error {
	return s.SaveBatch(map[string][]Binding{user: bs})
}

// SaveBatch writes the whole batch in one MULTI/EXEC: each user's key set
// and made to expire (PEXPIREAT) with the latest of its bindings, or
// deleted when the user has none, and then the changed users published on
// parley:reg for the other nodes, so the announcement goes out exactly when
// the write lands.
func (s *RedisStore) SaveBatch(batch map[string][]Binding) error {
	if s.isClosed() {
		return ErrClosed
	}
	if len(batch) == 0 {
		return nil
	}
	users := make([]string, 0, len(batch))
	values := make(map[string][]byte, len(batch))
	for u, bs := range batch {
		users = append(users, u)
		if len(bs) == 0 {
			continue
		}
		v, err := json.Marshal(bs)
		if err != nil {
			return fmt.Errorf("registrar: redis store: encode %s: %w", u, err)
		}
		values[u] = v
	}
	slices.Sort(users)
	msg, err := json.Marshal(redisChange{Node: s.node, Users: users})
	if err != nil {
		return fmt.Errorf("registrar: redis store: encode change: %w", err)
	}

	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			key := redisKeyPrefix + u
			v, ok := values[u]
			if !ok {
				p.Del(ctx, key)
				continue
			}
			p.Set(ctx, key, v, 0)
			// A time already past deletes the key, as it should.
			p.PExpireAt(ctx, key, latestExpiry(batch[u]))
		}
		p.Publish(ctx, redisChannel, msg)
		return nil
	})
	if err != nil {
		s.fail("save", err)
		return fmt.Errorf("registrar: redis store: save %d users: %w", len(users), err)
	}
	s.ok("save")
	s.mu.Lock()
	for _, u := range users {
		if _, ok := values[u]; ok {
			s.known[u] = struct{}{}
		} else {
			delete(s.known, u)
		}
	}
	s.mu.Unlock()
	return nil
}

// latestExpiry is when the last of bs expires.
func latestExpiry(bs []Binding) time.Time {
	var t time.Time
	for _, b := range bs {
		if b.Expires.After(t) {
			t = b.Expires
		}
	}
	return t
}

// Close makes later reads and writes fail with ErrClosed. It does not close
// the Redis client, which the caller owns, nor stop Watch, which its
// context does.
func (s *RedisStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// OnResync sets the function Watch calls before each resynchronisation
// (see [Watcher]).
func (s *RedisStore) OnResync(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onResync = f
}

// Refresh has Watch read users again and apply them (see [Watcher]). It
// does not block.
func (s *RedisStore) Refresh(users ...string) {
	if len(users) == 0 {
		return
	}
	s.mu.Lock()
	for _, u := range users {
		s.refresh[u] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.refreshC <- struct{}{}:
	default:
	}
}

// Watch subscribes to parley:reg and calls apply for every user another
// node changed, with the bindings its key now holds (none when it is gone),
// until ctx ends; then it unsubscribes and returns nil. Messages this node
// published are skipped.
//
// Redis pub/sub delivers only to those connected, so each time the
// subscription is (re)established (go-redis reconnects on its own and
// reports a *redis.Subscription each time) Watch resynchronises: it calls
// the OnResync function, reads every user with SCAN and applies them, and
// applies nothing to the users it knew that are gone. A read that fails
// leaves a resynchronisation owed, tried again at the next ping.
func (s *RedisStore) Watch(ctx context.Context, apply func(user string, bs []Binding)) error {
	ps := s.client.Subscribe(ctx, redisChannel)
	msgs := ps.ChannelWithSubscriptions()
	defer func() {
		_ = ps.Close()
		// go-redis's reader goroutine closes msgs once it sees the PubSub
		// closed; it may be blocked handing over a message until then.
		for range msgs {
		}
	}()
	ping := time.NewTicker(s.pingEvery)
	defer ping.Stop()
	owed := false // a resynchronisation, after a failed read
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, open := <-msgs:
			if !open {
				return fmt.Errorf("registrar: redis store: subscription closed: %w", ErrClosed)
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					owed = !s.resync(ctx, apply)
				}
			case *redis.Message:
				var c redisChange
				if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
					s.fail("decode", err)
					s.log.Warn("registrar: redis store: bad change message", "err", err)
					continue
				}
				if c.Node == s.node || len(c.Users) == 0 {
					continue
				}
				if !s.fetch(ctx, c.Users, apply) {
					owed = true
				}
			}
		case <-s.refreshC:
			s.mu.Lock()
			users := make([]string, 0, len(s.refresh))
			for u := range s.refresh {
				users = append(users, u)
			}
			clear(s.refresh)
			s.mu.Unlock()
			if !s.fetch(ctx, users, apply) {
				owed = true
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.pingEvery)
			err := s.client.Ping(pctx).Err()
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.fail("ping", err)
				continue
			}
			s.ok("ping")
			if owed {
				owed = !s.resync(ctx, apply)
			}
		}
	}
}

// fetch reads users and applies what their keys hold. It reports whether
// the read worked.
func (s *RedisStore) fetch(ctx context.Context, users []string, apply func(string, []Binding)) bool {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	got, err := s.get(ctx, users)
	if err != nil {
		if ctx.Err() == nil {
			s.fail("get", err)
			s.log.Warn("registrar: redis store: reading changed users failed; will resynchronise", "users", len(users), "err", err)
		}
		return false
	}
	s.ok("get")
	s.mu.Lock()
	for u, bs := range got {
		if len(bs) > 0 {
			s.known[u] = struct{}{}
		} else {
			delete(s.known, u)
		}
	}
	s.mu.Unlock()
	for _, u := range users {
		if bs, ok := got[u]; ok {
			apply(u, bs)
		}
	}
	return true
}

// resync calls the OnResync function, then applies every user Redis holds
// and empties those it knew that Redis no longer holds. It reports whether
// the read worked.
func (s *RedisStore) resync(ctx context.Context, apply func(string, []Binding)) bool {
	s.mu.Lock()
	f := s.onResync
	s.mu.Unlock()
	if f != nil {
		f()
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	users, err := s.loadUsers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.fail("load", err)
			s.log.Warn("registrar: redis store: resynchronising failed; will retry", "err", err)
		}
		return false
	}
	s.mu.Lock()
	var gone []string
	for u := range s.known {
		if _, ok := users[u]; !ok {
			gone = append(gone, u)
		}
	}
	s.known = make(map[string]struct{}, len(users))
	for u := range users {
		s.known[u] = struct{}{}
	}
	s.mu.Unlock()
	for _, u := range gone {
		apply(u, nil)
	}
	for u, bs := range users {
		apply(u, bs)
	}
	s.log.Debug("registrar: redis store: resynchronised", "users", len(users), "gone", len(gone))
	return true
}

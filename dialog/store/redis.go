package store

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Keys in Redis. Call keys are shared by the cluster: whichever node owns a
// call writes the same key, so adopting a call moves only its ID between
// the nodes' sets, never its data.
const (
	keyPrefix = "parley:"
	// nodesKey is the set of every node that ever sent a heartbeat and has
	// not been claimed since.
	nodesKey = keyPrefix + "nodes"
)

// callKey holds a call's checkpoint.
func callKey(id string) string { return keyPrefix + "call:" + id }

// callsKey is the set of call IDs a node owns.
func callsKey(node string) string { return keyPrefix + "node:" + node + ":calls" }

// Defaults for a Redis store.
const (
	// DefaultCheckpointTTL is how long a checkpoint outlives its last
	// write. The B2BUA rewrites every live call's checkpoint every few
	// seconds, so it only bounds what a dead node that nobody adopted
	// leaves behind.
	DefaultCheckpointTTL = 5 * time.Minute
	// DefaultTimeout bounds one operation on Redis.
	DefaultTimeout = 2 * time.Second
)

// mgetChunk is how many keys one MGET asks for, so that a node with many
// calls does not hold Redis up with one huge reply.
const mgetChunk = 500

// Operations, as the op label of parley_cluster_store_errors_total.
const (
	opWrite     = "write"
	opLoad      = "load"
	opHeartbeat = "heartbeat"
	opNodes     = "nodes"
	opDeadNodes = "dead_nodes"
	opClaim     = "claim"
	// Bans (bans.go).
	opBanPublish = "ban_publish"
	opBanWatch   = "ban_watch"
)

// MetricErrors counts failed operations on a store.
const MetricErrors = "parley_cluster_store_errors_total"

// Redis keeps checkpoints in a Redis shared by the nodes of a cluster: each
// call's checkpoint under its own key, and each node's set of the calls it
// owns, so that a node loads only its own calls and a surviving node can
// claim a dead one's (see cluster.go). It shares the nodes' bans of hostile
// sources too (see bans.go).
//
// Write and Load take no context, so each bounds its round trips with the
// store's timeout; for the timeout to cut a stalled socket short, and not
// only a wait for a connection, the client should be built with
// ContextTimeoutEnabled.
type Redis struct {
	client  *redis.Client
	node    string
	ttl     time.Duration
	timeout time.Duration
	errs    *prometheus.CounterVec

	mu      sync.Mutex
	lastErr error
	// banned holds the bans of other nodes that Watch applied, with their
	// expiry, so that a resynchronisation can lift those gone early.
	banned map[netip.Addr]time.Time
}

// RedisOption configures a Redis store.
type RedisOption func(*Redis)

// WithCheckpointTTL sets how long a checkpoint, and a node's set of calls,
// outlive their last write (default DefaultCheckpointTTL). A value that is
// not positive keeps the default.
func WithCheckpointTTL(ttl time.Duration) RedisOption {
	return func(r *Redis) {
		if ttl > 0 {
			r.ttl = ttl
		}
	}
}

// WithTimeout sets the bound on one operation (default DefaultTimeout). A
// value that is not positive keeps the default.
func WithTimeout(d time.Duration) RedisOption {
	return func(r *Redis) {
		if d > 0 {
			r.timeout = d
		}
	}
}

// NewRedis returns a store that keeps node's checkpoints in client's Redis.
// The client is the caller's: the store never closes it.
func NewRedis(client *redis.Client, node string, opts ...RedisOption) *Redis {
	r := &Redis{
		client:  client,
		node:    node,
		ttl:     DefaultCheckpointTTL,
		timeout: DefaultTimeout,
		banned:  map[netip.Addr]time.Time{},
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        MetricErrors,
			Help:        "Operations on the checkpoint and cluster store that failed, by operation.",
			ConstLabels: prometheus.Labels{"store": "redis"},
		}, []string{"op"}),
	}
	for _, o := range opts {
		o(r)
	}
	for _, op := range []string{opWrite, opLoad, opHeartbeat, opNodes, opDeadNodes, opClaim, opBanPublish, opBanWatch} {
		r.errs.WithLabelValues(op)
	}
	return r
}

// Collectors returns the store's metrics, for the caller to register.
func (r *Redis) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.errs}
}

// Healthy returns the error of the last operation on Redis, or nil if it
// succeeded.
func (r *Redis) Healthy() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// done records the outcome of an operation and returns err.
func (r *Redis) done(op string, err error) error {
	if err != nil {
		r.errs.WithLabelValues(op).Inc()
	}
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return err
}

// Write stores put and deletes del, as one MULTI/EXEC transaction: the
// checkpoints with the store's TTL, and the call IDs in this node's set.
// A call in both is deleted first, then stored, as in Bolt.
func (r *Redis) Write(put map[string][]byte, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	own := callsKey(r.node)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(del) > 0 {
			keys := make([]string, len(del))
			members := make([]any, len(del))
			for i, id := range del {
				keys[i] = callKey(id)
				members[i] = id
			}
			p.Del(ctx, keys...)
			p.SRem(ctx, own, members...)
		}
		if len(put) > 0 {
			members := make([]any, 0, len(put))
			for id, data := range put {
				p.Set(ctx, callKey(id), data, r.ttl)
				members = append(members, id)
			}
			p.SAdd(ctx, own, members...)
		}
		p.PExpire(ctx, own, r.ttl)
		return nil
	})
	if err != nil {
		err = fmt.Errorf("write %d checkpoints and %d deletes to redis: %w", len(put), len(del), err)
	}
	return r.done(opWrite, err)
}

// Load returns the checkpoints of the calls in this node's set. A call
// whose checkpoint has expired is dropped from the set.
func (r *Redis) Load() (map[string][]byte, error) {
	out, err := r.load()
	return out, r.done(opLoad, err)
}

func (r *Redis) load() (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	ids, err := r.client.SMembers(ctx, callsKey(r.node)).Result()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("load checkpoints of node %s from redis: %w", r.node, err)
	}
	out, err := r.fetch(context.Background(), ids)
	if err != nil {
		return nil, fmt.Errorf("load checkpoints of node %s from redis: %w", r.node, err)
	}
	return out, nil
}

// fetch reads the checkpoints of ids, in chunks, each round trip bounded
// by the timeout within ctx, and removes from this node's set the IDs
// whose checkpoint has expired.
func (r *Redis) fetch(ctx context.Context, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	var gone []any
	for start := 0; start < len(ids); start += mgetChunk {
		chunk := ids[start:min(start+mgetChunk, len(ids))]
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = callKey(id)
		}
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		vals, err := r.client.MGet(cctx, keys...).Result()
		cancel()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				gone = append(gone, chunk[i])
				continue
			}
			out[chunk[i]] = []byte(s)
		}
	}
	if len(gone) > 0 {
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		defer cancel()
		if err := r.client.SRem(cctx, callsKey(r.node), gone...).Err(); err != nil {
			return nil, fmt.Errorf("drop %d expired calls: %w", len(gone), err)
		}
	}
	return out, nil
}

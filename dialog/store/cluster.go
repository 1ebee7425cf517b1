package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// A cluster's membership lives beside the checkpoints: each node keeps a
// heartbeat key that expires, and a node whose heartbeat has expired is
// dead. One surviving node claims a dead node's calls, and the claim is a
// single Lua script, so two nodes that race for the same dead node cannot
// both get them.

// heartbeatKey expires when its node stops beating.
func heartbeatKey(node string) string { return keyPrefix + "hb:" + node }

// nodeInfoKey is a node's last heartbeat, kept without an expiry so that
// a dead node can still be described until it is claimed.
func nodeInfoKey(node string) string { return keyPrefix + "nodeinfo:" + node }

// NodeInfo describes a node of the cluster, as it said in its last
// heartbeat.
type NodeInfo struct {
	// ID names the node.
	ID string `json:"id"`
	// SIP is the host:port other nodes send this node's calls to.
	SIP string `json:"sip"`
	// Admin is the address of the node's admin HTTP server.
	Admin string `json:"admin"`
	// Started is when the node's process started.
	Started time.Time `json:"started"`
	// Seen is the node's last heartbeat.
	Seen time.Time `json:"seen"`
	// Calls is how many calls the node owns, counted by Nodes.
	Calls int `json:"calls"`
	// Alive is whether the node's heartbeat has not expired, told by Nodes.
	Alive bool `json:"alive"`
}

// Heartbeat says this node is alive for ttl more and what info says of it
// (the ID is always the store's node, and Seen is now). The node joins the
// cluster's set of nodes with its first heartbeat.
func (r *Redis) Heartbeat(ctx context.Context, info NodeInfo, ttl time.Duration) error {
	return r.done(opHeartbeat, r.heartbeat(ctx, info, ttl))
}

func (r *Redis) heartbeat(ctx context.Context, info NodeInfo, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("heartbeat of node %s: ttl %v is not positive", r.node, ttl)
	}
	info.ID = r.node
	info.Seen = time.Now()
	info.Calls, info.Alive = 0, false // Nodes tells them when read
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", r.node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, heartbeatKey(r.node), data, ttl)
		p.Set(ctx, nodeInfoKey(r.node), data, 0)
		p.SAdd(ctx, nodesKey, r.node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("heartbeat of node %s to redis: %w", r.node, err)
	}
	return nil
}

// Nodes returns every node of the cluster, this one too, sorted by ID:
// the live ones as their heartbeat says, and the dead ones that nobody
// has claimed yet as their last heartbeat said.
func (r *Redis) Nodes(ctx context.Context) ([]NodeInfo, error) {
	nodes, err := r.nodes(ctx)
	return nodes, r.done(opNodes, err)
}

func (r *Redis) nodes(ctx context.Context) ([]NodeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ids, err := r.client.SMembers(ctx, nodesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list nodes in redis: %w", err)
	}
	slices.Sort(ids)
	type reads struct {
		hb, info *redis.StringCmd
		calls    *redis.IntCmd
	}
	rs := make([]reads, len(ids))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			rs[i] = reads{
				hb:    p.Get(ctx, heartbeatKey(id)),
				info:  p.Get(ctx, nodeInfoKey(id)),
				calls: p.SCard(ctx, callsKey(id)),
			}
		}
		return nil
	})
	// A missing key is an answer (a dead node, or one never described),
	// not a failure.
	failed := func(err error) bool { return err != nil && !errors.Is(err, redis.Nil) }
	if failed(err) {
		return nil, fmt.Errorf("read nodes in redis: %w", err)
	}
	out := make([]NodeInfo, 0, len(ids))
	for i, id := range ids {
		for _, err := range []error{rs[i].hb.Err(), rs[i].info.Err(), rs[i].calls.Err()} {
			if failed(err) {
				return nil, fmt.Errorf("read node %s in redis: %w", id, err)
			}
		}
		var n NodeInfo
		data, err := rs[i].hb.Bytes()
		alive := err == nil
		if !alive {
			data, err = rs[i].info.Bytes()
		}
		// A node whose description is gone or unreadable is still listed,
		// by its ID, so that it can be seen and claimed.
		if err == nil {
			_ = json.Unmarshal(data, &n)
		}
		n.ID, n.Alive = id, alive
		n.Calls = int(rs[i].calls.Val())
		out = append(out, n)
	}
	return out, nil
}

// DeadNodes returns, sorted, the nodes of the cluster whose heartbeat has
// expired and that nobody has claimed yet; never this node.
func (r *Redis) DeadNodes(ctx context.Context) ([]string, error) {
	dead, err := r.deadNodes(ctx)
	return dead, r.done(opDeadNodes, err)
}

func (r *Redis) deadNodes(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ids, err := r.client.SMembers(ctx, nodesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list nodes in redis: %w", err)
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == r.node })
	slices.Sort(ids)
	exists := make([]*redis.IntCmd, len(ids))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			exists[i] = p.Exists(ctx, heartbeatKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read heartbeats in redis: %w", err)
	}
	var dead []string
	for i, id := range ids {
		if exists[i].Val() == 0 {
			dead = append(dead, id)
		}
	}
	return dead, nil
}

// claimScript moves a dead node's calls into the claimer's set and forgets
// the dead node, unless its heartbeat is back, and returns the IDs it
// moved. Redis runs a script alone, so of two nodes racing for the same
// dead node, the second finds nothing left to move.
//
// KEYS: the dead node's heartbeat, its set of calls, its description, the
// set of nodes, and the claimer's set of calls. ARGV: the dead node's ID
// and the TTL of the claimer's set in milliseconds.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
	return {}
end
local ids = redis.call('SMEMBERS', KEYS[2])
if #ids > 0 then
	redis.call('SUNIONSTORE', KEYS[5], KEYS[5], KEYS[2])
	redis.call('PEXPIRE', KEYS[5], ARGV[2])
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return ids
`)

// Claim makes this node the owner of the calls of node dead, if dead's
// heartbeat has expired, and returns their checkpoints; calls whose
// checkpoint has expired too are dropped. It returns nothing if dead is
// alive, is this node, or was claimed already, by this node or another.
//
// The checkpoints stay under their call IDs, which are now in this node's
// set: Load would return them too, and this node's writes refresh them. If
// reading them fails after the claim, the calls are this node's all the
// same, and the error says so.
func (r *Redis) Claim(ctx context.Context, dead string) (map[string][]byte, error) {
	calls, err := r.claim(ctx, dead)
	return calls, r.done(opClaim, err)
}

func (r *Redis) claim(ctx context.Context, dead string) (map[string][]byte, error) {
	if dead == r.node {
		return map[string][]byte{}, nil
	}
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	ids, err := claimScript.Run(sctx, r.client,
		[]string{heartbeatKey(dead), callsKey(dead), nodeInfoKey(dead), nodesKey, callsKey(r.node)},
		dead, max(r.ttl.Milliseconds(), 1),
	).StringSlice()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("claim calls of node %s in redis: %w", dead, err)
	}
	calls, err := r.fetch(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("claimed %d calls of node %s, which are now node %s's, but could not read them: %w",
			len(ids), dead, r.node, err)
	}
	return calls, nil
}

package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/dialog/store"
)

// adopter is what the cluster needs of the B2BUA.
type adopter interface {
	// Adopt takes over a dead node's calls from their checkpoints.
	Adopt(recs map[string][]byte) int
	// ActiveCalls is how many calls this node holds.
	ActiveCalls() int
}

// clusterNode is this node's part of a cluster of parley nodes sharing
// one Redis (store.redis): it says it is alive every node.heartbeat, and
// when another node has been silent for three heartbeats it claims that
// node's calls (exactly one survivor wins, see store.Redis.Claim) and
// adopts them: new relay ports here, and a re-INVITE to both phones.
type clusterNode struct {
	rs    *store.Redis
	b2b   adopter
	info  store.NodeInfo
	every time.Duration
	log   *slog.Logger

	adopted *prometheus.CounterVec

	mu    sync.Mutex
	nodes []store.NodeInfo // as last read, for /api/nodes and the metrics
	// lastErr throttles the log of a store that keeps failing.
	lastErr time.Time
}

func newClusterNode(rs *store.Redis, b2b adopter, info store.NodeInfo, every time.Duration, log *slog.Logger, reg prometheus.Registerer) *clusterNode {
	c := &clusterNode{rs: rs, b2b: b2b, info: info, every: every, log: log}
	c.adopted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_cluster_adopted_calls_total",
		Help: "Calls this node adopted from dead nodes, by the dead node.",
	}, []string{"from"})
	reg.MustRegister(c.adopted, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_cluster_nodes_alive",
		Help: "Nodes of the cluster with a fresh heartbeat, as this node last saw them.",
	}, func() float64 {
		n := 0
		for _, ni := range c.Nodes() {
			if ni.Alive {
				n++
			}
		}
		return float64(n)
	}), c)
	return c
}

// nodeCallsDesc is the calls each node owns: a collector of its own, since
// the set of nodes changes.
var nodeCallsDesc = prometheus.NewDesc("parley_cluster_node_calls",
	"Calls each node of the cluster owns (its checkpointed calls), as this node last saw them.", []string{"node"}, nil)

// Describe and Collect make the clusterNode the collector of
// parley_cluster_node_calls.
func (c *clusterNode) Describe(ch chan<- *prometheus.Desc) { ch <- nodeCallsDesc }

func (c *clusterNode) Collect(ch chan<- prometheus.Metric) {
	for _, ni := range c.Nodes() {
		ch <- prometheus.MustNewConstMetric(nodeCallsDesc, prometheus.GaugeValue, float64(ni.Calls), ni.ID)
	}
}

// ttl is how long a heartbeat lasts: three heartbeats.
func (c *clusterNode) ttl() time.Duration { return 3 * c.every }

// beat writes this node's heartbeat. Run it once before the B2BUA loads
// its checkpoints, so that no other node takes this one, just restarted,
// for dead meanwhile.
func (c *clusterNode) beat(ctx context.Context) error {
	info := c.info
	info.Calls = c.b2b.ActiveCalls()
	return c.rs.Heartbeat(ctx, info, c.ttl())
}

// Run beats, adopts the calls of dead nodes and reads the node list every
// heartbeat until ctx ends.
func (c *clusterNode) Run(ctx context.Context) error {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.tick(ctx)
	}
}

func (c *clusterNode) tick(ctx context.Context) {
	if err := c.beat(ctx); err != nil {
		c.fail("heartbeat not written; other nodes will take this one for dead", err)
		return
	}
	dead, err := c.rs.DeadNodes(ctx)
	if err != nil {
		c.fail("dead nodes not read", err)
	}
	for _, d := range dead {
		recs, err := c.rs.Claim(ctx, d)
		if err != nil {
			c.fail("claim on a dead node's calls failed", err)
		}
		if len(recs) == 0 {
			continue
		}
		start := time.Now()
		n := c.b2b.Adopt(recs)
		c.adopted.WithLabelValues(d).Add(float64(n))
		c.log.Info("adopted the calls of a dead node", "node", d, "calls", n, "failed", len(recs)-n,
			"took_ms", time.Since(start).Milliseconds())
	}
	nodes, err := c.rs.Nodes(ctx)
	if err != nil {
		c.fail("node list not read", err)
		return
	}
	c.mu.Lock()
	c.nodes = nodes
	c.mu.Unlock()
}

// fail logs a store failure, at most every 10 s.
func (c *clusterNode) fail(msg string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.lastErr) < 10*time.Second {
		return
	}
	c.lastErr = time.Now()
	c.log.Warn(msg, "error", err)
}

// Nodes returns the cluster's nodes as last read.
func (c *clusterNode) Nodes() []store.NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.NodeInfo(nil), c.nodes...)
}

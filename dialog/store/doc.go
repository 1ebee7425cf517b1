// Package store keeps what parley's calls leave behind for the next
// process or another node: the calls' checkpoints, in an embedded bbolt
// file (one node) or in Redis (shared by a cluster), and in Redis the
// cluster's membership: each node's heartbeat, and the claim a surviving
// node makes on a dead one's calls; and in Redis the bans the nodes share.
//
// It is a leaf: it imports nothing of parley's, and package dialog reaches
// it through its own Checkpoints interface, which cmd/parley plugs in.
package store

package registrar

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// nonceSkew is how far in the future a nonce's timestamp may lie and still
// be accepted; it only absorbs clock steps between issuing and checking.
const nonceSkew = 5 * time.Second

// nonceLen is the decoded size: 8 bytes of Unix nanoseconds then 16 bytes
// of HMAC-SHA256 over them and what the nonce is bound to.
const (
	nonceTSLen  = 8
	nonceMACLen = 16
	nonceLen    = nonceTSLen + nonceMACLen
)

// nonceState is what checking a nonce found.
type nonceState int

const (
	nonceBad   nonceState = iota // not ours: wrong MAC, wrong length, not base64url
	nonceFresh                   // ours and within its lifetime
	nonceStale                   // ours, but older than its lifetime
)

// nonces issues and checks stateless nonces: base64url(ts || HMAC(secret,
// ts || binding)[:16]), where the binding is what the challenge was issued
// for (see Digest.binding): the source address, and for a call the
// Call-ID and From tag. A nonce answered from anywhere else, or in another
// call, fails its MAC, so a captured Authorization is useless there. The
// server keeps no table for issuing, so any number of challenges costs no
// memory; the nonce counts of nonces answered correctly are kept apart
// (nonceCounts), bounded.
type nonces struct {
	secret   []byte
	lifetime time.Duration
	// macs holds keyed HMACs: keying one hashes the secret twice, which
	// cost more than the MAC itself.
	macs sync.Pool
	// last is the timestamp of the last nonce issued: each nonce gets a
	// later one, so no two are alike even within one clock tick, and each
	// has a nonce count of its own.
	last atomic.Int64
}

func (n *nonces) issue(now time.Time, binding []byte) string {
	ts := now.UnixNano()
	for {
		last := n.last.Load()
		if ts <= last {
			ts = last + 1
		}
		if n.last.CompareAndSwap(last, ts) {
			break
		}
	}
	var buf [nonceLen]byte
	binary.BigEndian.PutUint64(buf[:nonceTSLen], uint64(ts))
	n.seal(buf[:nonceTSLen], binding, buf[nonceTSLen:])
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

func (n *nonces) seal(ts, binding, out []byte) {
	m, _ := n.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, n.secret)
	}
	m.Write(ts)
	m.Write(binding)
	var sum [sha256.Size]byte
	copy(out, m.Sum(sum[:0])[:nonceMACLen])
	m.Reset()
	n.macs.Put(m)
}

// check says whether nonce is ours, issued for binding, and fresh; it also
// returns the nonce's MAC, which names it in nonceCounts, and when it was
// issued.
func (n *nonces) check(nonce string, now time.Time, binding []byte) (nonceState, [nonceMACLen]byte, time.Time) {
	var mac [nonceMACLen]byte
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceLen {
		return nonceBad, mac, time.Time{}
	}
	var buf [nonceLen]byte
	if _, err := base64.RawURLEncoding.Decode(buf[:], []byte(nonce)); err != nil {
		return nonceBad, mac, time.Time{}
	}
	var want [nonceMACLen]byte
	n.seal(buf[:nonceTSLen], binding, want[:])
	if !hmac.Equal(want[:], buf[nonceTSLen:]) {
		return nonceBad, mac, time.Time{}
	}
	copy(mac[:], want[:])
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(buf[:nonceTSLen])))
	switch {
	case issued.After(now.Add(nonceSkew)):
		return nonceBad, mac, issued
	case now.Sub(issued) > n.lifetime:
		return nonceStale, mac, issued
	}
	return nonceFresh, mac, issued
}

package registrar

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// nonceSkew is how far in the future a nonce's timestamp may lie and still
// be accepted; it only absorbs clock steps between issuing and checking.
const nonceSkew = 5 * time.Second

// nonceLen is the decoded size: 8 bytes of Unix nanoseconds then 16 bytes
// of HMAC-SHA256 over them.
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
// ts)[:16]). The server keeps no table, so any number of challenges costs no
// memory, and a restart with the same secret keeps outstanding nonces valid.
type nonces struct {
	secret   []byte
	lifetime time.Duration
	// macs holds keyed HMACs: keying one hashes the secret twice, which
	// cost more than the MAC itself.
	macs sync.Pool
}

func (n *nonces) issue(now time.Time) string {
	var buf [nonceLen]byte
	binary.BigEndian.PutUint64(buf[:nonceTSLen], uint64(now.UnixNano()))
	n.seal(buf[:nonceTSLen], buf[nonceTSLen:])
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

func (n *nonces) seal(ts, out []byte) {
	m, _ := n.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, n.secret)
	}
	m.Write(ts)
	var sum [sha256.Size]byte
	copy(out, m.Sum(sum[:0])[:nonceMACLen])
	m.Reset()
	n.macs.Put(m)
}

func (n *nonces) check(nonce string, now time.Time) nonceState {
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceLen {
		return nonceBad
	}
	var buf [nonceLen]byte
	if _, err := base64.RawURLEncoding.Decode(buf[:], []byte(nonce)); err != nil {
		return nonceBad
	}
	var want [nonceMACLen]byte
	n.seal(buf[:nonceTSLen], want[:])
	if !hmac.Equal(want[:], buf[nonceTSLen:]) {
		return nonceBad
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(buf[:nonceTSLen])))
	switch {
	case issued.After(now.Add(nonceSkew)):
		return nonceBad
	case now.Sub(issued) > n.lifetime:
		return nonceStale
	}
	return nonceFresh
}

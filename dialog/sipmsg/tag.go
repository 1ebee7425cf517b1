package sipmsg

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/emiago/sipgo/sip"
)

// NewID returns 64 random bits in lower-case hex: call IDs, Call-IDs.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewTag returns a From/To tag: 64 random bits (RFC 3261 §19.3 asks for
// 32 at least) in lower-case hex. sipgo's mixed-case tags now and then
// spell "CSeq", and SIPp, which finds headers by searching the text, then
// reads the wrong CSeq and drops the response (2 calls in 360,000 in a
// soak run).
func NewTag() string { return NewID() }

// NewBranch returns a Via branch (RFC 3261 §8.1.1.7), hex for the same
// reason as NewTag.
func NewBranch() string {
	var b [len(sip.RFC3261BranchMagicCookie) + 32]byte
	var r [16]byte
	_, _ = rand.Read(r[:])
	copy(b[:], sip.RFC3261BranchMagicCookie)
	hex.Encode(b[len(sip.RFC3261BranchMagicCookie):], r[:])
	return string(b[:])
}

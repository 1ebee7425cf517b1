package media

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
)

// This file reads and writes the a=crypto lines of SDES (RFC 4568), with
// which each side of a relayed call tells the key it sends SRTP with.

// SRTPPolicy says what the relay does with SDES-SRTP on each leg of a call
// (rtp.srtp).
type SRTPPolicy int

// The SRTP policies.
const (
	// SRTPOptional gives SRTP to a side that offers it and plain RTP to
	// one that does not. It is the default.
	SRTPOptional SRTPPolicy = iota
	// SRTPOff refuses RTP/SAVP offers (488) and answers a best-effort
	// a=crypto on RTP/AVP with plain RTP, which RFC 4568 §6.2 allows.
	SRTPOff
	// SRTPMandatory refuses a leg without SRTP with 488.
	SRTPMandatory
)

// ParseSRTPPolicy reads rtp.srtp's value: off, optional or mandatory.
func ParseSRTPPolicy(s string) (SRTPPolicy, bool) {
	switch s {
	case "off":
		return SRTPOff, true
	case "", "optional":
		return SRTPOptional, true
	case "mandatory":
		return SRTPMandatory, true
	}
	return 0, false
}

func (p SRTPPolicy) String() string {
	switch p {
	case SRTPOff:
		return "off"
	case SRTPMandatory:
		return "mandatory"
	}
	return "optional"
}

// cryptoSuite is an SDES crypto suite parley can relay.
type cryptoSuite struct {
	name    string
	profile srtp.ProtectionProfile
	keyLen  int // master key and salt, as the inline key carries them
	saltLen int
}

// cryptoSuites are the suites parley accepts, in the order it offers them
// (RFC 4568 §6.2, RFC 6188, RFC 7714). Parley offers the first two.
var cryptoSuites = []cryptoSuite{
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
	{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
	{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
	{"AES_256_CM_HMAC_SHA1_32", srtp.ProtectionProfileAes256CmHmacSha1_32, 32, 14},
}

// offeredSuites is how many of cryptoSuites parley offers.
const offeredSuites = 2

// maxCryptoLines bounds the a=crypto lines read from one m-line.
const maxCryptoLines = 16

func suiteByName(name string) (cryptoSuite, bool) {
	for _, s := range cryptoSuites {
		if strings.EqualFold(s.name, name) {
			return s, true
		}
	}
	return cryptoSuite{}, false
}

// sdesKey is one a=crypto line: its tag, its suite, and the master key
// with the master salt behind it.
type sdesKey struct {
	tag   int
	suite cryptoSuite
	key   []byte
}

// valid reports whether k holds a key.
func (k sdesKey) valid() bool { return len(k.key) > 0 }

func (k sdesKey) equal(o sdesKey) bool {
	return k.tag == o.tag && k.suite.name == o.suite.name && string(k.key) == string(o.key)
}

// attr writes k as an a=crypto attribute.
func (k sdesKey) attr() sdp.Attribute {
	return sdp.NewAttribute("crypto", strconv.Itoa(k.tag)+" "+k.suite.name+" inline:"+base64.StdEncoding.EncodeToString(k.key))
}

// newKey makes a fresh random key of suite under tag.
func newKey(tag int, suite cryptoSuite) sdesKey {
	k := sdesKey{tag: tag, suite: suite, key: make([]byte, suite.keyLen+suite.saltLen)}
	_, _ = rand.Read(k.key) // crypto/rand.Read never fails (Go 1.24)
	return k
}

// readCryptos reads md's a=crypto lines. Lines of suites parley does not
// know, or with parameters it does not support (MKI, several keys, session
// parameters), are skipped: RFC 4568 §5.1.1 lets an answerer choose among
// them. A line that is malformed, or whose key has the wrong length for its
// suite, is an error wrapping ErrBadCrypto: the phone meant to use it and
// would not get the SRTP it asked for. any says md had a=crypto at all.
func readCryptos(md *sdp.MediaDescription) (keys []sdesKey, any bool, err error) {
	n := 0
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		any = true
		if n++; n > maxCryptoLines {
			return nil, true, withDetail(ErrBadCrypto, "more than "+strconv.Itoa(maxCryptoLines)+" a=crypto lines")
		}
		k, ok, err := parseCrypto(a.Value)
		if err != nil {
			return nil, true, err
		}
		if ok {
			keys = append(keys, k)
		}
	}
	return keys, any, nil
}

// parseCrypto reads the value of one a=crypto attribute:
// "tag suite inline:key||salt[|lifetime][|mki:len] [session-params]".
// ok is false for a well-formed line parley cannot use.
func parseCrypto(v string) (k sdesKey, ok bool, err error) {
	bad := func(why string) (sdesKey, bool, error) {
		return sdesKey{}, false, withDetail(ErrBadCrypto, why)
	}
	f := strings.Fields(v)
	if len(f) < 3 {
		return bad("a=crypto needs a tag, a suite and a key")
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 || len(f[0]) > 9 {
		return bad("a=crypto tag " + strconv.Quote(clip(f[0])) + " is not 1 to 9 digits")
	}
	suite, known := suiteByName(f[1])
	if !known {
		return sdesKey{}, false, nil
	}
	if len(f) > 3 || strings.Contains(f[2], ";") {
		return sdesKey{}, false, nil // session parameters or several keys: not supported
	}
	method, param, found := strings.Cut(f[2], ":")
	if !found || !strings.EqualFold(method, "inline") {
		return bad("a=crypto key method of tag " + f[0] + " is not inline")
	}
	parts := strings.Split(param, "|")
	if len(parts) > 3 {
		return bad("a=crypto key of tag " + f[0] + " has too many | fields")
	}
	for _, p := range parts[1:] {
		if strings.Contains(strings.ToUpper(p), ":") {
			return sdesKey{}, false, nil // an MKI: not supported
		}
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		// Some phones leave out the padding.
		if key, err = base64.RawStdEncoding.DecodeString(parts[0]); err != nil {
			return bad("a=crypto key of tag " + f[0] + " is not base64")
		}
	}
	if len(key) != suite.keyLen+suite.saltLen {
		return bad("a=crypto key of tag " + f[0] + " has " + strconv.Itoa(len(key)) + " bytes, " +
			suite.name + " needs " + strconv.Itoa(suite.keyLen+suite.saltLen))
	}
	return sdesKey{tag: tag, suite: suite, key: key}, true, nil
}

// clip shortens what the network sent before it goes into a Warning.
func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// secureProto reports whether an m-line's transport is RTP/SAVP or
// RTP/SAVPF, which mandate SRTP.
func secureProto(protos []string) bool {
	p := strings.ToUpper(strings.Join(protos, "/"))
	return p == "RTP/SAVP" || p == "RTP/SAVPF"
}

// withSecure returns protos with SAVP in place of AVP (secure) or the other
// way round, keeping a trailing F (AVPF feedback).
func withSecure(protos []string, secure bool) []string {
	out := append([]string(nil), protos...)
	for i, p := range out {
		switch up := strings.ToUpper(p); {
		case secure && (up == "AVP" || up == "AVPF"):
			out[i] = "S" + up
		case !secure && (up == "SAVP" || up == "SAVPF"):
			out[i] = up[1:]
		}
	}
	return out
}

// redactCrypto returns sdp with the keys of its a=crypto lines replaced by
// "-", for a checkpoint that must not hold them.
func redactCrypto(text string) string {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "a=crypto:") {
			continue
		}
		if j := strings.Index(l, "inline:"); j >= 0 {
			end := strings.IndexAny(l[j:], "| \r\n")
			if end < 0 {
				end = len(l) - j
			}
			lines[i] = l[:j] + "inline:-" + l[j+end:]
		}
	}
	return strings.Join(lines, "")
}

package registrar

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DigestOption configures a Digest. It returns an error for a value it
// cannot use.
type DigestOption func(*Digest) error

// Digest algorithm names as they appear in challenges (RFC 7616 §3.3).
const (
	AlgorithmSHA256 = "SHA-256"
	AlgorithmMD5    = "MD5"
)

// DefaultNonceLifetime is how long a nonce stays fresh unless
// WithNonceLifetime says otherwise: long enough for a phone to answer its
// challenge, short enough that a captured one is soon useless (Asterisk
// uses 32 s too). A phone that keeps a nonce for its next REGISTER gets
// stale=true and answers again without asking its user.
const DefaultNonceLifetime = 32 * time.Second

// WithNonceLifetime sets how long a nonce is fresh. After that a correct
// answer is met with a new challenge carrying stale=true.
func WithNonceLifetime(d time.Duration) DigestOption {
	return func(dg *Digest) error {
		if d <= 0 {
			return fmt.Errorf("%w: nonce lifetime %v must be positive", ErrBadOption, d)
		}
		dg.nonces.lifetime = d
		return nil
	}
}

// WithSecret sets the HMAC key nonces are sealed with. Without it a random
// 32-byte key is drawn, so nonces do not survive a restart (phones just get
// a new challenge). Two Digests with the same secret accept each other's
// nonces.
func WithSecret(secret []byte) DigestOption {
	return func(dg *Digest) error {
		if len(secret) < 16 {
			return fmt.Errorf("%w: secret must be at least 16 bytes", ErrBadOption)
		}
		dg.nonces.secret = append([]byte(nil), secret...)
		return nil
	}
}

// WithDigestClock replaces time.Now for nonce timestamps (tests).
func WithDigestClock(now func() time.Time) DigestOption {
	return func(dg *Digest) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrBadOption)
		}
		dg.now = now
		return nil
	}
}

// DefaultAlgorithms is the challenge order used unless WithAlgorithms says
// otherwise: MD5 first, then SHA-256.
//
// RFC 8760 §2.4 lists challenges in the server's order of preference, and
// SHA-256 first would be the natural preference. It is not the default
// because SIPp 3.6.1 (Debian's sip-tester, our load and end-to-end peer)
// reads only the first challenge and, finding algorithm=SHA-256, aborts the
// call ("createAuthHeader: authentication must use MD5 or AKAv1-MD5", exit
// 255) instead of moving on to the MD5 one; TestSIPpRegister checks both
// orders against the real binary. With MD5 first SIPp and every MD5-only
// phone work, and clients that pick the strongest algorithm they support
// still answer SHA-256, which we accept. Deployments without such clients
// can put SHA-256 first with WithAlgorithms(AlgorithmSHA256, AlgorithmMD5).
func DefaultAlgorithms() []string { return []string{AlgorithmMD5, AlgorithmSHA256} }

// WithAlgorithms sets which digest algorithms are challenged with, in the
// order the WWW-Authenticate (or Proxy-Authenticate) headers appear (RFC
// 8760: most preferred first). Credentials are accepted for any algorithm in
// the list. See DefaultAlgorithms for why MD5 leads by default.
func WithAlgorithms(algs ...string) DigestOption {
	return func(dg *Digest) error {
		if len(algs) == 0 {
			return fmt.Errorf("%w: no digest algorithm", ErrBadOption)
		}
		out := make([]string, 0, len(algs))
		for _, a := range algs {
			switch strings.ToUpper(a) {
			case AlgorithmSHA256:
				out = append(out, AlgorithmSHA256)
			case AlgorithmMD5:
				out = append(out, AlgorithmMD5)
			default:
				return fmt.Errorf("%w: digest algorithm %q (want %s or %s)", ErrBadOption, a, AlgorithmSHA256, AlgorithmMD5)
			}
		}
		dg.algorithms = out
		return nil
	}
}

// WithAuthMetrics registers parley_auth_failures_total on reg.
func WithAuthMetrics(reg prometheus.Registerer) DigestOption {
	return func(dg *Digest) error {
		if reg == nil {
			return fmt.Errorf("%w: nil prometheus.Registerer", ErrBadOption)
		}
		dg.metricsReg = reg
		return nil
	}
}

// WithDigestLogger sets the logger authentication failures are logged to,
// one line each with the source address and user.
func WithDigestLogger(l *slog.Logger) DigestOption {
	return func(dg *Digest) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrBadOption)
		}
		dg.log = l
		return nil
	}
}

// WithAuthObserver makes o hear of every challenge, failure and success,
// by source address.
func WithAuthObserver(o AuthObserver) DigestOption {
	return func(dg *Digest) error {
		if o == nil {
			return fmt.Errorf("%w: nil auth observer", ErrBadOption)
		}
		dg.observer = o
		return nil
	}
}

// WithHA1 adds user with digest hashes instead of a password:
// md5 = MD5(user:realm:password) and sha256 = SHA-256(user:realm:password),
// in hex. Either may be empty; that algorithm then never succeeds for the
// user.
func WithHA1(user, md5, sha256 string) DigestOption {
	return func(dg *Digest) error {
		if user == "" || (md5 == "" && sha256 == "") {
			return fmt.Errorf("%w: HA1 for %q needs a user and a hash", ErrBadOption, user)
		}
		if _, ok := dg.users[user]; ok {
			return fmt.Errorf("%w: user %q has a password and an HA1", ErrBadOption, user)
		}
		dg.users[user] = userKeys{md5: strings.ToLower(md5), sha256: strings.ToLower(sha256)}
		return nil
	}
}

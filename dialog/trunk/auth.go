package trunk

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Bounds on what a provider's challenge may hold.
const (
	// maxChallenges is how many challenge headers of one response are
	// looked at.
	maxChallenges = 8
	// maxChallengeLen bounds one challenge header's value.
	maxChallengeLen = 2048
)

// challengeOf returns the best digest challenge of res, a 401 (in
// WWW-Authenticate) or 407 (in Proxy-Authenticate), and the name of the
// header that answers it: SHA-256 over MD5 (RFC 8760), qop auth or none.
func challengeOf(res *sip.Response) (*digest.Challenge, string, error) {
	name, answer := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, answer = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var best *digest.Challenge
	for i, h := range sipmsg.HeadersNamed(res, name) {
		if i == maxChallenges {
			break
		}
		v := h.Value()
		if len(v) > maxChallengeLen || !digest.IsDigest(v) {
			continue
		}
		c, err := digest.ParseChallenge(v)
		if err != nil || c.Nonce == "" || c.Userhash {
			continue
		}
		for i, q := range c.QOP {
			c.QOP[i] = strings.TrimSpace(q)
		}
		alg := strings.ToUpper(c.Algorithm)
		if alg != "" && alg != "MD5" && alg != "SHA-256" {
			continue
		}
		if len(c.QOP) > 0 && !c.SupportsQOP("auth") {
			continue
		}
		if best == nil || (alg == "SHA-256" && strings.ToUpper(best.Algorithm) != "SHA-256") {
			best = c
		}
	}
	if best == nil {
		return nil, "", ErrNoChallenge
	}
	return best, answer, nil
}

// authorization is the header answering chal for req with the trunk's
// credentials; nc counts the requests answered with chal's nonce (RFC
// 7616 §3.4: the server may refuse a count it saw).
func authorization(chal *digest.Challenge, answer string, req *sip.Request, user, password string, nc int) (sip.Header, error) {
	if len(chal.QOP) > 0 {
		// qop=auth is the only one picked (challengeOf).
		chal = &digest.Challenge{Realm: chal.Realm, Nonce: chal.Nonce, Opaque: chal.Opaque, Algorithm: chal.Algorithm, QOP: []string{"auth"}}
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method:   string(req.Method),
		URI:      req.Recipient.String(),
		Username: user,
		Password: password,
		Count:    nc,
	})
	if err != nil {
		return nil, fmt.Errorf("trunk: answering the challenge: %w", err)
	}
	return sip.NewHeader(answer, cred.String()), nil
}

package media

import (
	"errors"
	"testing"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// TestSentinelsCarryStatus checks what the SIP-facing sentinels turn into
// (status, Warning, Retry-After), and that a copy with detail is still a
// *sipmsg.Error itself, matches its sentinel and keeps the sentinel's text.
func TestSentinelsCarryStatus(t *testing.T) {
	for _, tc := range []struct {
		err        error
		code       int
		reason     string
		warning    string
		retryAfter int
	}{
		{ErrBadSDP, 400, "Bad Request", "media: malformed SDP", 0},
		{ErrNoCommonCodec, 488, "Not Acceptable Here", "media: no codec in common", 0},
		{ErrPortsExhausted, 503, "Service Unavailable", "media: no free RTP port", 5},
	} {
		se, ok := tc.err.(*sipmsg.Error)
		if !ok {
			t.Fatalf("%v is a %T, want *sipmsg.Error", tc.err, tc.err)
		}
		if se.Code != tc.code || se.Reason != tc.reason || se.Warning != tc.warning || se.RetryAfter != tc.retryAfter {
			t.Errorf("%v = %+v", tc.err, se)
		}
		d, ok := withDetail(tc.err, "detail").(*sipmsg.Error)
		if !ok {
			t.Fatalf("withDetail(%v) is not a *sipmsg.Error", tc.err)
		}
		if !errors.Is(d, tc.err) || d.Code != tc.code || d.RetryAfter != tc.retryAfter || d.Warning != tc.warning+": detail" {
			t.Errorf("withDetail(%v) = %+v", tc.err, d)
		}
		if se.Warning != tc.warning {
			t.Errorf("withDetail changed the sentinel: %+v", se)
		}
	}
}

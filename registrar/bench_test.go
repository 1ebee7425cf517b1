package registrar

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkRegisterAuthenticated measures the request path of one
// authenticated REGISTER (digest check, binding update, 200 built), without
// the transport. Each iteration uses its own Call-ID so none is refused.
func BenchmarkRegisterAuthenticated(b *testing.B) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		b.Run(alg, func(b *testing.B) {
			clock := newFakeClock()
			d := newTestDigest(b, clock)
			r, err := New(d, NewMemoryStore(), WithClock(clock.Now))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			reqs := make([]*sip.Request, b.N)
			for i := range reqs {
				reqs[i] = loadRequest(b, "register.sip", msgVars{CallID: fmt.Sprint("bench-", i)})
				authorize(b, d, reqs[i], "1001", "secret", alg)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range reqs {
				if res := r.register(reqs[i]); res.StatusCode != 200 {
					b.Fatalf("%d %s", res.StatusCode, res.Reason)
				}
			}
		})
	}
}

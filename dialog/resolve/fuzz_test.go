package resolve

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds answers as the network could send them to the code
// that takes records out of them: whatever the bytes, it keeps at most
// maxRecords and follows a bounded CNAME chain.
func FuzzAnswer(f *testing.F) {
	seed := func(rrs ...string) {
		m := new(dns.Msg)
		m.SetQuestion("pbx.test.", dns.TypeSRV)
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(`pbx.test. 60 IN SRV 10 0 5060 a.pbx.test.`)
	seed(`pbx.test. 60 IN CNAME b.test.`, `b.test. 0 IN CNAME pbx.test.`)
	seed(`pbx.test. 4294967295 IN CNAME b.test.`, `b.test. 60 IN SRV 0 0 0 .`)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		for _, qt := range []uint16{dns.TypeSRV, dns.TypeNAPTR, dns.TypeA} {
			e := answerOf(m, "pbx.test.", qt)
			if len(e.rrs) > maxRecords {
				t.Fatalf("%d records kept, bound %d", len(e.rrs), maxRecords)
			}
			if e.ttl < minTTL && len(e.rrs) > 0 || e.ttl > maxTTL {
				t.Fatalf("ttl %v outside [%v, %v]", e.ttl, minTTL, maxTTL)
			}
			srvs := make([]*dns.SRV, 0, len(e.rrs))
			for _, rr := range e.rrs {
				if s, ok := rr.(*dns.SRV); ok {
					srvs = append(srvs, s)
				}
			}
			if got := orderSRV(srvs, func(n int) int { return n - 1 }); len(got) != len(srvs) {
				t.Fatalf("orderSRV kept %d of %d", len(got), len(srvs))
			}
		}
	})
}

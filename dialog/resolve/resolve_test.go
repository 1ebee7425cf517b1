package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parley-sip/parley/dialog/resolve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var zone = []string{
	// RFC 3263 §4.1: NAPTR in order; a non-SIP service and a non-terminal
	// flag are not SIP targets.
	`pbx.test. 60 IN NAPTR 5 50 "u" "E2U+sip" "!^.*$!sip:x@y!" .`,
	`pbx.test. 60 IN NAPTR 10 50 "s" "SIP+D2T" "" _sip._tcp.pbx.test.`,
	`pbx.test. 60 IN NAPTR 20 50 "s" "SIP+D2U" "" _sip._udp.pbx.test.`,
	`pbx.test. 60 IN NAPTR 30 50 "a" "SIP+D2U" "" a.pbx.test.`,
	`_sip._tcp.pbx.test. 60 IN SRV 10 0 5070 a.pbx.test.`,
	`_sip._udp.pbx.test. 60 IN SRV 10 0 5080 b.pbx.test.`,
	`a.pbx.test. 60 IN A 127.0.1.1`,
	`b.pbx.test. 60 IN A 127.0.1.2`,
	`b.pbx.test. 60 IN AAAA ::1`,
	// No NAPTR: the SRV records, priority before the order they came in.
	`_sip._udp.srv.test. 60 IN SRV 20 0 5090 b.pbx.test.`,
	`_sip._udp.srv.test. 60 IN SRV 10 0 5091 a.pbx.test.`,
	`_sip._udp.srv.test. 60 IN SRV 5 0 5092 .`,
	`plain.test. 60 IN A 127.0.1.5`,
	`six.test. 60 IN AAAA ::1`,
	`cname.test. 60 IN CNAME plain.test.`,
	`loop1.test. 60 IN CNAME loop2.test.`,
	`loop2.test. 60 IN CNAME loop1.test.`,
	`secure.test. 60 IN NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp.secure.test.`,
	`secure.test. 60 IN NAPTR 20 50 "s" "SIP+D2U" "" _sip._udp.pbx.test.`,
	`_sips._tcp.secure.test. 60 IN SRV 0 0 5061 a.pbx.test.`,
	`empty.test. 60 IN TXT "nothing for SIP"`,
}

func uri(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return u
}

func strs(ts []resolve.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func TestResolveOrder(t *testing.T) {
	z := startZone(t, zone...)
	r, err := resolve.New(resolve.WithServers(z.addr))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, uri string
		want      []string
		err       error
	}{
		{"numeric IPv4, no lookup", "sip:1@127.0.1.9", []string{"udp:127.0.1.9:5060"}, nil},
		{"numeric IPv6 with port and transport", "sip:1@[::1]:5070;transport=tcp", []string{"tcp:[::1]:5070"}, nil},
		{"numeric sips", "sips:1@127.0.1.9", []string{"tls:127.0.1.9:5061"}, nil},
		{"NAPTR then SRV then A and AAAA", "sip:1@pbx.test", []string{"tcp:127.0.1.1:5070", "udp:127.0.1.2:5080", "udp:[::1]:5080"}, nil},
		{"transport given: its SRV only", "sip:1@pbx.test;transport=udp", []string{"udp:127.0.1.2:5080", "udp:[::1]:5080"}, nil},
		{"port given: A and AAAA only", "sip:1@b.pbx.test:5099", []string{"udp:127.0.1.2:5099", "udp:[::1]:5099"}, nil},
		{"port and transport given", "sip:1@a.pbx.test:5099;transport=TCP", []string{"tcp:127.0.1.1:5099"}, nil},
		{"no NAPTR: SRV by priority, '.' left out", "sip:1@srv.test", []string{"udp:127.0.1.1:5091", "udp:127.0.1.2:5090", "udp:[::1]:5090"}, nil},
		{"no NAPTR, no SRV: A on 5060", "sip:1@plain.test", []string{"udp:127.0.1.5:5060"}, nil},
		{"AAAA only", "sip:1@six.test", []string{"udp:[::1]:5060"}, nil},
		{"CNAME followed", "sip:1@cname.test:5070", []string{"udp:127.0.1.5:5070"}, nil},
		{"sips: SIPS+D2T only", "sips:1@secure.test", []string{"tls:127.0.1.1:5061"}, nil},
		{"sip: every service", "sip:1@secure.test", []string{"tls:127.0.1.1:5061", "udp:127.0.1.2:5080", "udp:[::1]:5080"}, nil},
		{"no such name", "sip:1@nx.test", nil, resolve.ErrNoSuchName},
		{"name without SIP records", "sip:1@empty.test", nil, resolve.ErrNoRecords},
		{"CNAME loop", "sip:1@loop1.test:5060", nil, resolve.ErrServerFailure},
		{"unknown transport", "sip:1@pbx.test;transport=sctp", nil, resolve.ErrNoRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(context.Background(), uri(t, tt.uri))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve(%s) = %v, %v; want error %v", tt.uri, strs(got), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%s): %v", tt.uri, err)
			}
			if !slices.Equal(strs(got), tt.want) {
				t.Errorf("Resolve(%s) = %v, want %v", tt.uri, strs(got), tt.want)
			}
		})
	}
}

func TestResolveErrorNamesTheName(t *testing.T) {
	z := startZone(t, zone...)
	r, _ := resolve.New(resolve.WithServers(z.addr))
	_, err := r.Resolve(context.Background(), uri(t, "sip:1@nx.test"))
	var re *resolve.Error
	if !errors.As(err, &re) || re.Name != "nx.test" || resolve.Temporary(err) {
		t.Fatalf("error %#v: want a permanent *resolve.Error naming nx.test", err)
	}
}

func TestResolveCaches(t *testing.T) {
	z := startZone(t, zone...)
	r, _ := resolve.New(resolve.WithServers(z.addr))
	for range 3 {
		if _, err := r.Resolve(context.Background(), uri(t, "sip:1@pbx.test")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Resolve(context.Background(), uri(t, "sip:1@nx.test")); err == nil {
			t.Fatal("nx.test resolved")
		}
	}
	for _, q := range [][2]string{{"pbx.test.", "NAPTR"}, {"_sip._tcp.pbx.test.", "SRV"}, {"a.pbx.test.", "A"}, {"nx.test.", "NAPTR"}} {
		if n := z.asked(q[0], q[1]); n != 1 {
			t.Errorf("%s %s asked %d times, want 1 (cached)", q[0], q[1], n)
		}
	}
}

func TestResolveTimesOut(t *testing.T) {
	silent := silentServer(t)
	r, _ := resolve.New(resolve.WithServers(silent), resolve.WithTimeout(100*time.Millisecond, 400*time.Millisecond))
	start := time.Now()
	_, err := r.Resolve(context.Background(), uri(t, "sip:1@pbx.test"))
	if !resolve.Temporary(err) {
		t.Fatalf("error %v: want a temporary failure", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with a total timeout of 400ms", d)
	}
}

// A server that did not answer is not asked again for a few seconds:
// calls behind a dead DNS server fail at once instead of each waiting.
func TestResolveCachesFailure(t *testing.T) {
	r, _ := resolve.New(resolve.WithServers(silentServer(t)), resolve.WithTimeout(100*time.Millisecond, time.Second))
	if _, err := r.Resolve(context.Background(), uri(t, "sip:1@plain.test:5060")); !resolve.Temporary(err) {
		t.Fatalf("error %v: want a temporary failure", err)
	}
	start := time.Now()
	if _, err := r.Resolve(context.Background(), uri(t, "sip:1@plain.test:5060")); !resolve.Temporary(err) {
		t.Fatalf("error %v: want a temporary failure", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("the second resolution took %v; want the failure from the cache", d)
	}
}

// Concurrent resolutions of one name share their queries.
func TestResolveSharesQueries(t *testing.T) {
	z := startZone(t, zone...)
	r, _ := resolve.New(resolve.WithServers(z.addr))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.Resolve(context.Background(), uri(t, "sip:1@pbx.test")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := z.asked("pbx.test.", "NAPTR"); n > 2 {
		t.Errorf("20 concurrent resolutions asked NAPTR %d times", n)
	}
}

func TestResolveNextServer(t *testing.T) {
	z := startZone(t, zone...)
	r, _ := resolve.New(resolve.WithServers(silentServer(t), z.addr), resolve.WithTimeout(100*time.Millisecond, 3*time.Second))
	got, err := r.Resolve(context.Background(), uri(t, "sip:1@plain.test"))
	if err != nil || !slices.Equal(strs(got), []string{"udp:127.0.1.5:5060"}) {
		t.Fatalf("Resolve = %v, %v; want the second server's answer", strs(got), err)
	}
}

func TestResolveBoundsAnswers(t *testing.T) {
	var recs []string
	for i := range 200 {
		recs = append(recs, fmt.Sprintf("many.test. 60 IN A 127.0.%d.%d", 2+i/250, 1+i%250))
		recs = append(recs, fmt.Sprintf("_sip._udp.wide.test. 60 IN SRV 10 10 %d many.test.", 6000+i))
	}
	z := startZone(t, recs...)
	r, _ := resolve.New(resolve.WithServers(z.addr))
	got, err := r.Resolve(context.Background(), uri(t, "sip:1@many.test:5060"))
	if err != nil || len(got) == 0 || len(got) > 8 {
		t.Errorf("200 A records gave %d targets (%v); want 1..8", len(got), err)
	}
	got, err = r.Resolve(context.Background(), uri(t, "sip:1@wide.test;transport=udp"))
	if err != nil || len(got) == 0 || len(got) > 16 {
		t.Errorf("200 SRV records gave %d targets (%v); want 1..16", len(got), err)
	}
}

func TestWithServersRefusesNames(t *testing.T) {
	if _, err := resolve.New(resolve.WithServers("dns.example:53")); err == nil {
		t.Error("a host name as DNS server was accepted")
	}
	if _, err := resolve.New(resolve.WithServers("127.0.0.53", "[::1]:5353")); err != nil {
		t.Errorf("IP servers refused: %v", err)
	}
}

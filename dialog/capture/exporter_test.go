package capture

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector is a UDP socket standing in for Homer.
func collector(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no %s socket here: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UDPConn) *decoded {
	t.Helper()
	buf := make([]byte, 70000)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("collector got nothing: %v", err)
	}
	d, err := decodeHEP(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestExporterSends runs the exporter against a collector on IPv4 and on
// IPv6 loopback: a message read on a socket bound to every address goes
// out with the local address towards its sender, a keepalive not at all,
// and a message queued before Run stops is still sent.
func TestExporterSends(t *testing.T) {
	for _, tt := range []struct{ network, coll, any, peer string }{
		{"udp4", "127.0.0.1:0", "0.0.0.0:5060", "127.0.0.1:40000"},
		{"udp6", "[::1]:0", "[::]:5060", "[::1]:40000"},
	} {
		t.Run(tt.network, func(t *testing.T) {
			c := collector(t, tt.network, tt.coll)
			reg := prometheus.NewRegistry()
			e, err := NewHEP(c.LocalAddr().String(), WithAgentID(7), WithAuthKey("pw"), WithNodeName("n1"), WithRegisterer(reg))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			stopped := make(chan struct{})
			go func() { defer close(stopped); e.Run(done) }()

			peer, local := netip.MustParseAddrPort(tt.peer), netip.MustParseAddrPort(tt.any)
			e.Seen("udp", peer, local, []byte("\r\n\r\n"))
			e.Seen("tcp", peer, local, []byte("OPTIONS sip:a SIP/2.0\r\n\r\n"))
			d := receive(t, c)
			if d.proto != ProtoTCP || d.agent != 7 || d.auth != "pw" || d.node != "n1" || string(d.payload) != "OPTIONS sip:a SIP/2.0\r\n\r\n" {
				t.Errorf("decoded %+v", d)
			}
			if d.src != peer.Addr() || d.dst != peer.Addr() || d.sport != 40000 || d.dport != 5060 {
				t.Errorf("addresses %s:%d -> %s:%d; want the listener's side as %s", d.src, d.sport, d.dst, d.dport, peer.Addr())
			}
			e.Seen("udp", local, peer, []byte("SIP/2.0 200 OK\r\n\r\n"))
			close(done)
			<-stopped
			if d := receive(t, c); d.proto != ProtoUDP || d.sport != 5060 {
				t.Errorf("after stop: %+v", d)
			}
			if got := testutil.ToFloat64(e.sent); got != 2 {
				t.Errorf("sent %v, want 2", got)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: %s", p.Metric, p.Text)
			}
		})
	}
}

// TestExporterDropsWhenFull never blocks the caller: past the queue's
// bounds (messages or bytes) a message is dropped and counted.
func TestExporterDropsWhenFull(t *testing.T) {
	c := collector(t, "udp4", "127.0.0.1:0")
	e, err := NewHEP(c.LocalAddr().String(), WithQueue(3, 100))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	peer, local := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	msg := make([]byte, 40)
	for i := range msg {
		msg[i] = 'x'
	}
	start := time.Now()
	for range 10 {
		e.Seen("udp", peer, local, msg) // nobody runs the sender
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Seen blocked for %v", d)
	}
	// 100 bytes hold two messages of 40.
	if q, dropped := len(e.q), testutil.ToFloat64(e.dropped); q != 2 || dropped != 8 {
		t.Fatalf("queued %d, dropped %v; want 2 and 8", q, dropped)
	}
	e2, err := NewHEP(c.LocalAddr().String(), WithQueue(3, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	for range 10 {
		e2.Seen("udp", peer, local, msg)
	}
	if q, dropped := len(e2.q), testutil.ToFloat64(e2.dropped); q != 3 || dropped != 7 {
		t.Fatalf("queued %d, dropped %v; want 3 and 7", q, dropped)
	}
}

// TestExporterCountsFailures counts a message that cannot be encoded.
func TestExporterCountsFailures(t *testing.T) {
	c := collector(t, "udp4", "127.0.0.1:0")
	e, err := NewHEP(c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); e.Run(done) }()
	e.Seen("udp", netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), bytes.Repeat([]byte("x"), MaxHEP))
	close(done)
	<-stopped
	if f := testutil.ToFloat64(e.failed); f != 1 {
		t.Fatalf("failed %v, want 1", f)
	}
}

func TestNewHEPNamesKey(t *testing.T) {
	if _, err := NewHEP("no-port"); err == nil || !strings.Contains(err.Error(), "capture.hep") {
		t.Fatalf("error %v does not name capture.hep", err)
	}
}

// TestAddresses makes every pair of addresses fit one HEP family.
func TestAddresses(t *testing.T) {
	e := &Exporter{routes: map[netip.Addr]route{}}
	ap := netip.MustParseAddrPort
	for _, tt := range []struct{ src, dst, wantSrc, wantDst string }{
		{"127.0.0.1:5060", "127.0.0.1:40000", "127.0.0.1:5060", "127.0.0.1:40000"},
		// A dual-stack socket: the peer IPv4-mapped, the listener ::.
		{"[::ffff:127.0.0.1]:40000", "[::]:5060", "127.0.0.1:40000", "127.0.0.1:5060"},
		{"0.0.0.0:5060", "127.0.0.1:40000", "127.0.0.1:5060", "127.0.0.1:40000"},
		{"[::1]:5060", "[::1]:40000", "[::1]:5060", "[::1]:40000"},
		// Two families left: both as IPv6.
		{"127.0.0.1:5060", "[::1]:40000", "[::ffff:127.0.0.1]:5060", "[::1]:40000"},
	} {
		s, d := e.addresses(ap(tt.src), ap(tt.dst))
		if s != ap(tt.wantSrc) || d != ap(tt.wantDst) {
			t.Errorf("%s -> %s: got %s -> %s, want %s -> %s", tt.src, tt.dst, s, d, tt.wantSrc, tt.wantDst)
		}
	}
}

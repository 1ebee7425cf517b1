package rooms

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media"
)

const lab = `services:
  rooms:
    "800": {mode: conference}
    "801": {mode: ptt, floor_timeout: 30s, max_talk: 60s}
`

func setUp(t *testing.T) (*Directory, *prometheus.Registry, map[string]dialog.Service) {
	t.Helper()
	cfg, err := config.Parse([]byte(lab), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := media.NewPortPool(32600, 32699)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	var dir *Directory
	b, err := setup(service.Env{Config: cfg, Log: slog.New(slog.DiscardHandler), Ports: pool,
		RTPAddress: netip.MustParseAddr("127.0.0.1"), Registerer: reg,
		Publish: func(v any) { dir = v.(*Directory) }})
	if err != nil {
		t.Fatal(err)
	}
	svcs := map[string]dialog.Service{}
	for _, x := range b {
		svcs[x.Number] = x.Service
	}
	if len(svcs) != 2 || dir == nil {
		t.Fatalf("bindings %v, directory %v", svcs, dir)
	}
	return dir, reg, svcs
}

// phone is a UDP socket with an offer, that can press keys.
type phone struct {
	conn *net.UDPConn
	to   netip.AddrPort
	seq  uint16
}

func newPhone(t *testing.T) *phone {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &phone{conn: c}
}

func (p *phone) offer() []byte {
	port := strconv.Itoa(p.conn.LocalAddr().(*net.UDPAddr).Port)
	return []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + port + " RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
}

func (p *phone) press(code uint8) {
	ts := uint32(p.seq) * 1000
	for i := range 4 {
		p.seq++
		end := byte(0)
		if i == 3 {
			end = 0x80
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: p.seq, Timestamp: ts, SSRC: 5},
			Payload: []byte{code, end | 10, 0, 160}}
		b, _ := pkt.Marshal()
		_, _ = p.conn.WriteToUDPAddrPort(b, p.to)
	}
}

func join(t *testing.T, svc dialog.Service, p *phone, user string) dialog.ServiceSession {
	t.Helper()
	s := svc.(*Service)
	answer, sess, err := s.StartCall(dialog.ServiceCall{Offer: p.offer(), Local: netip.MustParseAddr("127.0.0.1"), From: user, CallID: "call-" + user})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(answer), "PCMA/8000") {
		t.Fatalf("answer:\n%s", answer)
	}
	for _, m := range s.r.Members() {
		if m.User() == user {
			p.to = m.LocalAddr()
		}
	}
	return sess
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Keys pass the floor of a push-to-talk room; the directory shows the
// floor and the queue, mutes members, and the metrics count.
func TestPTTFloorByKeys(t *testing.T) {
	dir, reg, svcs := setUp(t)
	if got := svcs["801"].(*Service).App(); got != "PTT" {
		t.Errorf("App() = %q", got)
	}
	if got := svcs["800"].(*Service).App(); got != "Conference" {
		t.Errorf("App() = %q", got)
	}
	a, b := newPhone(t), newPhone(t)
	sa := join(t, svcs["801"], a, "1001")
	defer sa.Close()
	sb := join(t, svcs["801"], b, "1002")
	defer sb.Close()

	ptt := func() (string, []string) {
		for _, r := range dir.Rooms() {
			if r.Number == "801" {
				return r.Floor, r.Queue
			}
		}
		t.Fatal("no room 801")
		return "", nil
	}
	a.press(KeyRequest)
	waitFor(t, "1001 to get the floor", func() bool { f, _ := ptt(); return f == "1001" })
	b.press(KeyRequest)
	waitFor(t, "1002 to queue", func() bool { _, q := ptt(); return len(q) == 1 && q[0] == "1002" })
	a.press(KeyRelease)
	waitFor(t, "the floor to pass to 1002", func() bool { f, q := ptt(); return f == "1002" && len(q) == 0 })
	// The holder hangs up: the floor is free.
	sb.Close()
	waitFor(t, "the floor to be free", func() bool { f, _ := ptt(); return f == "" })

	if got := testutil.ToFloat64(dir.Room("801").ptt.metrics.grants.WithLabelValues("801")); got != 2 {
		t.Errorf("grants %v, want 2", got)
	}
	if got := testutil.ToFloat64(dir.Room("801").ptt.metrics.releases.WithLabelValues("801", ReasonHangup)); got != 1 {
		t.Errorf("hangup releases %v, want 1", got)
	}

	if err := dir.SetMuted("801", "1001", true); err != nil {
		t.Fatal(err)
	}
	if err := dir.SetMuted("801", "nobody", true); err != ErrNoMember {
		t.Errorf("unknown member: %v", err)
	}
	if err := dir.SetMuted("899", "1001", true); err != ErrNoRoom {
		t.Errorf("unknown room: %v", err)
	}
	for _, r := range dir.Rooms() {
		if r.Number == "801" && (len(r.Members) != 1 || !r.Members[0].Muted || r.Members[0].Call != "call-1001") {
			t.Errorf("801 members %+v", r.Members)
		}
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
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"parley_rooms", "parley_room_members", "parley_room_floor_grants_total", "parley_room_floor_releases_total"} {
		if !names[n] {
			t.Errorf("no metric %s", n)
		}
	}
}

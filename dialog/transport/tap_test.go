package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// recordingTap keeps what it is shown.
type recordingTap struct {
	mu   sync.Mutex
	seen []tapped
}

type tapped struct {
	network  string
	src, dst netip.AddrPort
	msg      string
}

func (r *recordingTap) Seen(network string, src, dst netip.AddrPort, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, tapped{network, src, dst, string(b)})
}

func (r *recordingTap) all() []tapped {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// TestFramerTap hands the tap each whole message, keepalives left out,
// however the stream is cut.
func TestFramerTap(t *testing.T) {
	one, two := sipMessage("v=0\r\n"), sipMessage("")
	stream := "\r\n\r\n" + one + "\r\n" + two
	for _, chunk := range []int{1, 7, len(stream)} {
		var got []string
		f := framer{tap: func(m []byte) { got = append(got, string(m)) }}
		for i := 0; i < len(stream); i += chunk {
			if _, _, err := f.feed([]byte(stream[i:min(i+chunk, len(stream))])); err != nil {
				t.Fatal(err)
			}
		}
		if want := []string{one, two}; !slices.Equal(got, want) {
			t.Errorf("chunks of %d: tapped %q, want %q", chunk, got, want)
		}
	}
}

// TestUDPPortTap shows the tap a datagram read and one sent, with the
// socket's address on the right side.
func TestUDPPortTap(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	tap := &recordingTap{}
	sk := &sink{reqs: make(chan *sip.Request, 10), srcs: make(chan netip.AddrPort, 10), ress: make(chan *sip.Response, 10)}
	u := NewUDPPort(conn, NewLenientParser(), sk, slog.New(slog.DiscardHandler), WithTap(tap))
	done := make(chan struct{})
	go func() { defer close(done); u.Serve() }()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	remote := peer.LocalAddr().(*net.UDPAddr).AddrPort()

	msg := "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := peer.WriteToUDPAddrPort([]byte(msg), local); err != nil {
		t.Fatal(err)
	}
	if err := u.Send([]byte("SIP/2.0 200 OK\r\n\r\n"), remote); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); len(tap.all()) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	<-done
	got := tap.all()
	want := []tapped{{"udp", local, remote, "SIP/2.0 200 OK\r\n\r\n"}, {"udp", remote, local, msg}}
	slices.SortFunc(got, func(a, b tapped) int { return len(a.msg) - len(b.msg) })
	if !slices.Equal(got, want) {
		t.Fatalf("tapped %+v\nwant %+v", got, want)
	}
}

// TestStreamTap shows the tap each message framed on an accepted
// connection, however the peer cut the stream, and each write to it.
func TestStreamTap(t *testing.T) {
	tap := &recordingTap{}
	s := serveGuarded(t, TCPLimits{MaxMessageSize: 4096}, WithStreamTap(tap))
	s.answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	c := s.dial(t, "127.0.0.1")
	one, two := sipMessage("v=0\r\n"), sipMessage("")
	stream := one + "\r\n\r\n" + two
	for i := 0; i < len(stream); i += 50 {
		if _, err := c.Write([]byte(stream[i:min(i+50, len(stream))])); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	peer, local := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	var in, out []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		in, out = nil, nil
		for _, m := range tap.all() {
			switch {
			case m.network == "tcp" && m.src == peer && m.dst == local:
				in = append(in, m.msg)
			case m.network == "tcp" && m.src == local && m.dst == peer:
				out = append(out, m.msg)
			default:
				t.Fatalf("tapped %+v: not between %s and %s", m, peer, local)
			}
		}
		if len(in) == 2 && len(out) > 0 {
			break
		}
	}
	if !slices.Equal(in, []string{one, two}) {
		t.Errorf("messages in: %q, want %q", in, []string{one, two})
	}
	if len(out) == 0 || out[0] != s.answer {
		t.Errorf("messages out: %q, want the answer", out)
	}
}

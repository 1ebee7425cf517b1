package resolve_test

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// zoneServer is a DNS server on loopback that answers from its records:
// those of the asked name and type, with the CNAMEs on the way; NXDOMAIN
// for a name it holds nothing for.
type zoneServer struct {
	addr string
	mu   sync.Mutex
	rrs  []dns.RR
	asks map[string]int // "name TYPE" -> queries
}

func startZone(t *testing.T, records ...string) *zoneServer {
	t.Helper()
	z := &zoneServer{asks: map[string]int{}}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		z.rrs = append(z.rrs, rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	// TCP on the same port, for answers too big for a datagram.
	ln, err := net.Listen("tcp", z.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return z
}

func (z *zoneServer) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	name, qt := q.Question[0].Name, q.Question[0].Qtype
	z.mu.Lock()
	z.asks[strings.ToLower(name)+" "+dns.TypeToString[qt]]++
	known := false
	for range 10 {
		var cname string
		for _, rr := range z.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			known = true
			if h.Rrtype == qt {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				m.Answer = append(m.Answer, rr)
				cname = c.Target
			}
		}
		if cname == "" {
			break
		}
		name = cname
	}
	z.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func (z *zoneServer) asked(name, qtype string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.asks[name+" "+qtype]
}

// silentServer takes queries and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

package media

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
)

// stubProbe makes a pool treat every port as free except those in refused.
func stubProbe(p *PortPool, refused ...int) {
	no := map[int]bool{}
	for _, r := range refused {
		no[r] = true
	}
	p.probe = func(port int) bool { return !no[port] }
}

func TestNewPortPool(t *testing.T) {
	tests := []struct {
		name     string
		min, max int
		size     int
		first    int
	}{
		{name: "default config range", min: 10000, max: 10999, size: 500, first: 10000},
		{name: "odd min rounds up", min: 10001, max: 10004, size: 1, first: 10002},
		{name: "one pair", min: 10000, max: 10001, size: 1, first: 10000},
		{name: "odd max drops the unpaired port", min: 10000, max: 10004, size: 2, first: 10000},
		{name: "top of the port space", min: 65534, max: 65535, size: 1, first: 65534},
		{name: "single port", min: 10000, max: 10000},
		{name: "odd min, no pair", min: 10001, max: 10002},
		{name: "reversed", min: 20000, max: 10000},
		{name: "zero", min: 0, max: 10},
		{name: "beyond 65535", min: 65534, max: 65536},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPortPool(tc.min, tc.max)
			if tc.size == 0 {
				if !errors.Is(err, ErrBadPortRange) {
					t.Fatalf("err = %v, want ErrBadPortRange", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Size() != tc.size {
				t.Errorf("Size() = %d, want %d", p.Size(), tc.size)
			}
			stubProbe(p)
			if port, err := p.Acquire(); err != nil || port != tc.first {
				t.Errorf("Acquire() = %d, %v, want %d", port, err, tc.first)
			}
		})
	}
}

func TestPortPoolExhaustion(t *testing.T) {
	p, err := NewPortPool(10000, 10009)
	if err != nil {
		t.Fatal(err)
	}
	stubProbe(p)
	got := map[int]bool{}
	for range p.Size() {
		port, err := p.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		if port%2 != 0 || port < 10000 || port+1 > 10009 {
			t.Errorf("port %d is not an even port with its pair in range", port)
		}
		if got[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		got[port] = true
	}
	if p.InUse() != 5 {
		t.Errorf("InUse() = %d, want 5", p.InUse())
	}
	_, err = p.Acquire()
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("err = %v, want ErrPortsExhausted", err)
	}
	se, ok := err.(interface{ SIPStatus() (int, string) })
	if !ok {
		t.Fatalf("%T has no SIPStatus", err)
	}
	if code, _ := se.SIPStatus(); code != 503 {
		t.Errorf("status %d, want 503", code)
	}

	for port := range got {
		p.Release(port)
		p.Release(port) // twice is harmless
	}
	p.Release(10001) // never handed out: ignored
	p.Release(4)
	if p.InUse() != 0 {
		t.Fatalf("InUse() = %d after releasing everything", p.InUse())
	}
	for range p.Size() {
		if _, err := p.Acquire(); err != nil {
			t.Fatalf("after release: %v", err)
		}
	}
}

func TestPortPoolReusesLast(t *testing.T) {
	p, err := NewPortPool(10000, 10005)
	if err != nil {
		t.Fatal(err)
	}
	stubProbe(p)
	a, _ := p.Acquire()
	p.Release(a)
	b, _ := p.Acquire()
	if a == b {
		t.Errorf("released port %d handed out again at once; want the queue's next", a)
	}
}

func TestPortPoolSkipsRefused(t *testing.T) {
	p, err := NewPortPool(10000, 10005)
	if err != nil {
		t.Fatal(err)
	}
	stubProbe(p, 10000, 10004)
	port, err := p.Acquire()
	if err != nil || port != 10002 {
		t.Fatalf("Acquire() = %d, %v, want 10002", port, err)
	}
	if _, err := p.Acquire(); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("err = %v, want ErrPortsExhausted while the rest are refused", err)
	}
	if p.InUse() != 1 {
		t.Errorf("InUse() = %d, want 1", p.InUse())
	}
	stubProbe(p) // the other program let go
	got := map[int]bool{}
	for range 2 {
		port, err := p.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		got[port] = true
	}
	if !got[10000] || !got[10004] {
		t.Errorf("got %v, want the once refused 10000 and 10004", got)
	}
}

// freePairs finds n consecutive free RTP/RTCP pairs starting at an even
// port and returns the first, with a socket holding its RTCP port.
func freePairs(t *testing.T, n int) (int, net.PacketConn) {
	t.Helper()
	for base := 24000; base < 30000; base += 2 * n {
		var conns []net.PacketConn
		ok := true
		for port := base; port < base+2*n; port++ {
			c, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c)
		}
		if !ok {
			for _, c := range conns {
				c.Close()
			}
			continue
		}
		for i, c := range conns {
			if i != 1 {
				c.Close()
			}
		}
		return base, conns[1]
	}
	t.Fatal("no free UDP ports in 24000-30000")
	return 0, nil
}

func TestPortPoolConcurrent(t *testing.T) {
	p, err := NewPortPool(10000, 10019)
	if err != nil {
		t.Fatal(err)
	}
	stubProbe(p)
	var mu sync.Mutex
	held := map[int]bool{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				port, err := p.Acquire()
				if errors.Is(err, ErrPortsExhausted) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if held[port] {
					t.Errorf("port %d handed out twice", port)
				}
				held[port] = true
				mu.Unlock()

				mu.Lock()
				delete(held, port)
				mu.Unlock()
				p.Release(port)
			}
		})
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Errorf("InUse() = %d after all released", p.InUse())
	}
}

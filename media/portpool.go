package media

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// PortPool hands out RTP ports from a fixed range: each is even, and the odd
// port after it is RTCP's (RFC 3550 §11). It is safe for concurrent use and
// never hands out a port twice before it is released.
type PortPool struct {
	mu    sync.Mutex
	free  []int        // queue: Acquire takes from the front, Release appends
	inUse map[int]bool // handed out, or being probed by Acquire
	size  int

	// probe reports whether the OS lets us bind port and port+1; tests
	// replace it.
	probe func(port int) bool
}

// NewPortPool returns a pool of the even ports p with min <= p and
// p+1 <= max, the way rtp.port_min and rtp.port_max describe them. It fails
// with ErrBadPortRange if the range holds no such pair.
func NewPortPool(min, max int) (*PortPool, error) {
	if min < 1 || max > 65535 {
		return nil, fmt.Errorf("%w: %d-%d is outside 1-65535", ErrBadPortRange, min, max)
	}
	first := min + min%2
	if first+1 > max {
		return nil, fmt.Errorf("%w: %d-%d", ErrBadPortRange, min, max)
	}
	p := &PortPool{inUse: map[int]bool{}, probe: canBind}
	for port := first; port+1 <= max; port += 2 {
		p.free = append(p.free, port)
	}
	p.size = len(p.free)
	return p, nil
}

// Acquire takes an RTP port out of the pool; RTCP is the port after it.
// Ports the OS will not let us bind (another program holds them) are skipped
// and go back to the end of the queue. When no port is left it returns
// ErrPortsExhausted.
func (p *PortPool) Acquire() (int, error) {
	p.mu.Lock()
	tries := len(p.free)
	p.mu.Unlock()
	for range tries {
		p.mu.Lock()
		if len(p.free) == 0 {
			p.mu.Unlock()
			break
		}
		port := p.free[0]
		p.free = p.free[1:]
		p.inUse[port] = true
		p.mu.Unlock()

		// Probe outside the lock: the port is marked in use, so nobody else
		// can take it meanwhile.
		if p.probe(port) {
			return port, nil
		}
		p.mu.Lock()
		delete(p.inUse, port)
		p.free = append(p.free, port)
		p.mu.Unlock()
	}
	return 0, withDetail(ErrPortsExhausted, fmt.Sprintf("%d of %d ports in use", p.InUse(), p.size))
}

// Release returns port to the pool. Releasing a port that is not in use
// does nothing, so a session may release its port more than once safely.
func (p *PortPool) Release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inUse[port] {
		return
	}
	delete(p.inUse, port)
	p.free = append(p.free, port)
}

// InUse returns how many ports are handed out.
func (p *PortPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}

// Size returns how many RTP ports the pool holds in all.
func (p *PortPool) Size() int { return p.size }

// canBind reports whether UDP port and port+1 are free on every local
// address. Binding the wildcard is the strictest test: it fails if any
// address already has the port bound.
func canBind(port int) bool {
	rtp, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	defer rtp.Close()
	rtcp, err := net.ListenPacket("udp", ":"+strconv.Itoa(port+1))
	if err != nil {
		return false
	}
	rtcp.Close()
	return true
}

package media

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors of Take, when a call is rebuilt from a checkpoint on the ports it
// had.
var (
	// ErrPortTaken means a port asked for by number is in use: handed out
	// by the pool already, or bound by another socket.
	ErrPortTaken = errors.New("media: RTP port taken")
	// ErrPortNotInPool means a port asked for by number is not one the pool
	// hands out: outside its range, or odd.
	ErrPortNotInPool = errors.New("media: RTP port not in the pool")
)

// PortPool hands out RTP ports from a fixed range: each is even, and the odd
// port after it is RTCP's (RFC 3550 §11). It is safe for concurrent use and
// never hands out a port twice before it is released.
type PortPool struct {
	mu    sync.Mutex
	free  []int        // queue: Acquire takes from the front, Release appends
	inUse map[int]bool // handed out, or being probed by Acquire
	size  int

	// probe, when set, reports whether a port may be handed out; tests set
	// it. The pool does not probe the OS itself: its users bind the port
	// they get and, when that fails, release it and acquire another, which
	// costs one bind instead of two per port.
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
	p := &PortPool{inUse: map[int]bool{}}
	for port := first; port+1 <= max; port += 2 {
		p.free = append(p.free, port)
	}
	p.size = len(p.free)
	return p, nil
}

// Acquire takes an RTP port out of the pool; RTCP is the port after it.
// Ports the probe refuses are skipped and go back to the end of the queue.
// The caller binds the pair; when another program holds either port it
// releases this one (it goes to the end of the queue) and acquires again.
// When no port is left it returns ErrPortsExhausted.
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
		if p.probe == nil || p.probe(port) {
			return port, nil
		}
		p.mu.Lock()
		delete(p.inUse, port)
		p.free = append(p.free, port)
		p.mu.Unlock()
	}
	return 0, withDetail(ErrPortsExhausted, fmt.Sprintf("%d of %d ports in use", p.InUse(), p.size))
}

// Take takes the RTP port port out of the pool, as Acquire would have
// handed it out; RTCP is the port after it. It is for rebuilding a call on
// the ports it had. It fails with ErrPortNotInPool if port is not an even
// port of the pool's range, and with ErrPortTaken if it is in use. The
// probe is not asked: the caller binds the port and releases it if that
// fails.
func (p *PortPool) Take(port int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inUse[port] {
		return fmt.Errorf("%w: %d is in use", ErrPortTaken, port)
	}
	i := slices.Index(p.free, port)
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrPortNotInPool, port)
	}
	p.free = slices.Delete(p.free, i, i+1)
	p.inUse[port] = true
	return nil
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

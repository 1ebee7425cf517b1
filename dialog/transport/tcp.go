package transport

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TCPLimits bounds what a TCP listener accepts (sip.tcp and
// sip.max_message_size). A zero field is no limit.
type TCPLimits struct {
	// MaxConnections bounds the accepted connections open at once,
	// MaxPerSource those from one IP address. A connection past either
	// is closed as soon as it is accepted; the listener goes on.
	MaxConnections int
	MaxPerSource   int
	// IdleTimeout closes a connection that sent nothing for this long.
	IdleTimeout time.Duration
	// FirstMessageTimeout closes a connection that has not sent one
	// complete SIP message (headers ended by an empty line, and the body
	// its Content-Length announces) this long after it was accepted.
	FirstMessageTimeout time.Duration
	// MaxMessageSize bounds one message, headers and body; a larger one
	// closes the connection.
	MaxMessageSize int
}

// Accept retry: a failing accept (EMFILE, ENFILE, ENOBUFS, an aborted
// connection) is retried after a pause that doubles from acceptBackoffMin
// up to acceptBackoffMax, as net/http's server does.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// refusalLogEvery bounds the log lines about refused connections: a flood
// of them is summed up once per interval.
const refusalLogEvery = 10 * time.Second

// Lingering end: when a connection ends (a framing error, the peer's
// EOF) within lingerAfterMessage of delivering a complete message, the
// answer to that message may still be on its way from a handler, and
// sipgo forgets a connection as soon as its reader sees the end. The
// reader is then held (reading nothing more) until the answer has gone
// out, or for closeLinger at most, so that answer is not lost with the
// connection.
const (
	lingerAfterMessage = 2 * time.Second
	closeLinger        = time.Second
	// answerQuiet is how long after the last write the answer is taken
	// to be out.
	answerQuiet = 50 * time.Millisecond
)

// tcpAcceptor is the part of *net.TCPListener a GuardedListener uses.
type tcpAcceptor interface {
	AcceptTCP() (*net.TCPConn, error)
	Close() error
	Addr() net.Addr
}

// GuardedListener is the net.Listener sipgo serves SIP over TCP on. It
// applies TCPLimits to every connection it accepts, and it keeps
// accepting through errors that pass (a full file table, an aborted
// handshake): it returns an error only when the listening socket itself
// is closed or broken. Connections parley dials itself never pass
// through it.
type GuardedListener struct {
	ln  tcpAcceptor
	lim TCPLimits
	log *slog.Logger
	tap Tap // sees each message in and out (nil: none)
	// tls, when set, makes each accepted connection SIP over TLS: the
	// handshake runs on the connection's first read (tls.go), and the
	// limits and the framing apply to what it carries.
	tls *tls.Config

	mu       sync.Mutex
	open     int
	perSrc   map[netip.Addr]int
	refused  int // refusals since the last log line
	loggedAt time.Time

	closed    chan struct{}
	closeOnce sync.Once
}

// NewGuardedListener guards ln with lim, logging to log.
func NewGuardedListener(ln *net.TCPListener, lim TCPLimits, log *slog.Logger, opts ...GuardOption) *GuardedListener {
	return newGuardedListener(ln, lim, log, opts...)
}

func newGuardedListener(ln tcpAcceptor, lim TCPLimits, log *slog.Logger, opts ...GuardOption) *GuardedListener {
	l := &GuardedListener{ln: ln, lim: lim, log: log, perSrc: map[netip.Addr]int{}, closed: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Accept returns the next connection within the limits. A connection past
// a limit is closed at once (with a reset, so it holds nothing) and Accept
// waits for the next one. A failed accept is logged and retried after a
// short pause; Accept returns an error only for a listener that cannot go
// on (closed, or a socket error no retry can mend).
func (l *GuardedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) || !retryable(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			l.log.Warn("SIP TCP accept failed; retrying", "addr", l.ln.Addr().String(), "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.closed:
				return nil, net.ErrClosed
			}
			continue
		}
		backoff = 0
		src := sourceIP(c)
		if limit := l.admit(src); limit != "" {
			_ = c.SetLinger(0)
			_ = c.Close()
			l.refuse(src, limit)
			continue
		}
		return l.guard(c, src), nil
	}
}

// Close closes the listening socket; connections already accepted stay.
func (l *GuardedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.ln.Close()
}

// Addr is the listening address.
func (l *GuardedListener) Addr() net.Addr { return l.ln.Addr() }

// Open returns the number of accepted connections open now.
func (l *GuardedListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// retryable reports whether a failed accept may succeed later. Only the
// errors that say the listening socket itself is unusable are final.
func retryable(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EBADF, syscall.EINVAL, syscall.ENOTSOCK, syscall.EOPNOTSUPP, syscall.EFAULT:
			return false
		}
	}
	return true
}

func sourceIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// admit counts a new connection from src, or returns the name of the
// limit it would pass.
func (l *GuardedListener) admit(src netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.MaxConnections > 0 && l.open >= l.lim.MaxConnections {
		return "sip.tcp.max_connections"
	}
	if l.lim.MaxPerSource > 0 && l.perSrc[src] >= l.lim.MaxPerSource {
		return "sip.tcp.max_per_source"
	}
	l.open++
	l.perSrc[src]++
	return ""
}

// release uncounts a connection from src once it is closed.
func (l *GuardedListener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.perSrc[src] - 1; n > 0 {
		l.perSrc[src] = n
	} else {
		delete(l.perSrc, src)
	}
}

// refuse logs a connection closed at a limit: the first one at once, then
// at most one line per refusalLogEvery with the number refused meanwhile.
func (l *GuardedListener) refuse(src netip.Addr, limit string) {
	l.log.Debug("SIP TCP connection refused", "source", src.String(), "limit", limit)
	l.mu.Lock()
	l.refused++
	now := time.Now()
	if now.Sub(l.loggedAt) < refusalLogEvery {
		l.mu.Unlock()
		return
	}
	n := l.refused
	l.refused, l.loggedAt = 0, now
	open := l.open
	l.mu.Unlock()
	l.log.Warn("SIP TCP connections refused at a limit", "refused", n, "last_source", src.String(), "limit", limit, "open", open)
}

// guard wraps an accepted connection.
func (l *GuardedListener) guard(c *net.TCPConn, src netip.Addr) *guardedConn {
	g := &guardedConn{TCPConn: c, l: l, src: src, fr: framer{max: l.lim.MaxMessageSize}}
	g.rw = c
	if l.tls != nil {
		g.tls = tls.Server(c, l.tls)
		g.rw = g.tls
	}
	if l.tap != nil {
		g.local, g.remote = addrPortOf(c.LocalAddr()), addrPortOf(c.RemoteAddr())
		g.fr.tap = func(msg []byte) { l.tap.Seen(TapTCP, g.remote, g.local, msg) }
	}
	if d := l.lim.FirstMessageTimeout; d > 0 {
		g.firstBy = time.Now().Add(d)
	}
	return g
}

// guardedConn is one accepted connection. sipgo reads it from one
// goroutine, so the read side (framer, deadlines) needs no lock; Close
// may come from anywhere.
type guardedConn struct {
	*net.TCPConn
	l   *GuardedListener
	src netip.Addr
	// local and remote are the connection's ends, for the tap.
	local, remote netip.AddrPort

	// rw carries the SIP messages: the TCP connection itself, or tls
	// over it on a TLS listener (shook once its handshake is done).
	rw    io.ReadWriter
	tls   *tls.Conn
	shook bool
	// readAny is set once the connection has sent a first byte.
	readAny bool

	fr        framer
	firstBy   time.Time    // zero: no first-message limit, or it was met
	lastMsg   atomic.Int64 // when the last complete message came (Unix ns)
	lastWrite atomic.Int64 // when parley last wrote to it (Unix ns)
	failed    error        // a framing error: the next Read ends the connection

	closeOnce sync.Once
}

// Read reads from the connection under the idle and first-message
// deadlines, and frames what it reads: a message too large or without a
// usable Content-Length ends the connection after the complete messages
// before it are handed on. An expired deadline ends it too; sipgo sees
// either as the peer's EOF.
func (c *guardedConn) Read(b []byte) (int, error) {
	if c.failed != nil {
		c.awaitAnswer()
		c.Close()
		return 0, io.EOF
	}
	if c.tls != nil && !c.shook {
		if err := c.handshake(); err != nil {
			return 0, io.EOF
		}
	}
	var deadline time.Time
	if d := c.l.lim.IdleTimeout; d > 0 {
		deadline = time.Now().Add(d)
	}
	if !c.firstBy.IsZero() && (deadline.IsZero() || c.firstBy.Before(deadline)) {
		deadline = c.firstBy
	}
	_ = c.TCPConn.SetReadDeadline(deadline)
	n, err := c.rw.Read(b)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			reason := "sip.tcp.idle_timeout: nothing received"
			if !c.firstBy.IsZero() && !time.Now().Before(c.firstBy) {
				reason = "sip.tcp.first_message_timeout: no complete SIP message"
			}
			c.l.log.Debug("SIP TCP connection closed", "source", c.RemoteAddr().String(), "reason", reason)
			c.closeNow()
			return 0, io.EOF
		}
		if errors.Is(err, io.EOF) {
			// The peer is done sending; it may still wait for an answer.
			c.awaitAnswer()
		} else if c.tls != nil && !errors.Is(err, net.ErrClosed) {
			// A broken TLS record or alert: the connection is done, and
			// not worth more than a debug line (sipgo logs other read
			// errors as errors).
			c.l.log.Debug("SIP TLS connection closed", "source", c.RemoteAddr().String(), "reason", handshakeError(err))
			c.closeNow()
			return 0, io.EOF
		}
		return n, err
	}
	if c.tls == nil && !c.readAny && n > 0 && b[0] == tlsHandshakeRecord {
		// A TLS client on a plain TCP listener: closed with one debug
		// line, before sipgo's parser could log its bytes as an error.
		c.l.log.Debug("SIP TCP connection closed", "source", c.RemoteAddr().String(), "reason", "a TLS handshake on a TCP listener (TLS needs a tls:// listener)")
		c.closeNow()
		return 0, io.EOF
	}
	c.readAny = true
	good, complete, ferr := c.fr.feed(b[:n])
	if complete > 0 {
		c.lastMsg.Store(time.Now().UnixNano())
		c.firstBy = time.Time{}
	}
	if ferr != nil {
		c.l.log.Debug("SIP TCP connection closed", "source", c.RemoteAddr().String(), "reason", ferr.Error())
		c.failed = ferr
		if good == 0 {
			c.awaitAnswer()
			c.Close()
			return 0, io.EOF
		}
		return good, nil
	}
	return n, nil
}

// Write writes b and notes when, for awaitAnswer.
func (c *guardedConn) Write(b []byte) (int, error) {
	n, err := c.rw.Write(b)
	if n > 0 {
		c.lastWrite.Store(time.Now().UnixNano())
		// sipgo writes each message with one Write.
		if t := c.l.tap; t != nil {
			t.Seen(TapTCP, c.local, c.remote, b[:n])
		}
	}
	return n, err
}

// awaitAnswer holds the reader of a connection that is about to end, if
// a complete message came just before, until its answer has been written
// (nothing written for answerQuiet after a write since the message) or
// closeLinger has passed.
func (c *guardedConn) awaitAnswer() {
	msg := c.lastMsg.Load()
	if msg == 0 || time.Since(time.Unix(0, msg)) >= lingerAfterMessage {
		return
	}
	_ = c.TCPConn.CloseRead()
	for end := time.Now().Add(closeLinger); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if w := c.lastWrite.Load(); w > msg && time.Since(time.Unix(0, w)) >= answerQuiet {
			return
		}
	}
}

// Close closes the socket and uncounts the connection.
func (c *guardedConn) Close() error {
	c.closeNow()
	return nil
}

func (c *guardedConn) closeNow() {
	c.closeOnce.Do(func() {
		_ = c.TCPConn.Close()
		c.l.release(c.src)
	})
}

package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// served is a guarded listener with sipgo's part played by the test: each
// accepted connection is read until it ends, as sipgo's reader does, and
// what was read is kept.
type served struct {
	l    *GuardedListener
	addr *net.TCPAddr

	mu    sync.Mutex
	conns []net.Conn
	read  map[net.Conn][]byte
	ended chan net.Conn
	wg    sync.WaitGroup
	// answer, when set, is written to a connection 100 ms after a read,
	// as a handler's response would be.
	answer string
}

func serveGuarded(t *testing.T, lim TCPLimits, opts ...GuardOption) *served {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &served{
		l:     NewGuardedListener(ln, lim, slog.New(slog.DiscardHandler), opts...),
		addr:  ln.Addr().(*net.TCPAddr),
		read:  map[net.Conn][]byte{},
		ended: make(chan net.Conn, 100),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					s.read[c] = append(s.read[c], buf[:n]...)
					s.mu.Unlock()
					if n > 0 && s.answer != "" {
						s.wg.Add(1)
						time.AfterFunc(100*time.Millisecond, func() {
							defer s.wg.Done()
							_, _ = c.Write([]byte(s.answer))
						})
					}
					if err != nil {
						c.Close()
						s.ended <- c
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.(*guardedConn).closeNow()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// dial connects from the loopback address from (127.0.0.x).
func (s *served) dial(t *testing.T, from string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// refused reports whether a connection from the loopback address from is
// closed at once (the reset may even reach the dial).
func (s *served) refused(t *testing.T, from string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", s.addr.String())
	if err != nil {
		return errors.Is(err, syscall.ECONNRESET)
	}
	defer c.Close()
	return closedWithin(c, time.Second)
}

// closedWithin reports whether the server closed c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 256)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

func waitOpen(t *testing.T, l *GuardedListener, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for l.Open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", l.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGuardedListenerLimits: past max_per_source or max_connections the
// newest connection is closed at once, the listener goes on, and a closed
// connection frees its place.
func TestGuardedListenerLimits(t *testing.T) {
	s := serveGuarded(t, TCPLimits{MaxConnections: 3, MaxPerSource: 2})
	a1 := s.dial(t, "127.0.0.1")
	s.dial(t, "127.0.0.1")
	waitOpen(t, s.l, 2)
	if !s.refused(t, "127.0.0.1") {
		t.Fatal("a third connection from one source stayed open past max_per_source 2")
	}
	other := s.dial(t, "127.0.0.2")
	waitOpen(t, s.l, 3)
	if !s.refused(t, "127.0.0.3") {
		t.Fatal("a fourth connection stayed open past max_connections 3")
	}
	if closedWithin(other, 100*time.Millisecond) || closedWithin(a1, 10*time.Millisecond) {
		t.Fatal("an older connection was closed; only the newest must be")
	}
	a1.Close()
	waitOpen(t, s.l, 2)
	late := s.dial(t, "127.0.0.3")
	waitOpen(t, s.l, 3)
	if closedWithin(late, 100*time.Millisecond) {
		t.Fatal("a connection within the limits again was refused")
	}
}

// TestGuardedConnTimeouts: a connection that sends nothing is closed after
// the idle timeout; one that trickles bytes without completing a message
// is closed after the first-message timeout; one that sent a message
// stays until it falls idle.
func TestGuardedConnTimeouts(t *testing.T) {
	const first, idle = 400 * time.Millisecond, 900 * time.Millisecond
	s := serveGuarded(t, TCPLimits{IdleTimeout: idle, FirstMessageTimeout: first})

	silent := s.dial(t, "127.0.0.1")
	trickler := s.dial(t, "127.0.0.1")
	good := s.dial(t, "127.0.0.1")
	start := time.Now()
	if _, err := good.Write([]byte(sipMessage("hello"))); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range []byte("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n") {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			if _, err := trickler.Write([]byte{b}); err != nil {
				return
			}
		}
	}()

	if !closedWithin(trickler, first+time.Second) {
		t.Fatal("a trickling connection was not closed at the first-message timeout")
	}
	if took := time.Since(start); took < first-50*time.Millisecond || took > first+500*time.Millisecond {
		t.Errorf("trickler closed after %v, want about %v", took, first)
	}
	if closedWithin(good, 10*time.Millisecond) {
		t.Fatal("a connection that sent a complete message was closed at the first-message timeout")
	}
	if !closedWithin(silent, idle) {
		t.Fatal("a silent connection was not closed")
	}
	if !closedWithin(good, idle+time.Second) {
		t.Fatal("an idle connection was not closed at the idle timeout")
	}
	if took := time.Since(start); took < idle-50*time.Millisecond {
		t.Errorf("idle connection closed after %v, before the idle timeout %v", took, idle)
	}
	waitOpen(t, s.l, 0)
}

// TestGuardedConnFraming: the messages before a framing error reach the
// reader, the bytes from the error on do not, and the connection ends,
// but only once the answer to the good message is out (sipgo forgets a
// connection as soon as its reader sees the end).
func TestGuardedConnFraming(t *testing.T) {
	s := serveGuarded(t, TCPLimits{MaxMessageSize: 300})
	s.answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	c := s.dial(t, "127.0.0.1")
	good := sipMessage("hi")
	start := time.Now()
	if _, err := c.Write([]byte(good + sipMessage(strings.Repeat("x", 400)))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the close: %v", err)
	}
	if string(got) != s.answer {
		t.Fatalf("the peer got %q before the close, want the answer", got)
	}
	if took := time.Since(start); took > closeLinger {
		t.Errorf("closed %v after the framing error; the answer went out after 100 ms", took)
	}
	var sc net.Conn
	select {
	case sc = <-s.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("the reader never saw the end")
	}
	s.mu.Lock()
	read := string(s.read[sc])
	s.mu.Unlock()
	if read != good {
		t.Fatalf("the reader got %q, want only the good message %q", read, good)
	}
	waitOpen(t, s.l, 0)
}

// fakeAcceptor fails with errs, in turn, then accepts from a real listener.
type fakeAcceptor struct {
	*net.TCPListener
	mu   sync.Mutex
	errs []error
}

func (f *fakeAcceptor) AcceptTCP() (*net.TCPConn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.TCPListener.AcceptTCP()
}

// TestGuardedListenerRetries: running out of files is waited out; a
// listening socket that is broken ends Accept with its error.
func TestGuardedListenerRetries(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	enfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.ENFILE}
	fake := &fakeAcceptor{TCPListener: ln, errs: []error{emfile, enfile, emfile}}
	l := newGuardedListener(fake, TCPLimits{}, slog.New(slog.DiscardHandler))
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept gave up on EMFILE/ENFILE: %v", err)
	}
	c.Close()

	fake.errs = []error{&net.OpError{Op: "accept", Net: "tcp", Err: syscall.EINVAL}}
	if _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Accept on a broken socket: %v, want EINVAL", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

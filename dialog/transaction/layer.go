package transaction

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Port is where a transaction sends its bytes: a UDP listener's socket
// (transport.UDPPort in parley).
type Port interface {
	Send(b []byte, dst netip.AddrPort) error
}

// Handler serves the requests that start server transactions, and the
// ACKs to 2xx responses, which belong to no transaction (tx is nil). A
// handler must send a final response before it returns; one that does not
// gets its request a 500.
type Handler interface {
	Handle(req *sip.Request, tx sip.ServerTransaction)
	// Inline reports whether the handler of method never waits (no
	// network, no lock held long), so it may run on the goroutine that
	// read the request instead of being handed to the runner.
	Inline(method sip.RequestMethod) bool
}

// Layer is parley's UDP transaction layer: server transactions (RFC 3261
// §17.2, RFC 6026) for the requests its ports read, client transactions
// (§17.1) for the requests parley sends, and the timers that end both.
type Layer struct {
	handler Handler
	run     func(func())
	log     *slog.Logger
	observe func(method string, code int)
	// stateless, when set, sees every request first (see WithStateless).
	stateless func(port Port, req *sip.Request, src netip.AddrPort) bool

	stx    *serverTxs
	ctx    *clientTxs
	timers txTimers
}

// Option configures a Layer.
type Option func(*Layer)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(t *Layer) { t.log = l } }

// WithRunner sets how handlers that are not Inline run: run must start f
// and return at once (parley's worker pool). The default is a goroutine.
func WithRunner(run func(f func())) Option { return func(t *Layer) { t.run = run } }

// WithResponseObserver sets f to hear of the responses the layer sends
// on its own: the 487 to a CANCELled INVITE, and the 500 for a handler
// that gave no final response. The handler's own responses are its to
// count.
func WithResponseObserver(f func(method string, code int)) Option {
	return func(t *Layer) { t.observe = f }
}

// WithStateless sets f to see every request before the layer makes a
// transaction for it: f returns true when it has dealt with the request
// itself, by dropping it or by answering it without a transaction
// (RespondStateless). A stranger's request can then be challenged
// (RFC 3261 §8.2.7 allows a stateless UAS) without a transaction that
// holds memory for 32 s and retransmits the challenge: a flood costs
// neither, and parley is no amplifier. f runs on the reading goroutine.
func WithStateless(f func(port Port, req *sip.Request, src netip.AddrPort) bool) Option {
	return func(t *Layer) { t.stateless = f }
}

// New returns a Layer that hands requests to h.
func New(h Handler, opts ...Option) *Layer {
	l := &Layer{
		handler: h,
		run:     func(f func()) { go f() },
		log:     slog.Default(),
		observe: func(string, int) {},
	}
	for _, o := range opts {
		o(l)
	}
	l.stx = newServerTxs(l)
	l.ctx = newClientTxs(l)
	return l
}

// Receive takes a request read on port from src: a retransmission is
// answered from its transaction, an ACK to a non-2xx final ends its
// transaction, a CANCEL is matched to its INVITE (RFC 3261 §9.2), and
// anything else starts a transaction and goes to the handler.
func (l *Layer) Receive(port Port, req *sip.Request, src netip.AddrPort) {
	l.stx.receive(port, req, src)
}

// ReceiveResponse takes a response read on a UDP listener; false when no
// client transaction of the layer's matches it.
func (l *Layer) ReceiveResponse(res *sip.Response) bool { return l.ctx.receive(res) }

// Run ends transactions when their time is up, sweeping every 50 ms until
// done is closed.
func (l *Layer) Run(done <-chan struct{}) { l.timers.run(done) }

// ServerLen and ClientLen return how many transactions are held,
// finished ones included while they absorb retransmissions.
func (l *Layer) ServerLen() int { return l.stx.table.len() }

// ClientLen: see ServerLen.
func (l *Layer) ClientLen() int { return l.ctx.table.len() }

// Request sends req to dst over port in a new client transaction.
func (l *Layer) Request(ctx context.Context, port Port, dst netip.AddrPort, req *sip.Request) (sip.ClientTransaction, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, ok := clientKey(req)
	if !ok {
		return nil, errors.New("transaction: request without Via branch or CSeq")
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	req.StringWrite(buf)
	tx := &clientTx{
		t: l.ctx, port: port, key: key, invite: req.IsInvite(), dest: dst,
		origin: req, raw: bytes.Clone(buf.Bytes()),
		responses: make(chan *sip.Response, responsesBuffer),
		done:      make(chan struct{}),
		wait:      sip.T1,
	}
	if _, added := l.ctx.table.insert(key, tx); !added {
		return nil, errors.New("transaction: client transaction exists: " + key)
	}

	tx.mu.Lock()
	tx.timer = time.AfterFunc(tx.wait, tx.retransmit) // Timer A or E
	tx.schedule(queueLong, time.Now().Add(64*sip.T1)) // Timer B or F
	tx.mu.Unlock()
	if err := port.Send(tx.raw, dst); err != nil {
		tx.end(err)
		return nil, err
	}
	return tx, nil
}

// RespondStateless sends res, a response to req read on port from src,
// without a transaction: where a transaction would send it (RFC 3581),
// once.
func (l *Layer) RespondStateless(port Port, req *sip.Request, src netip.AddrPort, res *sip.Response) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	return port.Send(buf.Bytes(), responseDest(req, src))
}

// Write sends req to dst over port outside any transaction: an ACK to a
// 2xx.
func Write(port Port, dst netip.AddrPort, req *sip.Request) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	req.StringWrite(buf)
	return port.Send(buf.Bytes(), dst)
}

package transaction

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// ErrTxDone is returned by Respond when the transaction can send no more.
var ErrTxDone = errors.New("transaction: server transaction has ended")

// Server transaction states (RFC 3261 Figures 7 and 8, RFC 6026 Figure 5).
type stxState uint8

const (
	stxTrying stxState = iota
	stxProceeding
	stxCompleted
	stxConfirmed
	stxAccepted
	stxTerminated
)

// serverTxs holds the live server transactions of every UDP listener.
type serverTxs struct {
	l     *Layer
	table txTable[*serverTx]
}

func newServerTxs(l *Layer) *serverTxs {
	t := &serverTxs{l: l}
	t.table.init()
	return t
}

// receive takes a request read on port from src: a retransmission is
// answered from its transaction, an ACK to a non-2xx final response ends
// its transaction, a CANCEL is matched to its INVITE (RFC 3261 §9.2), and
// anything else starts a transaction and goes to the handlers.
func (t *serverTxs) receive(port Port, req *sip.Request, src netip.AddrPort) {
	if t.l.stateless != nil && t.l.stateless(port, req, src) {
		return
	}
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		// No Via or CSeq: the handlers answer 400 where they can, from a
		// transaction that keeps nothing.
		t.dispatch(req, newServerTx(t, port, "", req, src))
		return
	}
	if req.IsAck() {
		if tx := t.table.lookup(key); tx != nil && tx.ack() {
			return
		}
		// The ACK for a 2xx, or one that reused its INVITE's branch after
		// a 2xx: the dialog layer takes it.
		t.dispatch(req, nil)
		return
	}
	// One visit to the table: insert, and treat the request as a
	// retransmission when its transaction is there already.
	tx := newServerTx(t, port, key, req, src)
	if got, added := t.table.insert(key, tx); !added {
		got.retransmitted()
		return
	}
	if req.IsCancel() && strings.HasSuffix(key, string(sip.CANCEL)) {
		if inv := t.table.lookup(strings.TrimSuffix(key, string(sip.CANCEL)) + string(sip.INVITE)); inv != nil {
			_ = tx.Respond(sipmsg.NewResponse(req, 200, "OK", ""))
			inv.cancel(req)
			return
		}
	}
	t.dispatch(req, tx)
}

// dispatch runs the request's handler, on the reading goroutine when the
// handler says it never waits, else through the Layer's runner; tx is nil
// for an ACK.
func (t *serverTxs) dispatch(req *sip.Request, tx *serverTx) {
	h := t.l.handler
	var stx sip.ServerTransaction
	if tx != nil {
		stx = tx
	}
	run := func() {
		h.Handle(req, stx)
		if tx != nil {
			tx.handlerReturned(req)
		}
	}
	if h.Inline(req.Method) {
		run()
		return
	}
	t.l.run(run)
}

// handlerReturned makes sure the request got a final response: a handler
// that returned without one is a bug in parley, and the caller gets a 500
// rather than silence until its own timeout (RFC 3261 §8.2: a UAS answers
// every request but ACK).
func (tx *serverTx) handlerReturned(req *sip.Request) {
	tx.mu.Lock()
	open := tx.state == stxTrying || tx.state == stxProceeding
	tx.mu.Unlock()
	if !open {
		return
	}
	tx.t.l.log.Error("handler returned without a final response; answering 500", "method", string(req.Method), "call_id", sipmsg.CallID(req))
	tx.t.l.observe(string(req.Method), 500)
	_ = tx.Respond(sipmsg.NewResponse(req, 500, "Server Internal Error", ""))
}

// serverTx is one server transaction on a UDP listener. It implements
// sip.ServerTransaction, so the handlers serve UDP and TCP (sipgo's
// transactions) alike.
type serverTx struct {
	t      *serverTxs
	port   Port
	key    string // "" for a transaction outside the table
	invite bool
	dest   netip.AddrPort // where responses go (RFC 3261 §18.2.2, RFC 3581)

	mu       sync.Mutex
	state    stxState
	origin   *sip.Request // until the final response
	last     []byte       // the last response, to send again
	toTag    string       // of the first response with one
	gWait    time.Duration
	gTimer   *time.Timer
	expireAt time.Time
	onCancel sip.FnTxCancel
	canceled *sip.Request // the CANCEL that ended it, for a late OnCancel
	onTerm   []sip.FnTxTerminate
	done     chan struct{}
	err      error
}

func newServerTx(t *serverTxs, port Port, key string, req *sip.Request, src netip.AddrPort) *serverTx {
	return &serverTx{
		t: t, port: port, key: key, invite: req.IsInvite(), dest: responseDest(req, src),
		origin: req, done: make(chan struct{}),
	}
}

// responseDest is where UDP responses to req go: the source address and
// port when the Via asks for rport (RFC 3581), else the source address
// (the "received" of RFC 3261 §18.2.1) and the Via's sent-by port.
func responseDest(req *sip.Request, src netip.AddrPort) netip.AddrPort {
	via := req.Via()
	if via == nil || via.Params.Has("rport") {
		return src
	}
	port := via.Port
	if port <= 0 {
		port = 5060
	}
	return netip.AddrPortFrom(src.Addr(), uint16(port))
}

// Respond sends res and moves the transaction on.
func (tx *serverTx) Respond(res *sip.Response) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	res.StringWrite(buf)

	tx.mu.Lock()
	switch tx.state {
	case stxTrying, stxProceeding:
	case stxAccepted:
		// RFC 6026 §8.5: 2xx retransmissions from the TU go out.
		if !res.IsSuccess() {
			tx.mu.Unlock()
			return ErrTxDone
		}
	default:
		tx.mu.Unlock()
		return ErrTxDone
	}
	if tx.toTag == "" && res.StatusCode > 100 {
		if to := res.To(); to != nil {
			tx.toTag, _ = to.Params.Get("tag")
		}
	}
	now := time.Now()
	if !res.IsProvisional() {
		// The handler's hook holds on to its call; the transaction, which
		// lives on 64*T1, needs it no more.
		tx.onCancel = nil
	}
	switch {
	case res.IsProvisional():
		tx.state = stxProceeding
		if res.StatusCode > 100 || tx.last == nil {
			tx.last = append(tx.last[:0], buf.Bytes()...)
		}
	case tx.invite && res.IsSuccess():
		if tx.state != stxAccepted {
			tx.state = stxAccepted
			tx.origin, tx.last = nil, nil
			tx.schedule(now.Add(64*sip.T1), false) // Timer L
		}
	case tx.invite:
		tx.completeInviteLocked(buf.Bytes())
	default:
		tx.state = stxCompleted
		tx.origin = nil
		tx.last = append(tx.last[:0], buf.Bytes()...)
		tx.schedule(now.Add(64*sip.T1), false) // Timer J
	}
	tx.mu.Unlock()
	return tx.port.Send(buf.Bytes(), tx.dest)
}

// completeInviteLocked makes res, a non-2xx final response to INVITE, the
// last one: it is resent on Timer G until the ACK, and Timer H runs.
func (tx *serverTx) completeInviteLocked(res []byte) {
	tx.state = stxCompleted
	tx.origin = nil
	tx.last = append(tx.last[:0], res...)
	tx.gWait = sip.T1
	tx.gTimer = time.AfterFunc(tx.gWait, tx.timerG)
	tx.schedule(time.Now().Add(64*sip.T1), false) // Timer H
}

// schedule makes the transaction end at at. Call with tx.mu held.
func (tx *serverTx) schedule(at time.Time, short bool) {
	if tx.key == "" {
		return // not in the table: nothing to remove
	}
	tx.expireAt = at
	q := queueLong
	if short {
		q = queueShort
	}
	tx.t.l.timers.add(q, tx, at)
}

// expire is a queue entry coming due: it ends the transaction unless the
// entry is stale (the transaction was rescheduled meanwhile).
func (tx *serverTx) expire(at time.Time) {
	tx.mu.Lock()
	if !tx.expireAt.Equal(at) || tx.state == stxTerminated {
		tx.mu.Unlock()
		return
	}
	var err error
	if tx.state == stxCompleted && tx.invite {
		err = sip.ErrTransactionTimeout // Timer H: no ACK came
	}
	tx.terminateLocked(err)
}

// timerG retransmits a non-2xx final response to INVITE until the ACK.
func (tx *serverTx) timerG() {
	tx.mu.Lock()
	if tx.state != stxCompleted {
		tx.mu.Unlock()
		return
	}
	tx.gWait = min(2*tx.gWait, sip.T2)
	tx.gTimer.Reset(tx.gWait)
	last := tx.last
	tx.mu.Unlock()
	_ = tx.port.Send(last, tx.dest)
}

// retransmitted answers a retransmitted request with the last response.
func (tx *serverTx) retransmitted() {
	tx.mu.Lock()
	var last []byte
	if tx.state == stxProceeding || tx.state == stxCompleted {
		last = tx.last
	}
	tx.mu.Unlock()
	if last != nil {
		_ = tx.port.Send(last, tx.dest)
	}
}

// ack takes an ACK matching this transaction; false when it is not the
// ACK of a non-2xx final response and belongs to the dialog layer.
func (tx *serverTx) ack() bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch tx.state {
	case stxCompleted:
		tx.state = stxConfirmed
		tx.last = nil
		if tx.gTimer != nil {
			tx.gTimer.Stop()
		}
		tx.schedule(time.Now().Add(sip.T4), true) // Timer I
		return true
	case stxConfirmed:
		return true
	case stxAccepted:
		return false
	}
	return true // before any final response: nothing to acknowledge
}

// cancel takes a CANCEL for this INVITE (already answered 200): unless a
// final response went out, the INVITE gets 487 with the To tag of its
// provisional responses, and the handler hears of it. The 487 takes the
// transaction's final response under its lock, so a 2xx the handler sends
// at the same moment fails instead of going out too (RFC 3261 §9.2). The
// OnCancel hook must not call back into the transaction.
func (tx *serverTx) cancel(req *sip.Request) {
	tx.mu.Lock()
	origin, tag := tx.origin, tx.toTag
	open := (tx.state == stxTrying || tx.state == stxProceeding) && origin != nil
	tx.mu.Unlock()
	if !open {
		return
	}
	res := sipmsg.NewResponse(origin, 487, "Request Terminated", tag)
	var buf bytes.Buffer
	res.StringWrite(&buf)

	tx.mu.Lock()
	if tx.state != stxTrying && tx.state != stxProceeding {
		tx.mu.Unlock()
		return // a final response won
	}
	tx.canceled = req
	tx.completeInviteLocked(buf.Bytes())
	// The hook runs under the lock, as sipgo's does: once a racing Respond
	// has failed, the handler can count on the hook having run.
	if tx.onCancel != nil {
		tx.onCancel(req)
	}
	tx.mu.Unlock()
	_ = tx.port.Send(buf.Bytes(), tx.dest)
	tx.t.l.observe("INVITE", 487)
}

// Acks is never fed: ACKs to a 2xx go to the handlers as requests.
func (tx *serverTx) Acks() <-chan *sip.Request { return nil }

// OnCancel sets f to hear of a CANCEL that ends this INVITE; when one
// came before the handler got this far, f hears of it at once.
func (tx *serverTx) OnCancel(f sip.FnTxCancel) bool {
	tx.mu.Lock()
	if tx.canceled != nil {
		req := tx.canceled
		tx.mu.Unlock()
		f(req)
		return true
	}
	defer tx.mu.Unlock()
	if tx.state == stxTerminated {
		return false
	}
	tx.onCancel = f
	return true
}

// OnTerminate adds f to the functions called when the transaction ends;
// false when it has ended already.
func (tx *serverTx) OnTerminate(f sip.FnTxTerminate) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == stxTerminated {
		return false
	}
	tx.onTerm = append(tx.onTerm, f)
	return true
}

// Terminate ends the transaction now.
func (tx *serverTx) Terminate() {
	tx.mu.Lock()
	if tx.state == stxTerminated {
		tx.mu.Unlock()
		return
	}
	tx.terminateLocked(sip.ErrTransactionTerminated)
}

// terminateLocked ends the transaction and unlocks tx.mu.
func (tx *serverTx) terminateLocked(err error) {
	tx.state = stxTerminated
	tx.err = err
	tx.origin, tx.last, tx.onCancel, tx.canceled = nil, nil, nil, nil
	if tx.gTimer != nil {
		tx.gTimer.Stop()
	}
	fs := tx.onTerm
	tx.onTerm = nil
	close(tx.done)
	tx.mu.Unlock()
	if tx.key != "" {
		tx.t.table.delete(tx.key, tx)
	}
	for _, f := range fs {
		f(tx.key, err)
	}
}

// Done is closed when the transaction ends.
func (tx *serverTx) Done() <-chan struct{} { return tx.done }

// Err says why the transaction ended: nil when it ran its course.
func (tx *serverTx) Err() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.err
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

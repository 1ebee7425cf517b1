package transaction

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Client transaction states.
type ctxState uint8

const (
	ctxCalling ctxState = iota // INVITE Calling, non-INVITE Trying
	ctxProceeding
	ctxCompleted
	ctxAccepted
	ctxTerminated
)

// responsesBuffer is how many responses a transaction holds for its
// handler; a handler reads them as they come.
const responsesBuffer = 8

type clientTxs struct {
	l     *Layer
	table txTable[*clientTx]
}

func newClientTxs(l *Layer) *clientTxs {
	t := &clientTxs{l: l}
	t.table.init()
	return t
}

// clientKey matches a response to its request (RFC 3261 §17.1.3): the top
// Via's branch and the CSeq method.
func clientKey(m sip.Message) (string, bool) {
	via, cseq := m.Via(), m.CSeq()
	if via == nil || cseq == nil {
		return "", false
	}
	branch, ok := via.Params.Get("branch")
	if !ok || branch == "" {
		return "", false
	}
	return branch + "|" + string(cseq.MethodName), true
}

// receive takes a response read on a UDP listener; false when no
// transaction of parley's matches it (it may be sipgo's).
func (t *clientTxs) receive(res *sip.Response) bool {
	key, ok := clientKey(res)
	if !ok {
		return false
	}
	tx := t.table.lookup(key)
	if tx == nil {
		return false
	}
	tx.receive(res)
	return true
}

// clientTx is one client transaction over UDP. It implements
// sip.ClientTransaction like sipgo's: the handler reads responses from
// Responses, a 2xx that comes again after the first goes to the
// OnRetransmission functions, and Terminate drops the transaction.
type clientTx struct {
	t      *clientTxs
	port   Port
	key    string
	invite bool
	dest   netip.AddrPort

	mu        sync.Mutex
	state     ctxState
	origin    *sip.Request // until the final response
	raw       []byte       // the request while it may be resent; then an ACK to resend
	wait      time.Duration
	timer     *time.Timer // Timer A or E
	expireAt  time.Time
	responses chan *sip.Response
	onRetrans []sip.FnTxResponse
	onTerm    []sip.FnTxTerminate
	done      chan struct{}
	err       error
}

func (tx *clientTx) schedule(queue int, at time.Time) {
	tx.expireAt = at
	tx.t.l.timers.add(queue, tx, at)
}

// retransmit is Timer A (INVITE: doubling each time) or Timer E
// (non-INVITE: doubling up to T2, and T2 once a provisional came).
func (tx *clientTx) retransmit() {
	tx.mu.Lock()
	if tx.state != ctxCalling && (tx.invite || tx.state != ctxProceeding) {
		tx.mu.Unlock()
		return
	}
	tx.wait *= 2
	if !tx.invite {
		tx.wait = min(tx.wait, sip.T2)
		if tx.state == ctxProceeding {
			tx.wait = sip.T2
		}
	}
	tx.timer.Reset(tx.wait)
	raw := tx.raw
	tx.mu.Unlock()
	_ = tx.port.Send(raw, tx.dest)
}

// expire is a queue entry coming due: Timer B or F (no final response in
// time: the transaction fails with a timeout), or Timer D, K or M (the
// transaction has run its course).
func (tx *clientTx) expire(at time.Time) {
	tx.mu.Lock()
	if !tx.expireAt.Equal(at) || tx.state == ctxTerminated {
		tx.mu.Unlock()
		return
	}
	var err error
	switch {
	case tx.state == ctxCalling, !tx.invite && tx.state == ctxProceeding:
		err = sip.ErrTransactionTimeout
	case tx.state == ctxProceeding:
		// INVITE after a provisional: Timer B no longer runs (the
		// dialog layer's Timer C does).
		tx.mu.Unlock()
		return
	}
	tx.endLocked(err)
}

// receive moves the transaction on with a response.
func (tx *clientTx) receive(res *sip.Response) {
	tx.mu.Lock()
	switch tx.state {
	case ctxTerminated:
		tx.mu.Unlock()
		return
	case ctxAccepted:
		fs := tx.onRetrans
		tx.mu.Unlock()
		if res.IsSuccess() {
			for _, f := range fs {
				f(res)
			}
		}
		return
	case ctxCompleted:
		ack := tx.raw
		tx.mu.Unlock()
		if tx.invite && ack != nil && res.StatusCode >= 300 {
			_ = tx.port.Send(ack, tx.dest) // the final came again
		}
		return
	}
	now := time.Now()
	switch {
	case res.IsProvisional():
		tx.state = ctxProceeding
		if tx.invite && tx.timer != nil {
			tx.timer.Stop()
		}
	case tx.invite && res.IsSuccess():
		tx.state = ctxAccepted
		tx.stopLocked()
		tx.origin, tx.raw = nil, nil
		tx.schedule(queueLong, now.Add(64*sip.T1)) // Timer M
	case tx.invite:
		tx.state = ctxCompleted
		tx.stopLocked()
		ack := AckFor(tx.origin, res)
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		ack.StringWrite(buf)
		tx.raw = bytes.Clone(buf.Bytes())
		bufPool.Put(buf)
		tx.origin = nil
		_ = tx.port.Send(tx.raw, tx.dest)
		tx.schedule(queueD, now.Add(timerD(sip.T1)))
	default:
		tx.state = ctxCompleted
		tx.stopLocked()
		tx.origin, tx.raw = nil, nil
		tx.schedule(queueShort, now.Add(sip.T4)) // Timer K
	}
	tx.mu.Unlock()
	select {
	case tx.responses <- res:
	default:
		tx.t.l.log.Warn("response dropped: its handler does not read", "status", res.StatusCode, "call_id", sipmsg.CallID(res))
	}
}

// stopLocked stops Timer A or E for good.
func (tx *clientTx) stopLocked() {
	if tx.timer != nil {
		tx.timer.Stop()
		tx.timer = nil
	}
}

// AckFor builds the ACK to a non-2xx final response to INVITE (RFC 3261
// §17.1.1.3): the INVITE's Request-URI, top Via, Route, From, Call-ID and
// CSeq number, and the response's To.
func AckFor(inv *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *inv.Recipient.Clone())
	ack.SipVersion = inv.SipVersion
	if via := inv.Via(); via != nil {
		ack.AppendHeader(sip.HeaderClone(via))
	}
	for _, h := range sipmsg.HeadersNamed(inv, "Route") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	if h := inv.From(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := inv.CallID(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := inv.CSeq(); h != nil {
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: h.SeqNo, MethodName: sip.ACK})
	}
	ack.SetBody(nil)
	return ack
}

// Responses delivers the responses, each once.
func (tx *clientTx) Responses() <-chan *sip.Response { return tx.responses }

// OnRetransmission adds f to the functions called with every 2xx after
// the first; false once the transaction has ended.
func (tx *clientTx) OnRetransmission(f sip.FnTxResponse) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == ctxTerminated {
		return false
	}
	tx.onRetrans = append(tx.onRetrans, f)
	return true
}

// OnTerminate adds f to the functions called when the transaction ends.
func (tx *clientTx) OnTerminate(f sip.FnTxTerminate) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == ctxTerminated {
		return false
	}
	tx.onTerm = append(tx.onTerm, f)
	return true
}

// Terminate ends the transaction now; its responses from then on are
// strays.
func (tx *clientTx) Terminate() { tx.end(sip.ErrTransactionCanceled) }

func (tx *clientTx) end(err error) {
	tx.mu.Lock()
	if tx.state == ctxTerminated {
		tx.mu.Unlock()
		return
	}
	tx.endLocked(err)
}

// endLocked ends the transaction and unlocks tx.mu. A transaction that ran
// its course ends with ErrTransactionTerminated, as sipgo's do.
func (tx *clientTx) endLocked(err error) {
	if err == nil {
		err = sip.ErrTransactionTerminated
	}
	tx.state = ctxTerminated
	tx.err = err
	tx.stopLocked()
	tx.origin, tx.raw, tx.onRetrans = nil, nil, nil
	fs := tx.onTerm
	tx.onTerm = nil
	close(tx.done)
	tx.mu.Unlock()
	tx.t.table.delete(tx.key, tx)
	for _, f := range fs {
		f(tx.key, err)
	}
}

// Done is closed when the transaction ends.
func (tx *clientTx) Done() <-chan struct{} { return tx.done }

// Err says why it ended.
func (tx *clientTx) Err() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.err
}

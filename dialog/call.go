package dialog

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
)

// role says which side of a call a leg faces.
type role uint8

const (
	roleCaller role = iota // the leg parley answers (UAS side)
	roleCallee             // the leg parley places (UAC side)
)

func (r role) String() string {
	if r == roleCaller {
		return "caller"
	}
	return "callee"
}

// leg is one dialog of a call: parley's half of the dialog with one phone.
// Its fields belong to the owning Call: only the call's queue touches them.
type leg struct {
	call *Call
	role role
	// uac is set when parley sent the INVITE that made the dialog (the
	// callee's leg, or a leg a transfer placed): parley ACKs its 2xx.
	uac bool
	// gone is set once a transfer took the leg out of its call: its phone
	// may still send a BYE (answered 200) but nothing else reaches the call.
	gone bool

	callID    string
	localTag  string
	remoteTag string
	// local and remote are the From/To addresses of this dialog as parley
	// sees them (local is parley's side).
	local, remote sip.Uri
	localName     string
	remoteName    string
	// target is the remote Contact; routes the route set (RFC 3261 §12.1).
	target sip.Uri
	routes []sip.Uri
	// dest and transport are the next hop: where the phone's requests came
	// from, or where its INVITE went, so a phone behind NAT is reached on the
	// path it uses (RFC 3581).
	dest      string
	transport string

	localCSeq  uint32
	remoteCSeq uint32
	// inviteCSeq is the CSeq of the INVITE that made the dialog.
	inviteCSeq uint32
	// st is the leg's RFC 4028 session timer.
	st sessionTimer

	// dialog is the leg's dialog state.
	dialog DialogState

	// Caller side: a 2xx waiting for its ACK, retransmitted over UDP.
	okTx     sip.ServerTransaction
	okRes    *sip.Response
	okTimer  *time.Timer
	okCSeq   uint32
	okWait   time.Duration
	okSent   time.Time
	ackedFor func(ack *sip.Request) // runs when the awaited ACK arrives

	// Callee side: the ACK last sent for a 2xx, resent when the 2xx is;
	// see ackSlot.
	acks weak.Pointer[ackSlot]
}

// keptURI copies u for a leg to keep for the call's life, strings and
// all: sipgo's point into the text of the whole header, which the leg would
// otherwise keep alive with them.
func keptURI(u *sip.Uri) sip.Uri {
	c := *u
	c.Scheme = strings.Clone(u.Scheme)
	c.User = strings.Clone(u.User)
	c.Password = strings.Clone(u.Password)
	c.Host = strings.Clone(u.Host)
	c.UriParams = keptParams(u.UriParams)
	c.Headers = keptParams(u.Headers)
	return c
}

func keptParams(p sip.HeaderParams) sip.HeaderParams {
	if p == nil {
		return nil
	}
	out := make(sip.HeaderParams, len(p))
	for i, kv := range p {
		out[i] = sip.HeaderKV{K: strings.Clone(kv.K), V: strings.Clone(kv.V)}
	}
	return out
}

// key is the call table key for requests arriving on this leg.
func (l *leg) key() string { return l.callID + "\x00" + l.localTag }

// Call is one session through parley: a caller leg and, once placed, a
// callee leg, with one state machine.
//
// A call has one owner, its queue (see serial): every field below ID is
// read and written only by functions run through c.do or c.post, one at a
// time and in the order they came. The channels are the exception: they
// are closed inside the queue and may be waited on anywhere.
type Call struct {
	// ID names the call in logs, metrics and the admin API.
	ID string

	q    serial
	work *workers

	state    State
	caller   *leg
	callee   *leg
	from, to string // user parts, for logs
	account  string // the local account the call counts against, if any
	start    time.Time
	answer   time.Time
	end      time.Time
	result   string
	reason   string
	log      callLog
	// cancelled is closed when the caller CANCELs before the answer.
	cancelled  chan struct{}
	cancelOnce sync.Once
	// aborted is closed when parley itself gives up a call being set up
	// (shutdown, admin hangup).
	aborted   chan struct{}
	abortOnce sync.Once
	// decided is closed once the second leg is settled: answered, failed
	// or cancelled.
	decided chan struct{}
	// closed is closed when the call is.
	closed chan struct{}
	// maxTimer ends the call at sessions.max_duration.
	maxTimer *time.Timer
	// svc is the media session of a call answered by a built-in service.
	svc       ServiceSession
	svcAnswer []byte
	// media relays the call's RTP (nil without a relay).
	media MediaSession
	// lateOffer is set when the INVITE had no SDP: the offer comes in the
	// 2xx and the answer in the ACK.
	lateOffer bool
	// negotiating is set while an offer crosses between the legs (a
	// relayed re-INVITE or UPDATE with SDP, or parley's own refresh), so an
	// offer from the other side meanwhile gets 491 (RFC 3261 §14.2).
	negotiating bool
	// rel sends the caller its provisional responses reliably (RFC 3262).
	rel reliable
	// checkpointed is set once a checkpoint of the call was taken, so its
	// end deletes it; ckAt is when the last was taken, and ckQuality the
	// media counters it held (see minorSync).
	checkpointed bool
	ckAt         time.Time
	ckQuality    MediaQuality
	// xfer is the transfer in progress on the call, if any (see transfer).
	xfer *transfer
	// page holds a page's members (paging.go); nil for other calls.
	page *pageCall
	// app names the service that answered the call, and code is the
	// final status of a call that failed, for its record (record.go).
	app  string
	code int
}

// do runs f in the call's queue and returns once it has run. It must not
// be called from inside the queue.
func (c *Call) do(f func()) { c.q.do(c.work, f) }

// post queues f in the call's queue and returns at once.
func (c *Call) post(f func()) { c.q.post(c.work, f) }

// other returns the leg on the far side of l.
func (c *Call) other(l *leg) *leg {
	if l == c.caller {
		return c.callee
	}
	return c.caller
}

// Snapshot is a copy of a call's public facts, safe to read anywhere.
type Snapshot struct {
	ID     string    `json:"id"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	State  string    `json:"state"`
	Start  time.Time `json:"start"`
	Answer time.Time `json:"answer,omitzero"`
	Result string    `json:"result,omitempty"`
	// Legs are the dialog states of the caller's and the callee's leg.
	Legs struct {
		Caller string `json:"caller"`
		Callee string `json:"callee"`
	} `json:"legs"`
	// Media is the codec and quality of a relayed call.
	Media *MediaQuality `json:"media,omitempty"`
}

// Snapshot returns the call's current facts, read in the call's queue.
func (c *Call) Snapshot() Snapshot {
	var snap Snapshot
	var m MediaSession
	c.do(func() {
		snap = Snapshot{ID: c.ID, From: c.from, To: c.to, State: c.state.String(), Start: c.start, Answer: c.answer, Result: c.result}
		snap.Legs.Caller, snap.Legs.Callee = DialogNone.String(), DialogNone.String()
		if c.caller != nil {
			snap.Legs.Caller = c.caller.dialog.String()
		}
		if c.callee != nil {
			snap.Legs.Callee = c.callee.dialog.String()
		}
		m = c.media
	})
	if m != nil {
		q := m.Quality()
		snap.Media = &q
	}
	return snap
}

// ackSlot holds the last ACK parley sent on a leg, apart from the leg: an
// INVITE client transaction answers the 2xx retransmissions it sees until
// Timer M (32 s) with it, and keeps only the slot alive that long, not the
// whole call.
type ackSlot struct{ p atomic.Pointer[sip.Request] }

// ackSlot returns the leg's slot. The leg holds it weakly: the retransmission
// hook of the INVITE client transaction holds it until Timer M, and once
// that is gone nothing could resend the ACK, so the slot and its ACK go
// with the garbage instead of staying for the whole call. Run it in the
// call's queue.
func (l *leg) ackSlot() *ackSlot {
	if a := l.acks.Value(); a != nil {
		return a
	}
	a := new(ackSlot)
	l.acks = weak.Make(a)
	return a
}

// resend sends the ACK in the slot again, if there is one and it is for
// the INVITE with CSeq cseq (0: any).
func (a *ackSlot) resend(s *Server, cseq uint32) {
	ack := a.p.Load()
	if ack == nil || cseq != 0 && ack.CSeq().SeqNo != cseq {
		return
	}
	_ = s.write(ack)
}

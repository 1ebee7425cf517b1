package dialog

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
)

// This file is what a call leaves behind at its sync points so that a new
// process (after a crash or an upgrade) or another node can resume it: the
// checkpoint, taken in the call's queue so it is consistent, and its
// restoring. ckwriter.go writes them.
//
// Major sync points are those both phones agreed on: the answer's ACK, a
// completed re-INVITE or UPDATE, a session refresh, hold and resume; a
// relayed in-dialog request too, since it moves the CSeqs on. Minor sync
// points are the media counters, written every few seconds. A call being
// set up writes nothing, and a call's end deletes its checkpoint.

// Checkpoints is where calls' checkpoints are kept (package dialog/store
// has an embedded bbolt store and a Redis one). The B2BUA writes from one
// goroutine; Load is called once, at start.
type Checkpoints interface {
	// Write stores put (call ID to checkpoint) and deletes the calls in
	// del, as one batch.
	Write(put map[string][]byte, del []string) error
	// Load returns the checkpoints this node owns.
	Load() (map[string][]byte, error)
}

// MediaRestorer is a Media that can rebuild a session from its
// checkpoint: on the same relay ports (Restore, a restart), or on new ones
// (Move, a call adopted from a dead node).
type MediaRestorer interface {
	Restore(data []byte) (MediaSession, error)
	Move(data []byte) (MediaSession, error)
}

// mediaReofferer is a MediaSession that takes a phone's answer to an SDP
// parley offered it itself (a refresh, or the new ports after a move).
type mediaReofferer interface {
	Reoffered(fromCaller bool, answer []byte) error
}

// mediaCheckpointer is a MediaSession that can say what Restore needs:
// its state, taken in the call's queue, which the checkpoint writer turns
// into JSON off the signalling path.
type mediaCheckpointer interface {
	CheckpointState() (any, error)
}

// WithCheckpoints makes the B2BUA checkpoint its answered calls to cp, and
// restore those cp holds when Serve starts.
func WithCheckpoints(cp Checkpoints) Option {
	return func(s *Server) error { s.ckpt = newCkWriter(cp); return nil }
}

// WithNode names this node in checkpoints and logs.
func WithNode(id string) Option {
	return func(s *Server) error { s.node = id; return nil }
}

// ckVersion is the checkpoint format; a checkpoint of another version is
// not restored.
const ckVersion = 1

// callState is a call's checkpoint.
type callState struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Node    string    `json:"node,omitempty"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Account string    `json:"account,omitempty"`
	State   string    `json:"state"`
	Start   time.Time `json:"start"`
	Answer  time.Time `json:"answer"`
	Written time.Time `json:"written"`
	Caller  legState  `json:"caller"`
	Callee  legState  `json:"callee"`
	// Media is the media session's own checkpoint (package media's). The
	// writer fills it from media, the state taken in the call's queue.
	Media json.RawMessage `json:"media,omitempty"`
	media any
	// Quality is the minor sync point: what the relay counted so far.
	Quality *MediaQuality `json:"quality,omitempty"`
}

// legState is one dialog of a checkpoint (RFC 3261 §12).
type legState struct {
	CallID     string   `json:"call_id"`
	LocalTag   string   `json:"local_tag"`
	RemoteTag  string   `json:"remote_tag"`
	Local      string   `json:"local"`
	Remote     string   `json:"remote"`
	LocalName  string   `json:"local_name,omitempty"`
	RemoteName string   `json:"remote_name,omitempty"`
	Target     string   `json:"target"`
	Routes     []string `json:"routes,omitempty"`
	Dest       string   `json:"dest"`
	Transport  string   `json:"transport"`
	LocalCSeq  uint32   `json:"local_cseq"`
	RemoteCSeq uint32   `json:"remote_cseq"`
	InviteCSeq uint32   `json:"invite_cseq"`
	// The RFC 4028 session timer: its interval, who refreshes, and when
	// the timer falls due (a refresh by parley, or the hangup of a phone
	// that did not refresh).
	Interval  time.Duration `json:"interval_ns"`
	Refresher string        `json:"refresher"` // "parley" or "phone"
	Supported bool          `json:"timer_supported,omitempty"`
	Update    bool          `json:"update,omitempty"`
	Due       time.Time     `json:"due,omitzero"`
}

// checkpoint is a sync point of call c: its checkpoint goes to the writer.
// Calls not yet answered, ending, answered by a service, or with an offer
// waiting for its answer (the media session refuses) write nothing. Run it in the call's queue.
func (s *Server) checkpoint(c *Call) {
	if s.ckpt == nil || !s.cfg.Sessions.Checkpoint {
		return
	}
	st, ok := s.callState(c)
	if !ok {
		return
	}
	c.checkpointed, c.ckAt = true, time.Now()
	s.ckpt.put(c.ID, st)
}

// callState takes call c's checkpoint. Run it in the call's queue.
func (s *Server) callState(c *Call) (*callState, bool) {
	if (c.state != Active && c.state != Suspended) || c.svc != nil || c.caller == nil || c.callee == nil {
		return nil, false
	}
	if c.caller.okRes != nil || c.callee.okRes != nil {
		return nil, false // a 2xx still waits for its ACK
	}
	st := &callState{
		V: ckVersion, ID: c.ID, Node: s.node, From: c.from, To: c.to, Account: c.account,
		State: c.state.String(), Start: c.start, Answer: c.answer, Written: time.Now(),
		Caller: c.caller.state(), Callee: c.callee.state(),
	}
	if c.media != nil {
		mc, ok := c.media.(mediaCheckpointer)
		if !ok {
			return nil, false
		}
		ms, err := mc.CheckpointState()
		if err != nil {
			// An offer waits for its answer: the answer is the next sync
			// point.
			return nil, false
		}
		st.media = ms
	}
	return st, true
}

// state is leg l's part of a checkpoint.
func (l *leg) state() legState {
	ls := legState{
		CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
		Local: l.local.String(), Remote: l.remote.String(), LocalName: l.localName, RemoteName: l.remoteName,
		Target: l.target.String(), Dest: l.dest, Transport: l.transport,
		LocalCSeq: l.localCSeq, RemoteCSeq: l.remoteCSeq, InviteCSeq: l.inviteCSeq,
		Interval: l.st.interval, Refresher: "phone", Supported: l.st.supported, Update: l.st.update, Due: l.st.due,
	}
	if l.st.parley {
		ls.Refresher = "parley"
	}
	for _, r := range l.routes {
		ls.Routes = append(ls.Routes, r.String())
	}
	return ls
}

// restoreLeg rebuilds a leg of call c from its checkpoint.
func restoreLeg(c *Call, r role, ls legState) (*leg, error) {
	l := &leg{
		call: c, role: r, uac: r == roleCallee, callID: ls.CallID, localTag: ls.LocalTag, remoteTag: ls.RemoteTag,
		localName: ls.LocalName, remoteName: ls.RemoteName, dest: ls.Dest, transport: ls.Transport,
		localCSeq: ls.LocalCSeq, remoteCSeq: ls.RemoteCSeq, inviteCSeq: ls.InviteCSeq,
		dialog: DialogConfirmed,
		st: sessionTimer{interval: ls.Interval, parley: ls.Refresher == "parley", supported: ls.Supported,
			update: ls.Update, due: ls.Due},
	}
	if l.callID == "" || l.localTag == "" || l.remoteTag == "" {
		return nil, fmt.Errorf("%v leg: no dialog identifiers", r)
	}
	if l.transport != "udp" && l.transport != "tcp" && l.transport != "tls" {
		return nil, fmt.Errorf("%v leg: transport %q", r, l.transport)
	}
	for _, u := range []struct {
		dst *sip.Uri
		src string
	}{{&l.local, ls.Local}, {&l.remote, ls.Remote}, {&l.target, ls.Target}} {
		if err := sip.ParseUri(u.src, u.dst); err != nil {
			return nil, fmt.Errorf("%v leg: URI %q: %w", r, u.src, err)
		}
	}
	for _, rs := range ls.Routes {
		var u sip.Uri
		if err := sip.ParseUri(rs, &u); err != nil {
			return nil, fmt.Errorf("%v leg: route %q: %w", r, rs, err)
		}
		l.routes = append(l.routes, u)
	}
	return l, nil
}

// decodeCallState parses a checkpoint.
func decodeCallState(data []byte) (*callState, error) {
	var st callState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("checkpoint does not parse: %w", err)
	}
	if st.V != ckVersion {
		return nil, fmt.Errorf("checkpoint format %d, want %d", st.V, ckVersion)
	}
	if st.ID == "" {
		return nil, fmt.Errorf("checkpoint without a call ID")
	}
	return &st, nil
}

// Detach stops the B2BUA without ending its calls, for an upgrade: new
// calls are refused, every established call's checkpoint is written as it
// is now, and from then on nothing changes the store. When Serve returns
// the calls are dropped from memory without BYE, and the next process
// started on the same store restores them. It fails when calls are not
// checkpointed, or when the store refused the last write (the calls are
// then left as the store had them).
func (s *Server) Detach() error {
	if s.ckpt == nil || !s.cfg.Sessions.Checkpoint {
		return errors.New("calls are not checkpointed (sessions.checkpoint is off)")
	}
	s.draining.Store(true)
	for _, c := range s.calls.all() {
		c.do(func() { s.checkpoint(c) })
	}
	s.detached.Store(true)
	return s.ckpt.freeze(s.log)
}

package dialog

import "time"

// CallRecord is what parley knows of a call once it has ended: enough for
// a call detail record (see dialog/cdr). The B2BUA hands one to the
// recorder (WithRecorder) per call, from closeCall, including calls that
// were never answered and calls an attended transfer joined into another
// (Result "transferred"). A call left to the next process (SIGUSR2) gets
// none here: the process that ends it records it.
type CallRecord struct {
	// ID is parley's name for the call (the admin API's call ID).
	ID string
	// Node is this node's name (node.id).
	Node string
	// CallID is the SIP Call-ID of the caller's leg.
	CallID string
	// Account is the local account the call counted against: the
	// authenticated caller, or "" for a trusted peer.
	Account string
	// From and To are the user parts of the caller and of the dialled
	// user (after a transfer, of the phones that were last in the call).
	From, To string
	// FromName is the caller's display name, if it sent one.
	FromName string
	// FromURI is the caller's From URI, ToURI the URI it dialled.
	FromURI, ToURI string
	// CalleeURI is the Contact of the phone that answered, "" when none
	// did (or a service answered).
	CalleeURI string
	// App names the built-in service that answered the call ("Echo",
	// "Page", ...; see Application), "" for a call parley bridged to
	// another phone.
	App string
	// Start is when the INVITE arrived, Answer when the caller got its
	// 2xx (zero for a call never answered), End when the call closed.
	Start, Answer, End time.Time
	// Result is the call's result (the parley_calls_total label:
	// answered, busy, cancelled, not_found, unavailable, rejected, failed,
	// transferred) and Reason how it ended, for an operator to read ("BYE
	// from callee", "486 Busy Here").
	Result, Reason string
	// Code is the final status the caller got when the call failed
	// before an answer, 0 otherwise.
	Code int
	// Media is the codec and quality of the call's RTP, nil without a
	// relay.
	Media *MediaQuality
}

// Application is a Service that names the application its calls are
// recorded under, as Asterisk names the last application a channel ran
// (lastapp: Echo, Page, PTT, Conference, Playback). A Service without it
// is recorded under its number.
type Application interface {
	App() string
}

// QualityReporter is a ServiceSession that tells the codec and quality of
// its media, for the call's record and log (the relay's sessions tell
// theirs through MediaSession).
type QualityReporter interface {
	Quality() MediaQuality
}

// WithRecorder makes f hear of every call once it has ended, once per
// call. f runs on the goroutine that closes the call, outside the call's
// queue: it must be quick and must never block (queue the record and
// return).
func WithRecorder(f func(CallRecord)) Option {
	return func(s *Server) error { s.record = f; return nil }
}

// callRecord builds c's record. Run it in the call's queue, once the call
// is closed.
func (s *Server) callRecord(c *Call) CallRecord {
	r := CallRecord{
		ID: c.ID, Node: s.node, Account: c.account, From: c.from, To: c.to, App: c.app,
		Start: c.start, Answer: c.answer, End: c.end, Result: c.result, Reason: c.reason, Code: c.code,
	}
	if l := c.caller; l != nil {
		r.CallID = l.callID
		r.FromName = l.remoteName
		r.FromURI = l.remote.String()
		r.ToURI = l.local.String()
	}
	if l := c.callee; l != nil && !c.answer.IsZero() && c.svc == nil {
		r.CalleeURI = l.target.String()
	}
	return r
}

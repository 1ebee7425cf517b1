package cdr

import (
	"strings"
	"time"

	"github.com/parley-sip/parley/dialog"
)

// The dispositions of Asterisk's cdr_csv.
const (
	Answered   = "ANSWERED"
	NoAnswer   = "NO ANSWER"
	Busy       = "BUSY"
	Failed     = "FAILED"
	Congestion = "CONGESTION"
)

// Documentation is the AMA flag Asterisk gives a channel that sets none.
const Documentation = "DOCUMENTATION"

// maxField bounds every text column: the caller chooses some of them
// (its display name, its URI), and one record must stay one short line.
const maxField = 256

// Record is one call detail record: Asterisk's cdr_csv columns, then
// parley's.
type Record struct {
	AccountCode string    `json:"accountcode"`
	Src         string    `json:"src"`
	Dst         string    `json:"dst"`
	DContext    string    `json:"dcontext"`
	CLID        string    `json:"clid"`
	Channel     string    `json:"channel"`
	DstChannel  string    `json:"dstchannel"`
	LastApp     string    `json:"lastapp"`
	LastData    string    `json:"lastdata"`
	Start       time.Time `json:"start"`
	Answer      time.Time `json:"answer,omitzero"`
	End         time.Time `json:"end"`
	// Duration is End-Start and BillSec End-Answer, in whole seconds.
	Duration    int    `json:"duration"`
	BillSec     int    `json:"billsec"`
	Disposition string `json:"disposition"`
	AMAFlags    string `json:"amaflags"`
	UniqueID    string `json:"uniqueid"`
	UserField   string `json:"userfield"`

	// Codec is the call's codec, Packets the RTP packets received from
	// both phones, Loss those lost, Jitter the larger direction's
	// interarrival jitter in milliseconds.
	Codec   string  `json:"codec"`
	Packets uint64  `json:"packets"`
	Loss    uint64  `json:"loss"`
	Jitter  float64 `json:"jitter_ms"`
	// Reason says how the call ended; Node is the node that recorded it.
	Reason string `json:"reason"`
	Node   string `json:"node"`
}

// Context is the dcontext of every record: parley has one dial plan.
const Context = "default"

// FromCall makes the record of a call.
func FromCall(c dialog.CallRecord) Record {
	r := Record{
		AccountCode: c.Account,
		Src:         c.From,
		Dst:         c.To,
		DContext:    Context,
		CLID:        callerID(c.FromName, c.From),
		Channel:     channel(c.From, c.ID),
		LastApp:     "Dial",
		LastData:    c.ToURI,
		Start:       c.Start,
		Answer:      c.Answer,
		End:         c.End,
		Disposition: Disposition(c),
		AMAFlags:    Documentation,
		UniqueID:    c.ID,
		Reason:      c.Reason,
		Node:        c.Node,
	}
	if c.App != "" {
		r.LastApp, r.LastData = c.App, ""
	} else if c.CalleeURI != "" {
		r.DstChannel = channel(c.To, c.ID)
		r.LastData = c.CalleeURI
	}
	if !c.End.IsZero() && !c.Start.IsZero() {
		r.Duration = int(c.End.Sub(c.Start) / time.Second)
	}
	if !c.Answer.IsZero() && !c.End.IsZero() {
		r.BillSec = int(c.End.Sub(c.Answer) / time.Second)
	}
	if m := c.Media; m != nil {
		r.Codec, r.Packets, r.Loss = m.Codec, m.Packets, m.Lost
		r.Jitter = float64(m.Jitter.Microseconds()) / 1000
	}
	return r
}

// Disposition is the cdr_csv disposition of a call: ANSWERED for any
// call that was answered (however it ended), BUSY for a busy callee, NO
// ANSWER for one that rang out, was cancelled or was unavailable,
// CONGESTION for 503, and FAILED for the rest.
func Disposition(c dialog.CallRecord) string {
	if !c.Answer.IsZero() {
		return Answered
	}
	switch {
	case c.Code == 503:
		return Congestion
	case c.Result == "busy":
		return Busy
	case c.Result == "cancelled" || c.Result == "unavailable":
		return NoAnswer
	}
	return Failed
}

// callerID is the Caller*ID as Asterisk writes it: "Name" <number>, or
// the number alone.
func callerID(name, number string) string {
	if name == "" {
		return number
	}
	// Asterisk writes the name between quotes as it is; one inside
	// would end it early.
	return `"` + strings.ReplaceAll(clean(name), `"`, "") + `" <` + number + ">"
}

// channel names one side of a call as Asterisk names a SIP channel:
// technology, peer and a unique suffix.
func channel(user, id string) string {
	if user == "" {
		user = "unknown"
	}
	if len(id) > 8 {
		id = id[:8]
	}
	return "SIP/" + user + "-" + id
}

// Involves reports whether user took part in the call the record is of:
// as its account, its caller or the user it dialled.
func (r Record) Involves(user string) bool {
	return user == r.AccountCode || user == r.Src || user == r.Dst
}

// clean makes s one short line: control characters become spaces, and it
// is cut to maxField bytes, dropping a character cut in half.
func clean(s string) string {
	if len(s) > maxField {
		s = strings.ToValidUTF8(s[:maxField], "")
	}
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

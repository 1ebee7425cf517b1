package dialog

import "log/slog"

// State is where a call is in its life. Every call moves forward through
// these states only; Active and Suspended may alternate (hold and resume).
type State int

// The session states.
const (
	Idle State = iota
	Establishing
	Active
	Suspended
	Terminating
	Closed
)

var stateNames = [...]string{"idle", "establishing", "active", "suspended", "terminating", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// DialogState is where one leg's dialog is (RFC 3261 §12): early after a
// provisional response with a tag, confirmed once the 2xx is acknowledged,
// terminated when it ends.
type DialogState uint8

// The dialog states of a leg.
const (
	DialogNone DialogState = iota
	DialogEarly
	DialogConfirmed
	DialogTerminated
)

var dialogNames = [...]string{"none", "early", "confirmed", "terminated"}

func (d DialogState) String() string {
	if int(d) < len(dialogNames) {
		return dialogNames[d]
	}
	return "unknown"
}

// setDialog moves leg l's dialog forward (never back) and logs it. Call with
// the call's mu held.
func (l *leg) setDialog(d DialogState) {
	if d <= l.dialog {
		return
	}
	if l.call.log.enabled(slog.LevelDebug) {
		l.call.log.Debug("dialog state", "leg", l.role.String(), "from", l.dialog.String(), "to", d.String())
	}
	l.dialog = d
}

// allowed lists each state's legal next states.
var allowed = map[State][]State{
	Idle:         {Establishing, Terminating, Closed},
	Establishing: {Active, Terminating, Closed},
	Active:       {Suspended, Terminating},
	Suspended:    {Active, Terminating},
	Terminating:  {Closed},
}

// canMove reports whether from→to is a legal transition.
func canMove(from, to State) bool {
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

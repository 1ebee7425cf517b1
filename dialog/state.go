package dialog

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

package media

// Side names one of the two legs of a relayed call. Packets that arrive on
// parley's port for one side leave through its port for the other side.
type Side int

// The two sides of a call.
const (
	// SideA faces the caller.
	SideA Side = 0
	// SideB faces the callee.
	SideB Side = 1
)

// Other returns the opposite side.
func (s Side) Other() Side { return 1 - s }

func (s Side) String() string {
	if s == SideA {
		return "caller"
	}
	return "callee"
}

package media

// Direction says which way media flows on a stream, seen from parley's side
// (RFC 3264 §5.1). The zero value is SendRecv.
type Direction int

// The four directions of RFC 3264 §5.1.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

// String returns the SDP attribute name of d ("sendrecv", ...).
func (d Direction) String() string {
	switch d {
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	default:
		return "sendrecv"
	}
}

// Sends reports whether parley sends media in direction d.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether parley expects media from the peer in direction d.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// answerTo returns the direction an answer takes to an offer's direction,
// as RFC 3264 §6.1 prescribes: the answer mirrors sendonly and recvonly.
func (d Direction) answerTo() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	default:
		return SendRecv
	}
}

// parseDirection maps an SDP attribute key to a Direction.
func parseDirection(key string) (Direction, bool) {
	switch key {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return SendRecv, false
}

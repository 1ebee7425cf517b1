package dialog

import "net/netip"

// ServiceCall tells a service about the call it answers.
type ServiceCall struct {
	// Offer is the caller's SDP offer.
	Offer []byte
	// Local is the local address facing the caller, which an answer
	// announces when the service binds every address.
	Local netip.Addr
	// From is the caller's user part, and CallID the call's ID (as the
	// admin API and the logs name it).
	From, CallID string
}

// callerService is a Service that needs to know who calls: the rooms
// list their members by user and call.
type callerService interface {
	StartCall(call ServiceCall) (answer []byte, sess ServiceSession, err error)
}

package registrar

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by constructors and options.
var (
	// ErrNoRealm means NewDigest was given an empty realm.
	ErrNoRealm = errors.New("registrar: realm is empty")
	// ErrBadExpires means WithExpires was given min < 1 or max < min.
	ErrBadExpires = errors.New("registrar: expires bounds need 1 <= min <= max")
	// ErrBadOption means an option was given a value it cannot use.
	ErrBadOption = errors.New("registrar: bad option")
	// ErrNoDigest means New was given a nil *Digest.
	ErrNoDigest = errors.New("registrar: no authenticator")
	// ErrClosed means the Registrar or Store was already closed.
	ErrClosed = errors.New("registrar: closed")
)

// sipError is a failure that becomes a SIP response. One place
// (respondError) turns it into the response, so the mapping of problems to
// status codes is written once.
type sipError struct {
	Code   int
	Reason string
	// MinExpires is set on 423 and becomes the Min-Expires header.
	MinExpires int
	// Unsupported is set on 420 and becomes the Unsupported header.
	Unsupported string
}

func (e *sipError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

func errBadRequest(reason string) *sipError { return &sipError{Code: 400, Reason: reason} }

// errOutOfOrder answers a REGISTER whose CSeq is not above that of the
// binding it would change under the same Call-ID. RFC 3261 §10.3 step 7 says
// only that the request fails; 400 (as Kamailio answers) tells the phone the
// fault is its own rather than inviting a retry.
var errOutOfOrder = &sipError{Code: 400, Reason: "Invalid CSeq Number"}

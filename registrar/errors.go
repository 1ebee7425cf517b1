package registrar

import (
	"errors"

	"github.com/parley-sip/parley/dialog/sipmsg"
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

// Failures that become SIP responses are *sipmsg.Error values, and
// sipmsg.Response is the one place that turns them into the response.
// A 400 keeps the reason phrase the registrar has always sent (it names the
// fault, as Kamailio's do), so it needs no Warning.

// errBadRequest is a 400 whose reason phrase names the fault.
func errBadRequest(reason string) *sipmsg.Error { return sipmsg.Status(400, reason) }

// errOutOfOrder answers a REGISTER whose CSeq is not above that of the
// binding it would change under the same Call-ID. RFC 3261 §10.3 step 7 says
// only that the request fails; 400 (as Kamailio answers) tells the phone the
// fault is its own rather than inviting a retry.
var errOutOfOrder = sipmsg.Status(400, "Invalid CSeq Number")

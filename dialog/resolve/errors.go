package resolve

import "errors"

// ErrNoSuchName is wrapped by the error of a name that has no records
// that lead to a SIP target (NXDOMAIN, or no NAPTR, SRV, A or AAAA
// records). A caller answers it as a permanent failure.
var ErrNoSuchName = errors.New("no such domain")

// ErrNoRecords is wrapped when the name exists but leads to no address.
var ErrNoRecords = errors.New("no SIP records")

// ErrServerFailure is wrapped when no DNS server gave an answer (a
// timeout, SERVFAIL, a refusal or a malformed reply). A caller answers it
// as a temporary failure.
var ErrServerFailure = errors.New("DNS lookup failed")

// Error is a failed resolution: the name that failed and why. Its Err
// wraps one of the sentinels above.
type Error struct {
	Name string
	Err  error
}

func (e *Error) Error() string { return e.Name + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether err is a resolution failure that may pass
// (the servers did not answer), as opposed to a name that does not exist.
func Temporary(err error) bool { return errors.Is(err, ErrServerFailure) }

package dialog

import (
	"errors"
	"fmt"
)

// sipError is a failure that becomes a SIP response with its own status.
type sipError struct {
	Code   int
	Reason string
	// RetryAfter, when non-zero, is sent as Retry-After (seconds).
	RetryAfter int
	// Warning, when set, is sent as a Warning header text.
	Warning string
	// MinSE, when non-zero, is sent as Min-SE (RFC 4028 422 responses).
	MinSE int
}

func (e *sipError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

func errStatus(code int, reason string) *sipError { return &sipError{Code: code, Reason: reason} }

// Sentinel routing errors, each with the status it maps to.
var (
	ErrNotFound        = errStatus(404, "Not Found")
	ErrNotRegistered   = errStatus(480, "Temporarily Unavailable")
	ErrTooManyHops     = errStatus(483, "Too Many Hops")
	ErrNoDialog        = errStatus(481, "Call/Transaction Does Not Exist")
	ErrServerBusy      = &sipError{Code: 503, Reason: "Service Unavailable", RetryAfter: 5}
	ErrRequestTimeout  = errStatus(408, "Request Timeout")
	ErrBadRequest      = errStatus(400, "Bad Request")
	ErrInternal        = errStatus(500, "Server Internal Error")
	ErrLoopDetected    = errStatus(482, "Loop Detected")
	ErrPendingRequest  = &sipError{Code: 491, Reason: "Request Pending"}
	ErrServiceDisabled = errStatus(503, "Service Unavailable")
)

// asSIPError maps any error to the response it should produce.
func asSIPError(err error) *sipError {
	var se *sipError
	if errors.As(err, &se) {
		return se
	}
	return ErrInternal
}

func badRequest(format string, args ...any) *sipError {
	return &sipError{Code: 400, Reason: "Bad Request", Warning: fmt.Sprintf(format, args...)}
}

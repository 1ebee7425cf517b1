package dialog

import (
	"fmt"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Sentinel routing errors, each with the status it maps to. They are
// sipmsg.Errors: the handlers return them, and sipmsg.Response turns them
// into the response.
var (
	ErrNotFound        = sipmsg.Status(404, "Not Found")
	ErrNotRegistered   = sipmsg.Status(480, "Temporarily Unavailable")
	ErrTooManyHops     = sipmsg.Status(483, "Too Many Hops")
	ErrNoDialog        = sipmsg.Status(481, "Call/Transaction Does Not Exist")
	ErrServerBusy      = &sipmsg.Error{Code: 503, Reason: "Service Unavailable", RetryAfter: 5}
	ErrRequestTimeout  = sipmsg.Status(408, "Request Timeout")
	ErrBadRequest      = sipmsg.Status(400, "Bad Request")
	ErrInternal        = sipmsg.Internal
	ErrLoopDetected    = sipmsg.Status(482, "Loop Detected")
	ErrPendingRequest  = sipmsg.Status(491, "Request Pending")
	ErrServiceDisabled = sipmsg.Status(503, "Service Unavailable")
	// ErrMethodNotAllowed answers a method parley does not serve, with
	// the Allow header RFC 3261 §21.4.6 asks for.
	ErrMethodNotAllowed = &sipmsg.Error{Code: 405, Reason: "Method Not Allowed", Allow: allowHeader}
)

// The errors validate and offerAcceptable answer with, besides 400s.
var (
	// errNotImplemented answers an unknown method (RFC 3261 §21.5.2).
	errNotImplemented = &sipmsg.Error{Code: 501, Reason: "Not Implemented", Allow: allowHeader}
	// errUnsupportedMedia answers an INVITE whose body is not SDP
	// (RFC 3261 §21.4.13); its response also carries Accept.
	errUnsupportedMedia = sipmsg.Warn(415, "Unsupported Media Type", "only application/sdp bodies are accepted")
	// errNotAcceptable answers an INVITE whose Accept rules out SDP, the
	// only body parley answers with (RFC 3261 §21.4.7, RFC 4475 §3.3.15).
	errNotAcceptable = sipmsg.Warn(406, "Not Acceptable", "Accept does not include application/sdp")
)

// badRequest is a 400 whose Warning names the problem.
func badRequest(format string, args ...any) *sipmsg.Error {
	return sipmsg.BadRequest(fmt.Sprintf(format, args...))
}

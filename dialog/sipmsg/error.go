package sipmsg

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Error is a failure that becomes a SIP response with its own status.
// Every layer of parley returns it (or wraps it) where a request fails, and
// Response turns it into the response.
type Error struct {
	Code   int
	Reason string
	// Warning, when set, is sent as the text of a Warning header
	// (RFC 3261 §20.43, code 399) naming the reason.
	Warning string
	// RetryAfter, when non-zero, is sent as Retry-After (seconds).
	RetryAfter int
	// MinSE, when non-zero, is sent as Min-SE (RFC 4028 422 responses).
	MinSE int
	// MinExpires, when non-zero, is sent as Min-Expires (423 responses).
	MinExpires int
	// Unsupported, when set, is sent as Unsupported (420 responses).
	Unsupported string
	// Allow, when set, is sent as Allow (405 responses).
	Allow string
	// Err is the cause, if any; errors.Is and errors.As see it.
	Err error
}

// Error returns the status line, and the Warning text when there is one.
func (e *Error) Error() string {
	s := strconv.Itoa(e.Code) + " " + e.Reason
	if e.Warning != "" {
		s += ": " + e.Warning
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// SIPStatus returns the status code and reason phrase.
func (e *Error) SIPStatus() (int, string) { return e.Code, e.Reason }

// Status returns an Error with code and reason and nothing else.
func Status(code int, reason string) *Error { return &Error{Code: code, Reason: reason} }

// Warn returns an Error with code, reason and a Warning text.
func Warn(code int, reason, warning string) *Error {
	return &Error{Code: code, Reason: reason, Warning: warning}
}

// BadRequest returns a 400 whose Warning names the problem.
func BadRequest(problem string) *Error { return Warn(400, "Bad Request", problem) }

// WithDetail returns a copy of e whose Warning adds detail, and which
// unwraps to e, so errors.Is(err, e) still holds.
func (e *Error) WithDetail(detail string) *Error {
	c := *e
	c.Err = e
	if c.Warning != "" {
		c.Warning += ": " + detail
	} else {
		c.Warning = detail
	}
	return &c
}

// Internal is what an error that carries no SIP status maps to.
var Internal = Status(500, "Server Internal Error")

// As returns the Error err carries. An error that carries none becomes
// code and reason, with err's text as the Warning; a nil err becomes nil.
func As(err error, code int, reason string) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return &Error{Code: code, Reason: reason, Warning: err.Error(), Err: err}
}

// ErrorFor returns the Error err carries, or a 500 for any other error.
func ErrorFor(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return Internal
}

// Response builds the response req gets for err (see ErrorFor), with the
// headers the Error asks for. tag is the To tag, as for NewResponse.
// This is the one place parley formats a Warning.
func Response(req *sip.Request, err error, tag string) *sip.Response {
	se := ErrorFor(err)
	res := NewResponse(req, se.Code, se.Reason, tag)
	if se.RetryAfter > 0 {
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(se.RetryAfter)))
	}
	if se.Warning != "" {
		res.AppendHeader(sip.NewHeader("Warning", WarningValue(se.Warning)))
	}
	if se.MinSE > 0 {
		res.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(se.MinSE)))
	}
	if se.MinExpires > 0 {
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(se.MinExpires)))
	}
	if se.Unsupported != "" {
		res.AppendHeader(sip.NewHeader("Unsupported", se.Unsupported))
	}
	if se.Allow != "" {
		res.AppendHeader(sip.NewHeader("Allow", se.Allow))
	}
	return res
}

// WarningValue is the value of a Warning header with text (RFC 3261
// §20.43): code 399 (miscellaneous), agent "parley", and the text as a
// quoted string, its double quotes and backslashes made single quotes and
// slashes, and control characters dropped, so it always parses.
func WarningValue(text string) string {
	var b strings.Builder
	b.Grow(len(text) + 16)
	b.WriteString(`399 parley "`)
	for _, r := range text {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

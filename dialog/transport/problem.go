package transport

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// ProblemHeader names the header the transport adds to a UDP request it
// could only read by mending it: its value is the status parley answers
// with and the Warning text ("400 Content-Length 9999 is larger than ...").
// The handlers answer such a request with Problem's error and nothing
// else, so the mended part is never used.
const ProblemHeader = "X-Parley-Problem"

// Problem returns the error a request carries from the transport: a
// header line without a colon (MalformedHeader), or a problem the
// transport mended to read it (ProblemHeader). It is nil for a request
// read as it came.
func Problem(req *sip.Request) *sipmsg.Error {
	if h := sipmsg.HeaderNamed(req, MalformedHeader); h != nil {
		return sipmsg.BadRequest(fmt.Sprintf("malformed header line %q", h.Value()))
	}
	h := sipmsg.HeaderNamed(req, ProblemHeader)
	if h == nil {
		return nil
	}
	code, text, _ := strings.Cut(h.Value(), " ")
	if code == "416" {
		return sipmsg.Warn(416, "Unsupported URI Scheme", text)
	}
	return sipmsg.BadRequest(text)
}

func markProblem(req *sip.Request, code int, text string) {
	req.AppendHeader(sip.NewHeader(ProblemHeader, strconv.Itoa(code)+" "+text))
}

// salvage is what take does with a UDP datagram the parser refused, so a
// recognisable request still gets the answer RFC 3261 asks for rather
// than silence:
//   - no empty line after the last header: it is added (the datagram's
//     end is the message's end);
//   - a Content-Length larger than what the datagram holds: 400 naming
//     it (§18.3);
//   - a request line that does not parse: 416 for a well-formed line
//     whose Request-URI has a scheme parley cannot handle (§8.2.2.1),
//     400 for anything else;
//   - a header line without a colon: 400 naming it (MarkMalformedLines).
//
// It returns the request, marked with the problem, or the parser's error
// when the datagram is no recognisable request (a response, garbage).
func (u *UDPPort) salvage(data []byte, msg sip.Message, err error) (sip.Message, error) {
	if bytes.HasPrefix(data, []byte("SIP/")) {
		return msg, err
	}
	if errors.Is(err, sip.ErrParseEOF) && bytes.HasSuffix(data, []byte("\r\n")) && !bytes.Contains(data, []byte("\r\n\r\n")) {
		data = append(bytes.Clone(data), "\r\n"...)
		msg, err = u.parser.ParseSIP(data)
		if err == nil {
			return msg, nil
		}
	}
	if req, ok := msg.(*sip.Request); ok && (errors.Is(err, sip.ErrParseReadBodyIncomplete) || errors.Is(err, sip.ErrMessageTooLarge)) {
		if cl := req.ContentLength(); cl != nil {
			body := 0
			if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
				body = len(data) - end - 4
			}
			req.SetBody(data[len(data)-body:])
			markProblem(req, 400, fmt.Sprintf("Content-Length %d is larger than the %d bytes of body in the datagram", uint32(*cl), body))
			return req, nil
		}
	}
	code, text := 0, ""
	if msg == nil {
		var fixed []byte
		if fixed, code, text = mendRequestLine(data); fixed != nil {
			data = fixed
			msg, err = u.parser.ParseSIP(data)
		}
	}
	if err != nil {
		// A header line the parser refuses: parse it again with that line
		// marked, so the handlers can answer 400.
		if marked, _ := MarkMalformedLines(sip.TransportReadProps{Transport: "UDP"}, data); len(marked) != len(data) {
			msg, err = u.parser.ParseSIP(marked)
		}
	}
	if err != nil {
		return msg, err
	}
	if req, ok := msg.(*sip.Request); ok && code != 0 {
		markProblem(req, code, text)
	}
	return msg, nil
}

// mendRequestLine replaces a request line the parser refused with one it
// takes, and returns the status and Warning the request gets for it. It
// returns nil when the first line is not recognisably a request line: a
// method token, something, and a SIP version at its end.
func mendRequestLine(data []byte) (fixed []byte, code int, text string) {
	end := bytes.Index(data, []byte("\r\n"))
	if end <= 0 {
		return nil, 0, ""
	}
	line := data[:end]
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !isToken(method) {
		return nil, 0, ""
	}
	trimmed := bytes.TrimRight(rest, " \t")
	i := bytes.LastIndexByte(trimmed, ' ')
	if i < 0 || !hasSIPPrefix(trimmed[i+1:]) {
		return nil, 0, ""
	}
	uri, version := trimmed[:i], trimmed[i+1:]
	code, text = 400, fmt.Sprintf("malformed Request-Line %q", truncate(line, 120))
	// Only the Request-URI can be wrong in a line that is otherwise
	// well formed: single spaces, nothing after the version.
	if len(trimmed) == len(rest) && len(uri) > 0 && bytes.IndexAny(uri, " \t") < 0 && bytes.EqualFold(version, []byte("SIP/2.0")) {
		text = fmt.Sprintf("malformed Request-URI %q", truncate(uri, 120))
		if scheme, _, ok := bytes.Cut(uri, []byte(":")); ok && isScheme(scheme) && !KnownScheme(string(scheme)) {
			code, text = 416, fmt.Sprintf("Request-URI scheme %q is not supported", scheme)
		}
	}
	fixed = make([]byte, 0, len(data)+32)
	fixed = append(fixed, method...)
	fixed = append(fixed, " sip:request-uri.invalid SIP/2.0"...)
	fixed = append(fixed, data[end:]...)
	return fixed, code, text
}

// KnownScheme reports whether parley handles Request-URIs of scheme:
// sip, sips and tel (RFC 3261 §8.2.2.1 answers others 416).
func KnownScheme(scheme string) bool {
	return strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips") || strings.EqualFold(scheme, "tel")
}

// isToken reports whether b is a non-empty RFC 3261 §25.1 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isScheme reports whether b is a URI scheme (RFC 3986 §3.1).
func isScheme(b []byte) bool {
	if len(b) == 0 || !(b[0] >= 'a' && b[0] <= 'z' || b[0] >= 'A' && b[0] <= 'Z') {
		return false
	}
	for _, c := range b[1:] {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// HasBareControl reports whether a header value holds a control character
// (NUL, CR, LF and the others below 0x20 but HTAB, and DEL) outside a
// quoted-pair: RFC 3261 §25.1 allows them only escaped by a backslash
// inside a quoted string, as in RFC 4475's "intmeth" message.
func HasBareControl(s string) bool {
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted:
			i++
			if i < len(s) && (s[i] == '\r' || s[i] == '\n') {
				return true
			}
		case c == '"':
			quoted = !quoted
		case c < 0x20 && c != '\t', c == 0x7f:
			return true
		}
	}
	return false
}

package transport

import (
	"bytes"

	"github.com/emiago/sipgo/sip"
)

// MalformedHeader names the header a bad header line is turned into.
const MalformedHeader = "X-Parley-Malformed"

// MarkMalformedLines filters UDP requests before parley parses them (see
// UDPPort.take); it keeps sipgo's read-filter signature. The parser drops
// a datagram that has a header line without a colon, so the sender would
// never learn why; this filter
// turns such a line into an X-Parley-Malformed header instead, and the
// request then gets a 400 from parley's handlers (RFC 3261 §21.4.1).
// Datagrams without such a line pass untouched and unallocated.
func MarkMalformedLines(props sip.TransportReadProps, data []byte) ([]byte, error) {
	if props.Transport != "UDP" || bytes.HasPrefix(data, []byte("SIP/")) {
		return data, nil
	}
	head := data
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		head = data[:end+2]
	}
	first := bytes.Index(head, []byte("\r\n"))
	if first < 0 {
		return data, nil
	}
	bad := false
	for rest := head[first+2:]; len(rest) > 0; {
		line := rest
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			line, rest = rest[:i], rest[i+2:]
		} else {
			rest = nil
		}
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && bytes.IndexByte(line, ':') < 0 {
			bad = true
			break
		}
	}
	if !bad {
		return data, nil
	}
	out := make([]byte, 0, len(data)+64)
	out = append(out, data[:first+2]...)
	rest := data[first+2:]
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		if i <= 0 { // the blank line (or no more lines): the body follows untouched
			out = append(out, rest...)
			break
		}
		line := rest[:i]
		if line[0] != ' ' && line[0] != '\t' && bytes.IndexByte(line, ':') < 0 {
			out = append(out, MalformedHeader+": "...)
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
		rest = rest[i+2:]
	}
	return out, nil
}

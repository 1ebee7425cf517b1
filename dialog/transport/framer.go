package transport

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// Framing errors on a stream: each ends the connection, since no message
// boundary is left to resynchronise on (RFC 3261 §18.3, RFC 4475 §3.1.2.3).
var (
	errTooLarge = errors.New("message larger than sip.max_message_size")
	errNoLength = errors.New("message without Content-Length (RFC 3261 §18.3: it is mandatory on TCP)")
	errNotSIP   = errors.New("start line is not a SIP request or status line")
	errNoColon  = errors.New("header line without a colon")
)

// framerLineMax is how much of one line the framer keeps: enough for any
// start line and Content-Length line parley takes.
const framerLineMax = 4096

// Framer states.
const (
	frameIdle    = iota // between messages: CRLF keepalives (RFC 5626 §3.5.1) are skipped
	frameStart          // in the start line
	frameHeaders        // in the header lines
	frameBody           // in the body
)

// framer follows the message boundaries of a SIP byte stream without
// parsing it: a message is its header lines up to an empty line, then as
// many body bytes as its Content-Length says. It only watches; the bytes
// go to sipgo's parser unchanged. It tells the guarded connection when a
// message is complete (for the first-message timeout) and when the stream
// cannot be framed (too large, no or a bad Content-Length, not SIP), so
// the connection ends before sipgo is handed what it cannot parse.
type framer struct {
	max int // sip.max_message_size; 0: no limit
	// tap, when set, is handed each complete message (valid only during
	// the call); msg gathers the current one, up to framerTapMax bytes.
	tap func(msg []byte)
	msg []byte
	cut bool // the current message outgrew framerTapMax

	state     int
	size      int    // bytes of the current message so far
	line      []byte // the current line, up to framerLineMax
	cr        bool   // the last byte was a CR
	header    []byte // the current header, continuation lines joined
	length    int    // the Content-Length read so far; -1: none yet
	remaining int    // body bytes still to come
}

// feed takes the next bytes of the stream. It returns how many of them
// end at a message boundary (all of p unless err), how many messages p
// completed, and the framing error, if any.
func (f *framer) feed(p []byte) (good, complete int, err error) {
	for i := 0; i < len(p); i++ {
		if f.state == frameBody {
			k := min(f.remaining, len(p)-i)
			f.keep(p[i : i+k]...)
			f.remaining -= k
			i += k - 1
			if f.remaining == 0 {
				f.state = frameIdle
				complete++
				good = i + 1
				f.deliver()
			}
			continue
		}
		b := p[i]
		if f.state == frameIdle {
			if b == '\r' || b == '\n' {
				good = i + 1
				continue
			}
			f.state, f.size, f.line, f.cr, f.header, f.length = frameStart, 0, f.line[:0], false, f.header[:0], -1
			f.msg, f.cut = f.msg[:0], false
		}
		f.size++
		if f.max > 0 && f.size > f.max {
			return good, complete, errTooLarge
		}
		f.keep(b)
		if b == '\n' && f.cr {
			line := f.line[:max(len(f.line)-1, 0)] // without its CR
			done, err := f.endLine(line)
			if err != nil {
				return good, complete, err
			}
			if done {
				f.state = frameIdle
				complete++
				good = i + 1
				f.deliver()
			}
			f.line, f.cr = f.line[:0], false
			continue
		}
		f.cr = b == '\r'
		if len(f.line) < framerLineMax {
			f.line = append(f.line, b)
		}
	}
	if f.state == frameIdle {
		good = len(p)
	}
	return good, complete, nil
}

// framerTapMax bounds the message gathered for the tap (sip.max_message_size
// cannot be larger); keptTapBuffer is the buffer kept between messages.
const (
	framerTapMax  = 1 << 20
	keptTapBuffer = 16 << 10
)

// keep gathers bytes of the current message for the tap.
func (f *framer) keep(b ...byte) {
	if f.tap == nil || f.cut {
		return
	}
	if len(f.msg)+len(b) > framerTapMax {
		f.cut = true
		return
	}
	f.msg = append(f.msg, b...)
}

// deliver hands the message just completed to the tap (a message cut at
// framerTapMax is not handed on).
func (f *framer) deliver() {
	if f.tap == nil {
		return
	}
	if !f.cut {
		f.tap(f.msg)
	}
	if cap(f.msg) > keptTapBuffer {
		f.msg = nil // one large message does not pin its buffer
	} else {
		f.msg = f.msg[:0]
	}
}

// endLine takes one complete line; done reports a message without a body
// ending with it.
func (f *framer) endLine(line []byte) (done bool, err error) {
	if f.state == frameStart {
		if !plausibleStartLine(line) {
			return false, errNotSIP
		}
		f.state = frameHeaders
		return false, nil
	}
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		if len(f.header) < framerLineMax {
			f.header = append(append(f.header, ' '), bytes.TrimLeft(line, " \t")...)
		}
		return false, nil
	}
	if err := f.endHeader(); err != nil {
		return false, err
	}
	if len(line) > 0 {
		if bytes.IndexByte(line, ':') < 0 && len(line) < framerLineMax {
			return false, errNoColon
		}
		f.header = append(f.header[:0], line...)
		return false, nil
	}
	// The empty line: the headers are over.
	if f.length < 0 {
		return false, errNoLength
	}
	if f.max > 0 && f.size+f.length > f.max {
		return false, errTooLarge
	}
	if f.length == 0 {
		return true, nil
	}
	f.state, f.remaining = frameBody, f.length
	return false, nil
}

// endHeader reads the Content-Length out of the header just ended.
func (f *framer) endHeader() error {
	name, value, ok := bytes.Cut(f.header, []byte(":"))
	f.header = f.header[:0]
	if !ok {
		return nil
	}
	name = bytes.TrimRight(name, " \t")
	if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
		return nil
	}
	v := bytes.TrimSpace(value)
	n, err := strconv.ParseUint(string(v), 10, 31)
	if err != nil || len(v) == 0 || v[0] == '+' {
		if errors.Is(err, strconv.ErrRange) {
			return errTooLarge
		}
		return fmt.Errorf("malformed Content-Length %q", v)
	}
	if f.length >= 0 && f.length != int(n) {
		return errors.New("conflicting Content-Length headers")
	}
	f.length = int(n)
	return nil
}

// plausibleStartLine reports whether sipgo's parser will take line as a
// start line, checked as it does (sip.parseLine): split at its first two
// spaces, a status line starts "SIP" and has a 16-bit status code; a
// request line ends in a version starting "SIP", with no space in it,
// after a Request-URI that parses. What sipgo refuses makes it drop the
// connection at once, before the answer to the message before it goes
// out; the framer ends it itself, after that answer (guardedConn).
func plausibleStartLine(line []byte) bool {
	first, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return false
	}
	second, third, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return false
	}
	if len(third) >= 3 && bytes.IndexByte(third, ' ') < 0 && isSIPWord(third[:3]) {
		var u sip.Uri
		return sip.ParseUri(string(second), &u) == nil && !u.Wildcard
	}
	if len(first) >= 3 && isSIPWord(first[:3]) {
		_, err := strconv.ParseUint(string(second), 10, 16)
		return err == nil
	}
	return false
}

// isSIPWord is sipgo's test for the "SIP" of a version: either case.
func isSIPWord(b []byte) bool {
	return string(b) == "SIP" || string(b) == "sip"
}

func hasSIPPrefix(b []byte) bool {
	return len(b) >= 4 && bytes.EqualFold(b[:4], []byte("SIP/"))
}

package transport

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// NewLenientParser returns sipgo's parser with one change: a known header
// whose value does not parse is kept as an unparsed header instead of
// failing the whole message. The message then reaches parley's handlers,
// which answer 400 Bad Request naming the header (RFC 3261 §8.2 and §21.4.1),
// where sipgo would have dropped it silently. Headers a response cannot be
// built without (Via, CSeq) still make sipgo answer 400 itself.
func NewLenientParser() *sip.Parser {
	parsers := map[string]sip.HeaderParser{}
	for name, p := range sip.DefaultHeadersParser() {
		parsers[name] = lenient(p)
	}
	return sip.NewParser(sip.WithHeadersParsers(parsers))
}

func lenient(p sip.HeaderParser) sip.HeaderParser {
	return func(name []byte, value string) (sip.Header, error) {
		// A control character, or a display name that is neither a
		// token sequence nor quoted, makes the header malformed: sipgo's
		// parsers would take both (the second by quoting it themselves).
		if HasBareControl(value) || (isNameAddr(name) && !displayNameOK(value)) {
			return sip.NewHeader(canonicalName(string(name)), value), nil
		}
		if hasParams(name) {
			value = tidyLWS(value)
		}
		h, err := p(name, value)
		if err == nil {
			return h, nil
		}
		// sipgo signals a comma-separated list with a special error that
		// carries the comma's position; it must pass through untouched.
		if err.Error() == "comma detected" {
			return h, err
		}
		return sip.NewHeader(canonicalName(string(name)), value), nil
	}
}

// canonicalName maps a lower-case or compact header name to its usual form,
// so the typed accessors (which look up by name) still find the header and
// report it as malformed.
func canonicalName(n string) string {
	switch n {
	case "v", "via":
		return "Via"
	case "f", "from":
		return "From"
	case "t", "to":
		return "To"
	case "i", "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	case "m", "contact":
		return "Contact"
	case "c", "content-type":
		return "Content-Type"
	case "l", "content-length":
		return "Content-Length"
	case "max-forwards":
		return "Max-Forwards"
	case "route":
		return "Route"
	case "record-route":
		return "Record-Route"
	case "refer-to":
		return "Refer-To"
	case "referred-by":
		return "Referred-By"
	}
	return n
}

// isNameAddr reports whether the header named n (lower case, as sipgo
// passes it) is From or To, whose one value is a name-addr or addr-spec.
func isNameAddr(n []byte) bool {
	switch string(n) {
	case "from", "f", "to", "t":
		return true
	}
	return false
}

// displayNameOK reports whether the display name before the "<" of a
// name-addr is empty, quoted, or tokens separated by whitespace (RFC 3261
// §25.1: display-name = *(token LWS) / quoted-string). RFC 4475's "baddn"
// (From: Bell, Alexander <sip:...>) is not.
func displayNameOK(v string) bool {
	v = strings.TrimLeft(v, " \t")
	if strings.HasPrefix(v, "\"") {
		return true
	}
	i := strings.IndexByte(v, '<')
	if i < 0 {
		return true // an addr-spec: no display name
	}
	for _, f := range strings.Fields(v[:i]) {
		if !isToken([]byte(f)) {
			return false
		}
	}
	return true
}

// hasParams reports whether the header named n (lower case) carries
// parameters sipgo reads: the address headers and Via.
func hasParams(n []byte) bool {
	switch string(n) {
	case "from", "f", "to", "t", "contact", "m", "via", "v", "route", "record-route":
		return true
	}
	return false
}

// tidyLWS removes the whitespace RFC 3261 §25.1 allows around the
// separators of these headers (SEMI, EQUAL, SLASH and COMMA are all
// SWS x SWS) and shortens other runs of it to one space, outside quoted
// strings and <URIs>. sipgo's parsers expect the compact form: given
// "tag = 98asjd8" they make a parameter named "tag " (RFC 4475 wsinv).
// A value without such whitespace is returned as it is, unallocated.
func tidyLWS(v string) string {
	if !needsTidy(v) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	quoted, bracket, space := false, false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(v) {
				i++
				b.WriteByte(v[i])
			} else if c == '"' {
				quoted = false
			}
			continue
		case bracket:
			b.WriteByte(c)
			bracket = c != '>'
			continue
		case c == ' ' || c == '\t':
			space = true
			continue
		}
		if space {
			if !isSeparator(c) && b.Len() > 0 && !isSeparator(lastByte(&b)) {
				b.WriteByte(' ')
			}
			space = false
		}
		b.WriteByte(c)
		quoted, bracket = c == '"', c == '<'
	}
	return b.String()
}

// needsTidy reports whether tidyLWS would change v.
func needsTidy(v string) bool {
	quoted, bracket := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
		case bracket:
			bracket = c != '>'
		case c == '"':
			quoted = true
		case c == '<':
			bracket = true
		case c == ' ' || c == '\t':
			if c == '\t' || (i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t' || isSeparator(v[i+1]))) || (i > 0 && isSeparator(v[i-1])) {
				return true
			}
		}
	}
	return false
}

func isSeparator(c byte) bool { return c == ';' || c == '=' || c == '/' || c == ',' }

func lastByte(b *strings.Builder) byte {
	s := b.String()
	return s[len(s)-1]
}

package transport

import (
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

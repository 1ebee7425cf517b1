package dialog

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// headersNamed returns the headers of m called name, compared without
// regard to case. sipgo's GetHeaders lower-cases, with an allocation, the
// name of every header it passes that it does not know, and it runs for
// every message parley handles.
func headersNamed(m sip.Message, name string) []sip.Header {
	var out []sip.Header
	for _, h := range allHeaders(m) {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// headerNamed returns the first header of m called name, or nil.
func headerNamed(m sip.Message, name string) sip.Header {
	for _, h := range allHeaders(m) {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

func allHeaders(m sip.Message) []sip.Header {
	switch m := m.(type) {
	case *sip.Request:
		return m.Headers()
	case *sip.Response:
		return m.Headers()
	}
	return nil
}

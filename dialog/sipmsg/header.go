package sipmsg

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// HeadersNamed returns the headers of m called name, compared without
// regard to case. sipgo's GetHeaders lower-cases, with an allocation, the
// name of every header it passes that it does not know, and it runs for
// every message parley handles.
func HeadersNamed(m sip.Message, name string) []sip.Header {
	var out []sip.Header
	for _, h := range headersOf(m) {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// HeaderNamed returns the first header of m called name, or nil.
func HeaderNamed(m sip.Message, name string) sip.Header {
	for _, h := range headersOf(m) {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

func headersOf(m sip.Message) []sip.Header {
	switch m := m.(type) {
	case *sip.Request:
		return m.Headers()
	case *sip.Response:
		return m.Headers()
	case interface{ Headers() []sip.Header }:
		return m.Headers()
	}
	return nil
}

// ListTags returns the comma-separated values of the list headers names of
// m (Require, Supported, Allow and their compact forms), trimmed.
func ListTags(m sip.Message, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range HeadersNamed(m, n) {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// HasTag reports whether a list header (Supported, Require, Allow) of m
// names tag, compared without regard to case.
func HasTag(m sip.Message, tag string, names ...string) bool {
	for _, t := range ListTags(m, names...) {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// CopyHeaders copies the headers names of src to dst, as new headers.
func CopyHeaders(dst, src sip.Message, names ...string) {
	for _, n := range names {
		for _, h := range HeadersNamed(src, n) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// CallID returns m's Call-ID, or "".
func CallID(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// Tag returns the tag parameter of a From or To header's params.
func Tag(params sip.HeaderParams) string {
	t, _ := params.Get("tag")
	return t
}

// HasToTag reports whether req's To carries a tag: it is inside a dialog.
func HasToTag(req *sip.Request) bool {
	if to := req.To(); to != nil {
		_, ok := to.Params.Get("tag")
		return ok
	}
	return false
}

// UpperTransport is a transport as a Via spells it ("UDP"), without an
// allocation for the usual ones.
func UpperTransport(t string) string {
	switch t {
	case "udp", "UDP":
		return "UDP"
	case "tcp", "TCP":
		return "TCP"
	case "tls", "TLS":
		return "TLS"
	}
	return strings.ToUpper(t)
}

// LowerTransport is a transport in parley's own spelling ("udp").
func LowerTransport(t string) string {
	switch t {
	case "udp", "UDP":
		return "udp"
	case "tcp", "TCP":
		return "tcp"
	case "tls", "TLS":
		return "tls"
	}
	return strings.ToLower(t)
}

package media

import (
	"strconv"
	"strings"
)

// TelephoneEvent is the codec name of RFC 4733 DTMF events.
const TelephoneEvent = "telephone-event"

// codecSpec describes a codec parley knows by name, so that prefs can be
// matched against offers that spell it differently or omit its rtpmap.
type codecSpec struct {
	name     string // canonical spelling, used in Negotiated and rtpmaps we write
	clock    int    // required clock rate; 0 accepts any
	channels int    // required channel count; 0 accepts any
}

// knownCodecs is keyed by lower-case name.
var knownCodecs = map[string]codecSpec{
	"pcmu": {name: "PCMU", clock: 8000},
	"pcma": {name: "PCMA", clock: 8000},
	// G.722's RTP clock is 8000 although it samples at 16 kHz
	// (RFC 3551 §4.5.2).
	"g722": {name: "G722", clock: 8000},
	// RFC 7587 §7: opus is always opus/48000/2, whatever it really carries.
	"opus":            {name: "opus", clock: 48000, channels: 2},
	"telephone-event": {name: TelephoneEvent},
}

// staticFormats are the RFC 3551 static audio payload types an offer may
// list without an rtpmap.
var staticFormats = map[uint8]format{
	0:  {name: "PCMU", clock: 8000, channels: 1},
	3:  {name: "GSM", clock: 8000, channels: 1},
	4:  {name: "G723", clock: 8000, channels: 1},
	8:  {name: "PCMA", clock: 8000, channels: 1},
	9:  {name: "G722", clock: 8000, channels: 1},
	18: {name: "G729", clock: 8000, channels: 1},
}

// format is one payload type of an offered m-line with what its rtpmap and
// fmtp say.
type format struct {
	pt       uint8
	name     string
	clock    int
	channels int
	rtpmap   string // the offer's rtpmap value after the payload type, if any
	fmtp     string // the offer's fmtp value after the payload type, if any
}

// matches reports whether f is the codec the preference pref names.
func (f format) matches(pref string) bool {
	spec, ok := knownCodecs[strings.ToLower(pref)]
	if !ok {
		return f.name != "" && strings.EqualFold(f.name, pref)
	}
	if !strings.EqualFold(f.name, spec.name) {
		return false
	}
	if spec.clock != 0 && f.clock != spec.clock {
		return false
	}
	return spec.channels == 0 || f.channels == spec.channels
}

// canonicalName returns pref as parley spells it in Negotiated.
func canonicalName(pref string) string {
	if spec, ok := knownCodecs[strings.ToLower(pref)]; ok {
		return spec.name
	}
	return pref
}

// parseRtpmap splits an rtpmap value "96 opus/48000/2" (RFC 4566 §6).
func parseRtpmap(v string) (pt uint8, name string, clock, channels int, ok bool) {
	ptStr, enc, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		return 0, "", 0, 0, false
	}
	pt, ok = parsePT(ptStr)
	if !ok {
		return 0, "", 0, 0, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return 0, "", 0, 0, false
	}
	clock, err := strconv.Atoi(parts[1])
	if err != nil || clock <= 0 {
		return 0, "", 0, 0, false
	}
	channels = 1
	if len(parts) == 3 {
		channels, err = strconv.Atoi(parts[2])
		if err != nil || channels <= 0 {
			return 0, "", 0, 0, false
		}
	}
	return pt, parts[0], clock, channels, true
}

// parsePT parses an RTP payload type, 0 to 127 (RFC 3550 §5.1).
func parsePT(s string) (uint8, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 127 {
		return 0, false
	}
	return uint8(n), true
}

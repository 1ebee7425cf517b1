package dialog

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// This file is the dialog's half of DTMF interworking: a key that arrives
// on one leg arrives exactly once on the other, whatever each phone uses.
// A SIP INFO key (application/dtmf-relay or application/dtmf) for a leg
// that negotiated telephone-event is answered here and sent by the relay
// as RFC 4733 events; a key the relay took out of the RTP of a leg whose
// other leg did not negotiate telephone-event becomes an INFO of parley's
// own in that leg's dialog. Everything else passes as it comes.

// dtmfMedia is a MediaSession that converts keys: package media's relay.
// Keys are RFC 4733 event codes (0-9, 10 *, 11 #, 12-15 A-D, 16 flash).
type dtmfMedia interface {
	// SetDTMFMode sets the DTMF mode of the caller's (toCaller) or the
	// callee's phone, users[].dtmf_mode, before the first offer.
	SetDTMFMode(toCaller bool, mode string)
	// UsesEvents reports whether that leg negotiated telephone-event.
	UsesEvents(caller bool) bool
	// SendDTMF sends a key to that leg as RFC 4733 events.
	SendDTMF(toCaller bool, code uint8, d time.Duration) error
	// OnDTMF registers f for each key taken out of one leg's RTP because
	// the other leg does not use events; f may block.
	OnDTMF(f func(fromCaller bool, code uint8, d time.Duration))
}

// Bounds on an INFO key parley converts: its body, and its duration.
const (
	maxDTMFBody         = 256
	minDTMFDuration     = 40 * time.Millisecond
	maxDTMFDuration     = 5 * time.Second
	defaultDTMFDuration = 160 * time.Millisecond
)

// The values of parley_dtmf_total's labels.
const (
	dtmfInfo    = "info"
	dtmfRFC4733 = "rfc4733"
	// dtmfService is a key a built-in service took (to="service").
	dtmfService = "service"
)

// Content types of a key in SIP INFO.
const (
	ctDTMFRelay = "application/dtmf-relay"
	ctDTMF      = "application/dtmf"
)

// dtmfKey is one key read from an INFO.
type dtmfKey struct {
	code uint8
	dur  time.Duration
}

// dtmfContentType returns the media type of an INFO's body if it is a key
// (application/dtmf-relay or application/dtmf), else "".
func dtmfContentType(req *sip.Request) string {
	h := sipmsg.HeaderNamed(req, "Content-Type")
	if h == nil {
		return ""
	}
	ct, _, _ := strings.Cut(h.Value(), ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == ctDTMFRelay || ct == ctDTMF {
		return ct
	}
	return ""
}

// signalCode reads a key as INFO writes it: one of 0-9 * # A-D, or its
// event code 10-16 (RFC 4733 §3.2).
func signalCode(s string) (uint8, error) {
	if len(s) == 1 {
		switch c := s[0]; {
		case c >= '0' && c <= '9':
			return c - '0', nil
		case c == '*':
			return 10, nil
		case c == '#':
			return 11, nil
		case c >= 'A' && c <= 'D':
			return 12 + c - 'A', nil
		case c >= 'a' && c <= 'd':
			return 12 + c - 'a', nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 10 && n <= 16 && len(s) == 2 {
		return uint8(n), nil
	}
	return 0, errors.New("Signal " + strconv.Quote(s) + " is not a key (0-9, *, #, A-D or 10-16)")
}

// signalText writes an event code as INFO's Signal.
func signalText(code uint8) string {
	switch {
	case code <= 9:
		return string(rune('0' + code))
	case code == 10:
		return "*"
	case code == 11:
		return "#"
	case code <= 15:
		return string(rune('A' + code - 12))
	}
	return strconv.Itoa(int(code))
}

// parseDTMFInfo reads the key in an INFO body of media type ct:
// application/dtmf-relay is "Signal=5" and an optional "Duration=160" (in
// ms) on lines of their own; application/dtmf is the key alone. Anything
// else in it, a duration out of bounds or a body over maxDTMFBody bytes is
// an error that says why.
func parseDTMFInfo(ct string, body []byte) (dtmfKey, error) {
	key := dtmfKey{dur: defaultDTMFDuration}
	if len(body) > maxDTMFBody {
		return key, errors.New("DTMF body over " + strconv.Itoa(maxDTMFBody) + " bytes")
	}
	if ct == ctDTMF {
		code, err := signalCode(string(bytes.TrimSpace(body)))
		key.code = code
		return key, err
	}
	var signal, duration bool
	for line := range strings.SplitSeq(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return key, errors.New("DTMF line " + strconv.Quote(line) + " is not name=value")
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "signal":
			if signal {
				return key, errors.New("DTMF Signal given twice")
			}
			signal = true
			code, err := signalCode(value)
			if err != nil {
				return key, err
			}
			key.code = code
		case "duration":
			if duration {
				return key, errors.New("DTMF Duration given twice")
			}
			duration = true
			ms, err := strconv.Atoi(value)
			d := time.Duration(ms) * time.Millisecond
			if err != nil || d < minDTMFDuration || d > maxDTMFDuration {
				return key, errors.New("DTMF Duration " + strconv.Quote(value) + " is not 40-5000 ms")
			}
			key.dur = d
		default:
			return key, errors.New("DTMF body has an unknown field " + strconv.Quote(name))
		}
	}
	if !signal {
		return key, errors.New("DTMF body has no Signal")
	}
	return key, nil
}

// dtmfRelayBody writes a key as application/dtmf-relay.
func dtmfRelayBody(code uint8, d time.Duration) []byte {
	return []byte("Signal=" + signalText(code) + "\r\nDuration=" + strconv.Itoa(int(d/time.Millisecond)) + "\r\n")
}

// dtmfModes tells ms the DTMF mode of the caller's account and of the
// callee (users[].dtmf_mode); phones that are not local users (routes,
// trusted peers) are auto.
func (s *Server) dtmfModes(ms MediaSession, caller, callee string) {
	dm, ok := ms.(dtmfMedia)
	if !ok {
		return
	}
	dm.SetDTMFMode(true, s.dtmfMode(caller))
	dm.SetDTMFMode(false, s.dtmfMode(callee))
}

// dtmfMode is user's users[].dtmf_mode, auto for anyone else.
func (s *Server) dtmfMode(user string) string {
	if user == "" {
		return config.DTMFAuto
	}
	for i := range s.cfg.Users {
		if u := &s.cfg.Users[i]; u.Username == user && u.DTMFMode != "" {
			return u.DTMFMode
		}
	}
	return config.DTMFAuto
}

// takeDTMF is the call's part of an INFO with a key from leg l: when the
// other leg negotiated telephone-event the key is sent to it as RFC 4733
// events and the INFO answered here (ok true); a body that is no key then
// gets 400 with a Warning saying why, and a key over the rate limit 503.
// Otherwise the INFO is relayed as it came. Run it in the call's queue.
func (s *Server) takeDTMF(l, other *leg, req *sip.Request) (inDialog, bool) {
	c := l.call
	if req.Method != sip.INFO {
		return inDialog{}, false
	}
	ct := dtmfContentType(req)
	dm, ok := c.media.(dtmfMedia)
	if ct == "" || !ok {
		return inDialog{}, false
	}
	toCaller := other.role == roleCaller
	if !dm.UsesEvents(toCaller) {
		s.m.dtmfKey(dtmfInfo, dtmfInfo)
		return inDialog{}, false
	}
	key, err := parseDTMFInfo(ct, req.Body())
	if err != nil {
		c.log.Info("DTMF INFO refused", "leg", l.role.String(), "error", err)
		return inDialog{err: sipmsg.Warn(400, "Bad Request", err.Error())}, true
	}
	if err := dm.SendDTMF(toCaller, key.code, key.dur); err != nil {
		s.m.dtmfRefused.Inc()
		c.log.Info("DTMF key not sent", "leg", l.role.String(), "error", err)
		return inDialog{err: sipmsg.Warn(503, "Service Unavailable", "DTMF key not sent: "+err.Error())}, true
	}
	s.m.dtmfKey(dtmfInfo, dtmfRFC4733)
	c.log.Debug("DTMF INFO sent as RFC 4733", "from", l.role.String(), "signal", signalText(key.code))
	// The leg's CSeq moved on.
	s.checkpoint(c)
	return inDialog{res: sipmsg.NewResponse(req, 200, "OK", l.localTag)}, true
}

// watchDTMF sends each key ms took out of one leg's RTP to the other leg
// as an INFO.
func (s *Server) watchDTMF(c *Call, ms MediaSession) {
	dm, ok := ms.(dtmfMedia)
	if !ok {
		return
	}
	dm.OnDTMF(func(fromCaller bool, code uint8, d time.Duration) {
		s.sendDTMFInfo(c, fromCaller, code, d)
	})
}

// sendDTMFInfo sends a key from the caller's (fromCaller) or the callee's
// RTP to the other leg as an INFO application/dtmf-relay, with that leg's
// next CSeq. It runs on the relay's goroutine for the call's keys, one
// key at a time, so INFOs go in the keys' order.
func (s *Server) sendDTMFInfo(c *Call, fromCaller bool, code uint8, d time.Duration) {
	select {
	case <-c.closed:
		return
	default:
	}
	var req *sip.Request
	c.do(func() {
		if c.state != Active && c.state != Suspended {
			return
		}
		to := c.caller
		if fromCaller {
			to = c.callee
		}
		if to == nil || to.remoteTag == "" {
			return
		}
		to.localCSeq++
		req = s.newRequest(to, sip.INFO, to.localCSeq)
		req.AppendHeader(sip.NewHeader("Content-Type", ctDTMFRelay))
		req.SetBody(dtmfRelayBody(code, d))
		s.checkpoint(c)
	})
	if req == nil {
		return
	}
	s.m.dtmfKey(dtmfRFC4733, dtmfInfo)
	c.log.Debug("DTMF RFC 4733 sent as INFO", "to_caller", !fromCaller, "signal", signalText(code))
	s.send(c, req)
}

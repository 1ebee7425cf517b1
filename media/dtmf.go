package media

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"time"
)

// This file converts DTMF between the two legs of a bridge (RFC 4733
// events on one, SIP INFO on the other): it takes the telephone-event
// packets of a side whose other side does not use events out of the stream
// and reports each key once, and it sends keys given from SIP INFO to a
// side that uses events, in the stream the bridge forwards to it. For a
// bridge whose two sides agree on events, or both do without, and that was
// never given a key to send, the forwarding path checks one flag
// (Bridge.convert) and nothing else.

// DTMFMode is how a phone sends and receives keys, as users[].dtmf_mode
// says (Asterisk's dtmf_mode).
type DTMFMode string

// The DTMF modes.
const (
	// DTMFAuto uses RFC 4733 events with a phone whose SDP has
	// telephone-event, SIP INFO with one whose SDP has not.
	DTMFAuto DTMFMode = "auto"
	// DTMFEvents always negotiates telephone-event with the phone: parley
	// offers it even when the other phone lacks it, and converts.
	DTMFEvents DTMFMode = "rfc4733"
	// DTMFInfo strips telephone-event from the SDP to and from the phone,
	// so that it sends and receives SIP INFO.
	DTMFInfo DTMFMode = "info"
)

// ParseDTMFMode reads a users[].dtmf_mode value; anything but rfc4733 and
// info is DTMFAuto.
func ParseDTMFMode(s string) DTMFMode {
	switch DTMFMode(s) {
	case DTMFEvents, DTMFInfo:
		return DTMFMode(s)
	}
	return DTMFAuto
}

// Event is one key press: an RFC 4733 event code (0-9, 10 for *, 11 for #,
// 12-15 for A-D, 16 for flash) and how long it was held.
type Event struct {
	Code     uint8
	Duration time.Duration
}

// MaxEventCode is the highest event code parley converts: flash (16).
const MaxEventCode = 16

// Bounds of a converted key's duration, and the default for an INFO
// without one.
const (
	MinEventDuration     = 40 * time.Millisecond
	MaxEventDuration     = 5 * time.Second
	DefaultEventDuration = 160 * time.Millisecond
)

// maxEventsPerSecond bounds the keys a bridge converts each way per
// second, so a hostile phone cannot make parley flood the other with
// INFO requests or events; more are refused (SendEvent) or dropped.
const maxEventsPerSecond = 20

// Injection pacing: a packet per eventInterval while the key is held, then
// endPackets end packets endInterval apart (RFC 4733 §2.5.1.4), then a gap
// before the next key.
const (
	eventInterval = 50 * time.Millisecond
	endInterval   = 20 * time.Millisecond
	endPackets    = 3
	eventGap      = 50 * time.Millisecond
)

// Errors of Bridge.SendEvent.
var (
	// ErrNoEvents means the side did not negotiate telephone-event.
	ErrNoEvents = errors.New("media: the side did not negotiate telephone-event")
	// ErrEventRate means the side was sent maxEventsPerSecond keys in the
	// last second, or has as many waiting.
	ErrEventRate = errors.New("media: too many DTMF events")
	// ErrBadEvent means an event code above MaxEventCode.
	ErrBadEvent = errors.New("media: DTMF event code out of range")
)

// eventSide is what a bridge's dtmf state knows of one side.
type eventSide struct {
	pt    int // telephone-event payload type the side negotiated, -1 none
	clock int // its RTP clock rate

	// detect says the side's events are taken out and reported: the
	// other side does not use them.
	detect bool
	// last is the event from the side seen last, by its RTP timestamp
	// (RFC 4733 §2.5.1.2: all packets of one event share it).
	last struct {
		ts       uint32
		code     uint8
		dur      uint16
		seen     bool
		reported bool
	}
	detected rateWindow

	// out is the stream the bridge sends to the side: what it forwarded
	// last, which injected events continue.
	out outStream
	// queue holds the keys waiting to be sent to the side; job is the one
	// being sent, timer paces it.
	queue    []Event
	job      *injection
	timer    *time.Timer
	injected rateWindow
}

// outStream is the RTP stream a bridge sends to one side.
type outStream struct {
	valid bool
	ssrc  uint32
	seq   uint16 // last sequence number sent, shift included
	ts    uint32
	at    int64 // relay clock when ts was current
	// shift is how many packets parley injected into the stream: later
	// forwarded packets' sequence numbers are moved up by it, so that the
	// stream stays continuous.
	shift uint16
}

// injection is a key being sent as events.
type injection struct {
	ev    Event
	ts    uint32
	total uint16 // duration in timestamp units
	sent  int    // packets sent so far
	ends  int    // end packets sent so far
}

// rateWindow counts events per second.
type rateWindow struct {
	start int64
	n     int
}

// allow counts one event at relay clock now, reporting whether it is
// within maxEventsPerSecond.
func (w *rateWindow) allow(now int64) bool {
	if now-w.start >= int64(time.Second) {
		w.start, w.n = now, 0
	}
	if w.n >= maxEventsPerSecond {
		return false
	}
	w.n++
	return true
}

// dtmfState is a bridge's DTMF conversion. Guarded by the worker's mutex.
type dtmfState struct {
	sides [2]eventSide
	// reports wait, in order, for the goroutine that calls the bridge's
	// onEvent; reporting says it runs.
	reports   []report
	reporting bool
	// injecting says keys were sent: forwarded packets are watched from
	// then on, for the sequence numbers.
	injecting bool
	closed    bool
	dropped   uint64
}

type report struct {
	from Side
	ev   Event
}

// bridgeEvents is what a side negotiated of telephone-event, as the
// bridge keeps it whether it converts or not: ok, on payload type pt at
// clock Hz.
type bridgeEvents struct {
	ok    bool
	pt    uint8
	clock int32
}

// dtmfOf returns b's dtmf state, made on first use from what the sides
// negotiated. Only a bridge that converts has one. The caller holds the
// worker's mutex.
func (b *Bridge) dtmfOf() *dtmfState {
	if b.dtmf == nil {
		d := &dtmfState{}
		for s := range d.sides {
			d.sides[s].pt, d.sides[s].clock = -1, 8000
			if e := b.events[s]; e.ok {
				d.sides[s].pt = int(e.pt)
			}
			if c := b.events[s].clock; c > 0 {
				d.sides[s].clock = int(c)
			}
		}
		b.dtmf = d
	}
	return b.dtmf
}

// SetEvents says which telephone-event payload type each side negotiated,
// pts[side] (-1 for none), at clocks[side] Hz (0 keeps the last, at first
// 8000). Where one side uses events and the other does not, the events
// from the first are taken out of the stream and reported to OnEvent, and
// SendEvent may send to it. A bridge whose sides agree keeps no state for
// it.
func (b *Bridge) SetEvents(pts, clocks [2]int) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	for s := range b.events {
		e := &b.events[s]
		e.ok, e.pt = pts[s] >= 0 && pts[s] <= 127, uint8(max(pts[s], 0))
		if clocks[s] > 0 {
			e.clock = int32(clocks[s])
		}
	}
	if b.dtmf == nil && b.events[SideA].ok == b.events[SideB].ok {
		return // both sides agree: nothing to convert
	}
	d := b.dtmfOf()
	for s := range d.sides {
		e := b.events[s]
		d.sides[s].pt = -1
		if e.ok {
			d.sides[s].pt = int(e.pt)
		}
		if e.clock > 0 {
			d.sides[s].clock = int(e.clock)
		}
	}
	for side := range d.sides {
		d.sides[side].detect = d.sides[side].pt >= 0 && d.sides[1-side].pt < 0
	}
	b.convert = d.sides[SideA].detect || d.sides[SideB].detect || d.injecting
}

// Events returns the telephone-event payload type side s negotiated, -1
// for none.
func (b *Bridge) Events(s Side) int {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if !b.events[s].ok {
		return -1
	}
	return int(b.events[s].pt)
}

// OnEvent registers f to be told each key that arrives as RFC 4733 events
// from a side whose other side does not use them, once per key, in order,
// on a goroutine of the bridge's (f may block; the next key waits). A
// later call replaces f.
func (b *Bridge) OnEvent(f func(from Side, ev Event)) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	b.onEvent = f
}

// SendEvent sends key ev to side to as RFC 4733 events with the side's
// payload type, in the stream the bridge forwards to it (its SSRC, its
// sequence numbers continued, later forwarded packets moved up), or in a
// stream of parley's own if nothing was forwarded yet. Keys are sent one
// after the other. It fails with ErrNoEvents if the side did not negotiate
// telephone-event and with ErrEventRate past maxEventsPerSecond.
func (b *Bridge) SendEvent(to Side, ev Event) error {
	if ev.Code > MaxEventCode {
		return ErrBadEvent
	}
	ev.Duration = min(max(ev.Duration, MinEventDuration), MaxEventDuration)
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if b.widx < 0 {
		return ErrRelayClosed // closed: its sockets are parked for another
	}
	if !b.events[to].ok {
		return ErrNoEvents
	}
	d := b.dtmfOf()
	es := &d.sides[to]
	if len(es.queue) >= maxEventsPerSecond || !es.injected.allow(b.r.now()) {
		d.dropped++
		return ErrEventRate
	}
	// From now on the forwarded stream's sequence numbers are watched.
	d.injecting, b.convert = true, true
	es.queue = append(es.queue, ev)
	if es.timer == nil {
		es.timer = time.AfterFunc(0, func() { b.inject(to) })
	}
	return nil
}

// DTMFDropped returns how many keys the bridge refused or dropped over
// the rate limit.
func (b *Bridge) DTMFDropped() uint64 {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if b.dtmf == nil {
		return 0
	}
	return b.dtmf.dropped
}

// deliver calls f with the reported keys, in order, until none is left.
func (b *Bridge) deliver(f func(from Side, ev Event)) {
	for {
		b.w.mu.Lock()
		d := b.dtmf
		if len(d.reports) == 0 || d.closed {
			d.reporting = false
			b.w.mu.Unlock()
			return
		}
		r := d.reports[0]
		d.reports = d.reports[1:]
		b.w.mu.Unlock()
		f(r.from, r.ev)
	}
}

// inject sends the next packet of the key being sent to side to, and
// arms the timer for the one after.
func (b *Bridge) inject(to Side) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	d := b.dtmf
	es := &d.sides[to]
	if d.closed {
		es.timer = nil
		return
	}
	now := b.r.now()
	if es.job == nil {
		if len(es.queue) == 0 {
			es.timer = nil
			return
		}
		ev := es.queue[0]
		es.queue = es.queue[1:]
		if !es.out.valid {
			// Nothing forwarded to the side yet: a stream of parley's own.
			es.out = outStream{valid: true, ssrc: rand.Uint32(), seq: uint16(rand.Uint32()), ts: rand.Uint32(), at: now}
		}
		ticks := uint64(ev.Duration) * uint64(es.clock) / uint64(time.Second)
		es.job = &injection{
			ev:    ev,
			ts:    es.out.ts + uint32(uint64(now-es.out.at)*uint64(es.clock)/uint64(time.Second)),
			total: uint16(min(ticks, 0xffff)),
		}
	}
	j := es.job
	step := uint64(eventInterval) * uint64(es.clock) / uint64(time.Second)
	dur := uint16(min(uint64(j.sent+1)*step, uint64(j.total)))
	end := j.sent > 0 && uint64(j.sent)*step >= uint64(j.total)
	if end {
		dur = j.total
	}
	var buf [64]byte // room for an SRTP auth tag
	pkt := buf[:16]
	pkt[0] = 0x80
	pkt[1] = byte(es.pt)
	if j.sent == 0 {
		pkt[1] |= 0x80 // marker: the event's first packet (RFC 4733 §2.5.1.1)
	}
	es.out.seq++
	es.out.shift++
	binary.BigEndian.PutUint16(pkt[2:4], es.out.seq)
	binary.BigEndian.PutUint32(pkt[4:8], j.ts)
	binary.BigEndian.PutUint32(pkt[8:12], es.out.ssrc)
	pkt[12] = j.ev.Code
	pkt[13] = 10 // volume: -10 dBm0
	if end {
		pkt[13] |= 0x80
	}
	binary.BigEndian.PutUint16(pkt[14:16], dur)
	st := &b.sides[to]
	if dst := st.rtpDest(); dst != nil {
		out, ok := pkt, true
		if st.sec != nil {
			out, ok = st.sec.encryptRTP(pkt)
		}
		if ok {
			_ = sendPacket(st.socks[rtpSock], dst, out)
		}
	}
	next := eventInterval
	if end {
		j.ends++
		next = endInterval
		if j.ends >= endPackets {
			es.job = nil
			next = eventGap
		}
	} else {
		j.sent++
	}
	es.timer.Reset(next)
}

// takeEvent looks at RTP packet pkt from side in: a telephone-event packet
// of a side whose events are converted is reported, the first time its
// key ends, and taken out of the stream (true). The caller holds the
// worker's mutex.
func (b *Bridge) takeEvent(in Side, pkt []byte, now int64) bool {
	d := b.dtmf
	es := &d.sides[in]
	// Until someone takes the keys (OnEvent, once the call is answered)
	// events pass as they come: early media's keys are not lost.
	if !es.detect || b.onEvent == nil || int(pkt[1]&0x7f) != es.pt {
		return false
	}
	payload, ok := rtpPayload(pkt)
	if !ok || len(payload) < 4 {
		return true // a broken event goes nowhere either
	}
	code, end, dur := payload[0], payload[1]&0x80 != 0, binary.BigEndian.Uint16(payload[2:4])
	_, ts, _ := rtpHeader(pkt)
	l := &es.last
	if !l.seen || ts != l.ts {
		if l.seen && !l.reported {
			// The last key's end packets were all lost: it is over now.
			b.report(in, l.code, l.dur, es.clock, now)
		}
		l.ts, l.code, l.dur, l.seen, l.reported = ts, code, 0, true, false
	}
	l.dur = max(l.dur, dur)
	if end && !l.reported {
		l.reported = true
		b.report(in, l.code, l.dur, es.clock, now)
	}
	return true
}

// report hands a key from side from to OnEvent's goroutine. The caller
// holds the worker's mutex.
func (b *Bridge) report(from Side, code uint8, dur uint16, clock int, now int64) {
	d := b.dtmf
	if code > MaxEventCode {
		return
	}
	if !d.sides[from].detected.allow(now) {
		d.dropped++
		return
	}
	ev := Event{Code: code, Duration: time.Duration(dur) * time.Second / time.Duration(max(clock, 1))}
	ev.Duration = min(max(ev.Duration, MinEventDuration), MaxEventDuration)
	d.reports = append(d.reports, report{from: from, ev: ev})
	if !d.reporting {
		d.reporting = true
		go b.deliver(b.onEvent)
	}
}

// forwarded notes RTP packet pkt forwarded to side to, and moves its
// sequence number up by what parley injected. The caller holds the
// worker's mutex.
func (d *dtmfState) forwarded(to Side, pkt []byte, now int64) {
	o := &d.sides[to].out
	seq, ts, ssrc := rtpHeader(pkt)
	seq += o.shift
	if o.shift != 0 {
		binary.BigEndian.PutUint16(pkt[2:4], seq)
	}
	if !o.valid || ssrc != o.ssrc || int16(seq-o.seq) > 0 {
		o.valid, o.ssrc, o.seq, o.ts, o.at = true, ssrc, seq, ts, now
	}
}

// close stops the injection timers. The caller holds the worker's mutex.
func (d *dtmfState) close() {
	d.closed = true
	for s := range d.sides {
		if t := d.sides[s].timer; t != nil {
			t.Stop()
			d.sides[s].timer = nil
		}
	}
	d.reports = nil
}

// rtpPayload returns the payload of RTP packet pkt, after its CSRCs and
// header extension (RFC 3550 §5.1), without padding.
func rtpPayload(pkt []byte) ([]byte, bool) {
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < n+4 {
			return nil, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(pkt[n+2:n+4]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 && end > n {
		end -= int(pkt[end-1])
	}
	if n > end {
		return nil, false
	}
	return pkt[n:end], true
}

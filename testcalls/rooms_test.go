package testcalls

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parley-sip/parley/media/audio"
)

// Relay port blocks and phone RTP ports of the rooms and playback tests.
var (
	rangeConference = rtpRange{32400, 32499}
	rangePTT        = rtpRange{32500, 32599}
	rangePlayback   = rtpRange{32600, 32699}

	portsRoomA     = phonePorts{24800, 24819}
	portsRoomB     = phonePorts{24820, 24839}
	portsRoomC     = phonePorts{24840, 24859}
	portsPTTA      = phonePorts{24860, 24879}
	portsPTTB      = phonePorts{24880, 24899}
	portsPTTC      = phonePorts{24900, 24919}
	portsPlayTone  = phonePorts{24920, 24939}
	portsPlayWAV   = phonePorts{24940, 24959}
	portsPlayG722  = phonePorts{24960, 24979}
	roomListenTime = 3 * time.Second // how long members talk before their recordings are read
)

// roomVoices are the members' tones: apart from each other and from the
// rooms' cues (660, 990, 1400, 500, 350 Hz).
var roomVoices = map[string]int{"1001": 450, "1002": 750, "1003": 1150}

// apiRoom is one room of GET /api/rooms.
type apiRoom struct {
	Number  string `json:"number"`
	Mode    string `json:"mode"`
	Members []struct {
		User    string `json:"user"`
		Call    string `json:"call"`
		Muted   bool   `json:"muted"`
		Talking bool   `json:"talking"`
	} `json:"members"`
	Floor string   `json:"floor"`
	Queue []string `json:"queue"`
}

func (p *parley) apiRoom(t *testing.T, number string) apiRoom {
	t.Helper()
	var rooms []apiRoom
	p.apiJSON(t, "/api/rooms", &rooms)
	for _, r := range rooms {
		if r.Number == number {
			return r
		}
	}
	t.Fatalf("GET /api/rooms has no room %s: %+v", number, rooms)
	return apiRoom{}
}

// waitRoom waits until room number satisfies cond.
func (p *parley) waitRoom(t *testing.T, number, what string, cond func(apiRoom) bool) apiRoom {
	t.Helper()
	deadline := time.Now().Add(phoneEvent)
	for {
		r := p.apiRoom(t, number)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s: timed out waiting for %s: %+v", number, what, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialRoom has b call number and waits until the call is established.
func dialRoom(t *testing.T, b *baresip, number string) {
	t.Helper()
	from := b.eventCount()
	b.command(t, "dial", number)
	b.waitEvent(t, from, "CALL_ESTABLISHED", nil)
}

// recent returns the last secs of what b has received so far in its call
// (its sndfile recording, read while the call goes on), first channel.
func recent(t *testing.T, b *baresip, secs float64) ([]int16, int) {
	t.Helper()
	p := readPCM(t, b.recording(t, "dec"))
	frame := 2 * p.Channels
	n := len(p.Data) / frame
	start := max(0, n-int(secs*float64(p.Rate)))
	out := make([]int16, 0, n-start)
	for i := start; i < n; i++ {
		out = append(out, int16(binary.LittleEndian.Uint16(p.Data[i*frame:])))
	}
	return out, p.Rate
}

// Levels of a voice in a recording, as Goertzel power (a sine of
// amplitude A gives A²/4): heard is a tone of amplitude above about
// 1000 (-30 dBFS); not heard is 14 dB below that (a voice arrives at some 5e7).
const (
	heardPower    = 2.5e5
	notHeardPower = 1e4
)

// checkHears asserts b's recent audio carries the voices of the users in
// hear and none of the users in deaf.
func checkHears(t *testing.T, what string, b *baresip, hear, deaf []string) {
	t.Helper()
	pcm, rate := recent(t, b, 2)
	if len(pcm) < rate {
		t.Errorf("%s: %s recorded only %d samples at %d Hz", what, b.User, len(pcm), rate)
		return
	}
	var report []string
	for _, u := range append(append([]string{}, hear...), deaf...) {
		report = append(report, fmt.Sprintf("%s's %d Hz: %.3g", u, roomVoices[u], audio.Goertzel(pcm, float64(roomVoices[u]), rate)))
	}
	t.Logf("%s: %s hears (%d Hz recording) %s", what, b.User, rate, strings.Join(report, ", "))
	for _, u := range hear {
		if p := audio.Goertzel(pcm, float64(roomVoices[u]), rate); p < heardPower {
			t.Errorf("%s: %s does not hear %s's %d Hz tone (power %.3g, want at least %.3g)", what, b.User, u, roomVoices[u], p, heardPower)
		}
	}
	for _, u := range deaf {
		if p := audio.Goertzel(pcm, float64(roomVoices[u]), rate); p > notHeardPower {
			t.Errorf("%s: %s hears %s's %d Hz tone (power %.3g, want below %.3g)", what, b.User, u, roomVoices[u], p, notHeardPower)
		}
	}
}

// mute POSTs a room member's mute state with token (none when empty) and
// returns the status.
func (p *parley) mute(t *testing.T, number, user string, muted bool, token string) int {
	t.Helper()
	body := fmt.Sprintf(`{"muted":%t}`, muted)
	req, err := http.NewRequest(http.MethodPost, "http://"+p.AdminAddr+"/api/rooms/"+number+"/members/"+user+"/mute", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("mute: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

func roomPhone(t *testing.T, pl *parley, user string, ports phonePorts, codec string) *baresip {
	t.Helper()
	return startBaresip(t, pl, baresipConfig{Name: user, User: user, Source: fmt.Sprintf("ausine,%d", roomVoices[user]),
		RTP: ports, Record: true, Codec: codec})
}

// TestRoomConference: three baresip phones, each sending its own tone, dial
// a conference room; 1003 speaks G.722, the others G.711. Each phone's
// recording carries the other two tones and not its own; the room shows
// three members in /api/rooms and the metrics. Muted through the API, 1001
// is no longer heard, and heard again once unmuted.
func TestRoomConference(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	needSox(t)
	store := t.TempDir()
	pl := startParley(t, parleyConfig{Extra: rangeConference.yaml(nil, ""), StorePath: store,
		Services: `{echo: "600", rooms: {"800": {mode: conference}}}`})
	a := roomPhone(t, pl, "1001", portsRoomA, "")
	b := roomPhone(t, pl, "1002", portsRoomB, "")
	c := roomPhone(t, pl, "1003", portsRoomC, "g722")
	for _, ph := range []*baresip{a, b, c} {
		dialRoom(t, ph, "800")
	}
	r := pl.waitRoom(t, "800", "three members", func(r apiRoom) bool { return len(r.Members) == 3 })
	if r.Mode != "conference" || r.Floor != "" {
		t.Errorf("room 800: %+v", r)
	}
	pl.waitMetric(t, phoneEvent, equals(3), "parley_room_members", "room", "800")
	pl.waitMetric(t, phoneEvent, equals(1), "parley_rooms", "mode", "conference")
	time.Sleep(roomListenTime)

	checkHears(t, "conference", a, []string{"1002", "1003"}, []string{"1001"})
	checkHears(t, "conference", b, []string{"1001", "1003"}, []string{"1002"})
	checkHears(t, "conference", c, []string{"1001", "1002"}, []string{"1003"})

	// The admin mutes 1001 (the token is needed): the others stop hearing
	// it, it still hears them; unmuted, it is heard again.
	token := storedToken(t, store)
	if code := pl.mute(t, "800", "1001", true, ""); code != http.StatusUnauthorized {
		t.Errorf("mute without the token: %d, want 401", code)
	}
	if code := pl.mute(t, "800", "1001", true, token); code != http.StatusNoContent {
		t.Fatalf("mute: %d, want 204", code)
	}
	pl.waitRoom(t, "800", "1001 muted", func(r apiRoom) bool {
		for _, m := range r.Members {
			if m.User == "1001" {
				return m.Muted
			}
		}
		return false
	})
	time.Sleep(roomListenTime)
	checkHears(t, "1001 muted", b, []string{"1003"}, []string{"1001", "1002"})
	checkHears(t, "1001 muted", a, []string{"1002", "1003"}, []string{"1001"})
	if code := pl.mute(t, "800", "1001", false, token); code != http.StatusNoContent {
		t.Fatalf("unmute: %d, want 204", code)
	}
	time.Sleep(roomListenTime)
	checkHears(t, "1001 unmuted", b, []string{"1001", "1003"}, []string{"1002"})

	for _, ph := range []*baresip{a, b, c} {
		ph.command(t, "hangup", "")
	}
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
	pl.waitMetric(t, phoneEvent, equals(0), "parley_room_members", "room", "800")
}

// TestRoomPTT: three phones with their tones in a push-to-talk room. 1001
// presses * and takes the floor: the others hear 1001's tone only, and
// 1001 hears nobody. 1002 presses * and waits in the queue; 1001 presses #
// and the floor passes to 1002, whom 1001 and 1003 then hear alone.
func TestRoomPTT(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	needSox(t)
	pl := startParley(t, parleyConfig{Extra: rangePTT.yaml(nil, ""),
		Services: `{echo: "600", rooms: {"801": {mode: ptt, floor_timeout: 30s, max_talk: 60s}}}`})
	a := roomPhone(t, pl, "1001", portsPTTA, "")
	b := roomPhone(t, pl, "1002", portsPTTB, "")
	c := roomPhone(t, pl, "1003", portsPTTC, "")
	for _, ph := range []*baresip{a, b, c} {
		dialRoom(t, ph, "801")
	}
	pl.waitRoom(t, "801", "three members", func(r apiRoom) bool { return len(r.Members) == 3 })

	// Nobody holds the floor: nobody hears anybody.
	time.Sleep(roomListenTime)
	checkHears(t, "no floor", b, nil, []string{"1001", "1003"})

	a.command(t, "sndcode", "*")
	pl.waitRoom(t, "801", "1001 to hold the floor", func(r apiRoom) bool { return r.Floor == "1001" })
	time.Sleep(roomListenTime)
	checkHears(t, "1001 holds the floor", b, []string{"1001"}, []string{"1003"})
	checkHears(t, "1001 holds the floor", c, []string{"1001"}, []string{"1002"})
	checkHears(t, "1001 holds the floor", a, nil, []string{"1002", "1003"})

	b.command(t, "sndcode", "*")
	pl.waitRoom(t, "801", "1002 to queue", func(r apiRoom) bool { return len(r.Queue) == 1 && r.Queue[0] == "1002" })
	a.command(t, "sndcode", "#")
	pl.waitRoom(t, "801", "the floor to pass to 1002", func(r apiRoom) bool { return r.Floor == "1002" && len(r.Queue) == 0 })
	time.Sleep(roomListenTime)
	checkHears(t, "1002 holds the floor", a, []string{"1002"}, []string{"1003"})
	checkHears(t, "1002 holds the floor", c, []string{"1002"}, []string{"1001"})

	pl.waitMetric(t, phoneEvent, equals(2), "parley_room_floor_grants_total", "room", "801")
	pl.waitMetric(t, phoneEvent, equals(1), "parley_room_floor_releases_total", "room", "801", "reason", "released")

	// The holder hangs up: the floor is free.
	b.command(t, "hangup", "")
	pl.waitRoom(t, "801", "the floor to be free", func(r apiRoom) bool { return r.Floor == "" && len(r.Members) == 2 })
	pl.waitMetric(t, phoneEvent, equals(1), "parley_room_floor_releases_total", "room", "801", "reason", "hangup")
	for _, ph := range []*baresip{a, c} {
		ph.command(t, "hangup", "")
	}
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
}

// TestPlayback: a caller dialling tone:HZ hears the tone until it hangs
// up, in G.711 and in G.722; a caller dialling a WAV hears it and is hung
// up when it ends.
func TestPlayback(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	needSox(t)
	wav := filepath.Join(t.TempDir(), "hello.wav")
	writeTone(t, wav, 900, 2)
	pl := startParley(t, parleyConfig{Extra: rangePlayback.yaml(nil, ""),
		Services: fmt.Sprintf(`{echo: "600", playback: {"601": "tone:700", "602": %q}}`, wav)})

	for _, tc := range []struct {
		user, codec string
		ports       phonePorts
	}{
		{"1001", "", portsPlayTone},
		{"1003", "g722", portsPlayG722},
	} {
		ph := startBaresip(t, pl, baresipConfig{Name: "caller " + tc.codec, User: tc.user, Source: "ausine,440", RTP: tc.ports, Record: true, Codec: tc.codec})
		dialRoom(t, ph, "601")
		time.Sleep(roomListenTime)
		pcm, rate := recent(t, ph, 2)
		if p := audio.Goertzel(pcm, 700, rate); p < heardPower {
			t.Errorf("%s (%s) does not hear the 700 Hz tone: power %.3g in %d samples at %d Hz", tc.user, tc.codec, p, len(pcm), rate)
		}
		at := ph.eventCount()
		ph.command(t, "hangup", "")
		ph.waitEvent(t, at, "CALL_CLOSED", nil)
	}

	ph := startBaresip(t, pl, baresipConfig{Name: "wav caller", User: "1002", Source: "ausine,440", RTP: portsPlayWAV, Record: true})
	at := ph.eventCount()
	dialRoom(t, ph, "602")
	// The 2 s file plays once, then parley hangs up.
	ph.waitEvent(t, at, "CALL_CLOSED", nil)
	checkTone(t, "1002's recording of the WAV", readPCM(t, ph.recording(t, "dec")).measure(t, recordingStart), 900, 1.2)
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
}

var rangePTTInfo = rtpRange{32700, 32767}

// TestRoomPTTInfoKeys: a phone that sends its keys in SIP INFO (dtmf-relay
// or dtmf) takes and gives back a push-to-talk room's floor as one sending
// RFC 4733 events does; a malformed key gets 400.
func TestRoomPTTInfoKeys(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangePTTInfo.yaml(nil, ""),
		Services: `{rooms: {"801": {mode: ptt, floor_timeout: 30s, max_talk: 60s}}}`})
	p := newPhone(t, "1001", pl.SIPAddr, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	call := p.call(ctx, "801")
	call.mustAnswered(t)
	pl.waitRoom(t, "801", "its member", func(r apiRoom) bool { return len(r.Members) == 1 })

	info := func(ctype, body string) int {
		req := sip.NewRequest(sip.INFO, call.Session.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
		req.SetBody([]byte(body))
		res, err := call.Session.Do(ctx, req)
		if err != nil {
			t.Fatalf("INFO: %v", err)
		}
		return res.StatusCode
	}
	if code := info("application/dtmf-relay", "Signal=*\r\nDuration=160\r\n"); code != 200 {
		t.Fatalf("INFO with * answered %d", code)
	}
	pl.waitRoom(t, "801", "1001 holding the floor", func(r apiRoom) bool { return r.Floor == "1001" })
	if code := info("application/dtmf", "#"); code != 200 {
		t.Fatalf("INFO with # answered %d", code)
	}
	pl.waitRoom(t, "801", "the floor free", func(r apiRoom) bool { return r.Floor == "" })
	if code := info("application/dtmf-relay", "Signal=Z\r\n"); code != 400 {
		t.Errorf("INFO with a bad key answered %d, want 400", code)
	}
	call.hangup(t)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

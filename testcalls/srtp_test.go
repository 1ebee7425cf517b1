package testcalls

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
)

// Relay port blocks of the SRTP tests (rtp.srtp, README "Encrypted media").
var (
	rangeSRTPToPlain   = rtpRange{6200, 6219}
	rangeSRTPMandatory = rtpRange{6220, 6239}
	rangeSRTPOff       = rtpRange{6240, 6259}
	rangeSRTPBaresip   = rtpRange{6260, 6299}
	rangeSRTPRestart   = rtpRange{6300, 6319}
	rangeSRTPPerUser   = rtpRange{6320, 6339}
)

// srtpPhoneKey is an SRTP phone's own key: AES_CM_128_HMAC_SHA1_80's 16
// bytes of master key and 14 of salt.
func srtpPhoneKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 30)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// srtpOffer is a PCMU offer on proto (RTP/SAVP, or RTP/AVP for best
// effort) with the phone's key as a=crypto tag 1.
func srtpOffer(host string, port int, proto string, key []byte) []byte {
	id := time.Now().UnixNano() & 0xffffff
	return []byte(fmt.Sprintf("v=0\r\no=- %d %d IN IP4 %s\r\ns=srtp-phone\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"+
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\n",
		id, id, host, host, port, proto, base64.StdEncoding.EncodeToString(key)))
}

// sdpCryptos returns the audio stream's transport and a=crypto values.
func sdpCryptos(t *testing.T, what string, body []byte) (proto string, cryptos []string) {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "crypto" {
				cryptos = append(cryptos, a.Value)
			}
		}
		return strings.Join(m.MediaName.Protos, "/"), cryptos
	}
	t.Fatalf("%s: no audio stream:\n%s", what, body)
	return "", nil
}

// srtpContext makes a pion/srtp context of an a=crypto value with
// AES_CM_128_HMAC_SHA1_80, as the phone does with parley's key.
func srtpContext(t *testing.T, crypto string) *srtp.Context {
	t.Helper()
	f := strings.Fields(crypto)
	if len(f) < 3 || f[1] != "AES_CM_128_HMAC_SHA1_80" || !strings.HasPrefix(f[2], "inline:") {
		t.Fatalf("a=crypto %q: want tag 1, AES_CM_128_HMAC_SHA1_80 and an inline key", crypto)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[2], "inline:"))
	if err != nil || len(key) != 30 {
		t.Fatalf("a=crypto %q: key of %d bytes (%v), want 30", crypto, len(key), err)
	}
	return srtpContextOf(t, key)
}

func srtpContextOf(t *testing.T, key []byte) *srtp.Context {
	t.Helper()
	c, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// srtpSocket binds the SRTP phone's RTP socket in the phones' port block.
func srtpSocket(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(1 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSRTPToPlainPhone: a phone that speaks SRTP (pion/srtp, RTP/SAVP with
// its key in a=crypto) calls a plain-RTP phone. Parley answers the caller
// with a key of its own, offers the callee SRTP best effort (a=crypto on
// RTP/AVP) and, when the callee answers plain, decrypts the caller's
// packets for it and encrypts the callee's for the caller: both get every
// packet, intact. The caller's key never reaches the callee. A forged
// packet is dropped and counted.
func TestSRTPToPlainPhone(t *testing.T) {
	for _, proto := range []string{"RTP/SAVP", "RTP/AVP"} {
		t.Run(strings.ReplaceAll(proto, "/", "_"), func(t *testing.T) {
			r := rangeSRTPToPlain
			pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
			alice := newPhone(t, "1001", pl.SIPAddr, "udp")
			bob := newPhone(t, "1002", pl.SIPAddr, "udp")
			alice.mustRegister()
			bob.mustRegister()
			port := 7300
			if proto == "RTP/AVP" {
				port = 7310
			}
			aConn := srtpSocket(t, port)
			aKey := srtpPhoneKey(t)
			alice.setSDP(func([]byte) []byte { return srtpOffer("127.0.0.1", port, proto, aKey) })
			bSock := newRTPSocket(t)
			bob.useRTPSocket(bSock)

			mc := mustMediaCall(t, alice, bob)
			gotProto, cryptos := sdpCryptos(t, "200 to the caller", mc.Out.Final.Body())
			if gotProto != proto || len(cryptos) != 1 || !strings.HasPrefix(cryptos[0], "1 AES_CM_128_HMAC_SHA1_80 inline:") {
				t.Fatalf("answer to the caller: %s with a=crypto %q; want %s and one a=crypto, tag 1, AES_CM_128_HMAC_SHA1_80:\n%s",
					gotProto, cryptos, proto, mc.Out.Final.Body())
			}
			calleeProto, offered := sdpCryptos(t, "INVITE to the callee", mc.In.Req.Body())
			if calleeProto != "RTP/AVP" || len(offered) == 0 {
				t.Errorf("offer to the callee: %s with a=crypto %q; want SRTP offered best effort, a=crypto on RTP/AVP", calleeProto, offered)
			}
			aKeyText := base64.StdEncoding.EncodeToString(aKey)
			if bytes.Contains(mc.In.Req.Body(), []byte(aKeyText)) || strings.Contains(cryptos[0], aKeyText) {
				t.Error("the caller's key was passed on; each leg has keys of its own")
			}
			enc, dec := srtpContextOf(t, aKey), srtpContext(t, cryptos[0])

			// The caller sends SRTP; the callee must get it as plain RTP.
			a := rtpStream{Tag: 0xA5, SSRC: 0x5A5A0001, PayloadType: 0, Count: packetsPerSide, Interval: 5 * time.Millisecond}
			bDone := make(chan struct{})
			var bGot []rtpReceived
			var bErr error
			go func() { defer close(bDone); bGot, bErr = bSock.receive(a.Count, 2*time.Second) }()
			for i := range a.Count {
				pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(160 * i), SSRC: a.SSRC}, Payload: streamPayload(a.Tag, i)}
				raw, _ := pkt.Marshal()
				out, err := enc.EncryptRTP(nil, raw, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := aConn.WriteToUDPAddrPort(out, mc.CallerSees.Addr); err != nil {
					t.Fatal(err)
				}
				time.Sleep(a.Interval)
			}
			<-bDone
			if bErr != nil {
				t.Errorf("callee receiving: %v", bErr)
			}
			checkStream(t, "SRTP caller → plain callee", bGot, a, mc.CalleeSees.Addr)

			// The callee sends plain RTP; the caller must get SRTP that
			// parley's key decrypts.
			b := rtpStream{Tag: 0xB6, SSRC: 0x6B6B0002, PayloadType: 0, Count: packetsPerSide, Interval: 5 * time.Millisecond}
			sendErr := make(chan error, 1)
			go func() { sendErr <- bSock.send(mc.CalleeSees.Addr, b) }()
			buf := make([]byte, 2048)
			var got []rtpReceived
			for len(got) < b.Count {
				_ = aConn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := aConn.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Errorf("caller receiving: got %d of %d packets: %v", len(got), b.Count, err)
					break
				}
				clear, err := dec.DecryptRTP(nil, buf[:n], nil)
				if err != nil {
					t.Fatalf("caller: packet %d does not decrypt with parley's key: %v", len(got), err)
				}
				var pkt rtp.Packet
				if err := pkt.Unmarshal(clear); err != nil {
					t.Fatal(err)
				}
				got = append(got, rtpReceived{Pkt: pkt, From: from})
			}
			if err := <-sendErr; err != nil {
				t.Error(err)
			}
			checkStream(t, "plain callee → SRTP caller", got, b, mc.CallerSees.Addr)

			// A packet under another key is dropped and counted.
			forged, _ := srtpContextOf(t, srtpPhoneKey(t)).EncryptRTP(nil, mustRTP(t, a.SSRC, 5000), nil)
			if _, err := aConn.WriteToUDPAddrPort(forged, mc.CallerSees.Addr); err != nil {
				t.Fatal(err)
			}
			pl.waitMetric(t, 3*time.Second, equals(1), "parley_srtp_auth_failures_total")
			if extra := bSock.drain(200 * time.Millisecond); len(extra) != 0 {
				t.Errorf("the callee got %d packets after the forged one", len(extra))
			}

			var calls []struct {
				Media *struct {
					CallerSRTP string `json:"caller_srtp"`
					CalleeSRTP string `json:"callee_srtp"`
					Failures   uint64 `json:"srtp_auth_failures"`
				} `json:"media"`
			}
			pl.apiJSON(t, "/api/calls", &calls)
			if len(calls) != 1 || calls[0].Media == nil || calls[0].Media.CallerSRTP != "AES_CM_128_HMAC_SHA1_80" ||
				calls[0].Media.CalleeSRTP != "" || calls[0].Media.Failures != 1 {
				t.Errorf("/api/calls media: %+v; want the caller's leg on AES_CM_128_HMAC_SHA1_80, the callee's plain, 1 failure", calls)
			}
			mc.Out.hangup(t)
			bob.mustEvent(evBye)
			pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
		})
	}
}

func mustRTP(t *testing.T, ssrc uint32, seq uint16) []byte {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, SSRC: ssrc}, Payload: make([]byte, 160)}
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// srtpRefused has alice call bob with offer and wants 488 with a Warning
// saying want, before bob rings.
func srtpRefused(t *testing.T, alice, bob *phone, offer []byte, want string) {
	t.Helper()
	alice.setSDP(func([]byte) []byte { return offer })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, bob.User)
	if c.status() != 488 {
		t.Fatalf("responses %v, final:\n%v\nwant 488", c.codes(), c.Final)
	}
	w := c.Final.GetHeader("Warning")
	if w == nil || !strings.Contains(w.Value(), want) {
		t.Errorf("488 Warning %v, want one saying %q:\n%s", w, want, c.Final)
	}
	bob.noEvent(evInvite, 300*time.Millisecond)
}

// TestSRTPMandatory: with rtp.srtp mandatory a plain phone's call is refused
// with 488 and a Warning naming the key; an SRTP phone's call to a phone
// that answers plain RTP is refused too, since that leg would be plain.
func TestSRTPMandatory(t *testing.T) {
	r := rangeSRTPMandatory
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "") + "  srtp: mandatory\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	srtpRefused(t, alice, bob, mediaOffer("127.0.0.1", 7320, "0"), "SRTP is mandatory (rtp.srtp)")

	// The callee is offered RTP/SAVP; one that answers plain ends the call.
	bSock := newRTPSocket(t)
	bob.useRTPSocket(bSock)
	alice.setSDP(func([]byte) []byte { return srtpOffer("127.0.0.1", 7322, "RTP/SAVP", srtpPhoneKey(t)) })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, bob.User)
	in := bob.mustEvent(evInvite)
	if proto, cryptos := sdpCryptos(t, "INVITE to the callee", in.Req.Body()); proto != "RTP/SAVP" || len(cryptos) == 0 {
		t.Errorf("offer to the callee: %s with %q; want RTP/SAVP with a=crypto", proto, cryptos)
	}
	if c.status() != 488 {
		t.Fatalf("responses %v, final:\n%v\nwant 488 once the callee answered plain RTP", c.codes(), c.Final)
	}
	if w := c.Final.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "the callee answered without SRTP") {
		t.Errorf("488 Warning %v, want one saying the callee answered without SRTP", w)
	}
	pl.waitMetric(t, 5*time.Second, equals(0), "parley_calls")
}

// TestSRTPOff: with rtp.srtp off RTP/SAVP is refused with 488 naming the
// key, and best-effort a=crypto on RTP/AVP is answered with plain RTP: the
// answer has no a=crypto, which tells the phone (RFC 4568 §6.2).
func TestSRTPOff(t *testing.T) {
	r := rangeSRTPOff
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "") + "  srtp: off\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	srtpRefused(t, alice, bob, srtpOffer("127.0.0.1", 7330, "RTP/SAVP", srtpPhoneKey(t)), "SRTP is off (rtp.srtp)")

	bob.useRTPSocket(newRTPSocket(t))
	alice.setSDP(func([]byte) []byte { return srtpOffer("127.0.0.1", 7332, "RTP/AVP", srtpPhoneKey(t)) })
	mc := mustMediaCall(t, alice, bob)
	if _, cryptos := sdpCryptos(t, "200 to the caller", mc.Out.Final.Body()); len(cryptos) != 0 {
		t.Errorf("answer to the caller has a=crypto %q with rtp.srtp off", cryptos)
	}
	if _, cryptos := sdpCryptos(t, "INVITE to the callee", mc.In.Req.Body()); len(cryptos) != 0 {
		t.Errorf("offer to the callee has a=crypto %q with rtp.srtp off", cryptos)
	}
	mc.Out.hangup(t)
	bob.mustEvent(evBye)
}

// Phone RTP ports of the baresip SRTP test (see phonePorts).
var (
	portsSRTPCaller = phonePorts{7340, 7359}
	portsSRTPCallee = phonePorts{7360, 7379}
)

// TestBaresipSRTP: a baresip phone with mediaenc=srtp (a=crypto on
// RTP/AVP, best effort) and one with srtp-mand (RTP/SAVP) each call a
// plain baresip through parley. The caller's leg speaks SRTP and the
// callee's plain RTP (/api/calls says so), and each phone's recording of
// what it received carries the other's tone: parley decrypted one way and
// encrypted the other.
func TestBaresipSRTP(t *testing.T) {
	needParley(t)
	needSox(t)
	needBaresip(t)
	if _, err := os.Stat("/usr/lib/baresip/modules/srtp.so"); err != nil {
		t.Fatalf("baresip's srtp module: %v", err)
	}
	for _, tc := range []struct{ caller, callee string }{
		{"srtp", ""},
		{"srtp-mand", ""},
		// Both legs SRTP, each with keys of its own.
		{"srtp-mand", "srtp"},
	} {
		enc := tc.caller
		name := enc
		if tc.callee != "" {
			name += "_to_" + tc.callee
		}
		t.Run(name, func(t *testing.T) {
			pl := startParley(t, parleyConfig{Extra: rangeSRTPBaresip.yaml(nil, "")})
			wav := filepath.Join(t.TempDir(), "tone.wav")
			writeTone(t, wav, fileTone, toneLength)
			caller := startBaresip(t, pl, baresipConfig{Name: "caller", User: "1001", Source: "aufile," + wav,
				RTP: portsSRTPCaller, Record: true, MediaEnc: enc})
			callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine," + strconv.Itoa(sineTone),
				RTP: portsSRTPCallee, Record: true, MediaEnc: tc.callee})

			baresipCall(t, pl, caller, callee)
			pl.waitMetric(t, phoneEvent, atLeast(packetsFor(4)), "parley_rtp_packets_total")
			var calls []struct {
				Media *struct {
					CallerSRTP string `json:"caller_srtp"`
					CalleeSRTP string `json:"callee_srtp"`
				} `json:"media"`
			}
			pl.apiJSON(t, "/api/calls", &calls)
			if len(calls) != 1 || calls[0].Media == nil || calls[0].Media.CallerSRTP == "" || (calls[0].Media.CalleeSRTP != "") != (tc.callee != "") {
				t.Errorf("/api/calls media %+v: want the caller's leg on SRTP, the callee's on SRTP only with mediaenc %q", calls, tc.callee)
			}
			// Every packet of the call authenticated but one per SRTP
			// phone: when its stream starts, baresip 1.0 (libre) sends an
			// RTCP APP packet "PING" in the clear, 16 bytes, which SRTCP
			// (RFC 3711 §3.4) does not allow; parley drops and counts it.
			phones := 1.0
			if tc.callee != "" {
				phones = 2
			}
			pl.waitMetric(t, time.Second, func(v float64, ok bool) bool { return ok && v <= phones }, "parley_srtp_auth_failures_total")
			callee.command(t, "hangup", "")
			waitHungUp(t, pl, caller, callee)

			checkTone(t, "1002's recording of 1001 (SRTP, decrypted by parley)", readPCM(t, callee.recording(t, "dec")).measure(t, recordingStart), fileTone, 3)
			checkTone(t, "1001's recording of 1002 (encrypted by parley)", readPCM(t, caller.recording(t, "dec")).measure(t, recordingStart), sineTone, 3)
		})
	}
}

// TestSRTPCallEndedOnRestore: parley does not checkpoint SRTP keys, so a
// call with an SRTP leg cannot resume after a crash. After kill -9 and a
// restart on the same store, the restored call is ended cleanly: BYE to
// both phones, and the reason in the log. No key is in the store.
func TestSRTPCallEndedOnRestore(t *testing.T) {
	store := t.TempDir()
	p := startParley(t, parleyConfig{StorePath: store,
		Extra: rangeSRTPRestart.yaml(nil, "") + "sessions: {checkpoint: true}\n"})
	alice := newPhone(t, "1001", p.SIPAddr, "udp")
	bob := newPhone(t, "1002", p.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	aKey := srtpPhoneKey(t)
	alice.setSDP(func([]byte) []byte { return srtpOffer("127.0.0.1", 7380, "RTP/SAVP", aKey) })
	bob.useRTPSocket(newRTPSocket(t))
	mc := mustMediaCall(t, alice, bob)
	_, cryptos := sdpCryptos(t, "200 to the caller", mc.Out.Final.Body())
	time.Sleep(500 * time.Millisecond) // the checkpoint reaches the store

	p.kill9(t)
	for _, k := range []string{base64.StdEncoding.EncodeToString(aKey), strings.TrimPrefix(strings.Fields(cryptos[0])[2], "inline:")} {
		if out, _ := exec.Command("grep", "-rlF", k, store).Output(); len(out) > 0 {
			t.Errorf("an SRTP key is in the store: %s", out)
		}
	}
	if out, _ := exec.Command("grep", "-rlF", "inline:-", store).Output(); len(out) == 0 {
		t.Error("no checkpoint with its keys left out (inline:-) in the store")
	}
	p.restart(t, 2)
	alice.mustEvent(evBye)
	bob.mustEvent(evBye)
	p.waitLogFile(t, p.LogPath, "SRTP keys are not checkpointed")
	p.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestSRTPPerUser: users[].srtp overrides rtp.srtp for one user's phone, as
// Asterisk's media_encryption per endpoint. With rtp.srtp off, 1002 has
// srtp: mandatory: a plain phone's call to 1002 reaches it offered
// RTP/SAVP, and 1002's SRTP answer makes that leg SRTP while the caller's
// stays plain; 1003's calls keep rtp.srtp off and 1003 itself, as a
// caller offering RTP/SAVP, is refused.
func TestSRTPPerUser(t *testing.T) {
	pl := startParley(t, parleyConfig{Extra: rangeSRTPPerUser.yaml(nil, "") + "  srtp: off\n",
		SRTP: map[string]string{"1002": "mandatory"}})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	for _, p := range []*phone{alice, bob, carol} {
		p.mustRegister()
	}
	alice.setSDP(func([]byte) []byte { return mediaOffer("127.0.0.1", 7384, "0") })
	bobKey := srtpPhoneKey(t)
	bob.setSDP(func(offer []byte) []byte {
		return srtpOffer("127.0.0.1", 7386, "RTP/SAVP", bobKey) // tag 1, AES_CM_128_HMAC_SHA1_80: parley's first
	})
	mc := mustMediaCall(t, alice, bob)
	if proto, cryptos := sdpCryptos(t, "INVITE to 1002", mc.In.Req.Body()); proto != "RTP/SAVP" || len(cryptos) == 0 {
		t.Errorf("offer to 1002 (srtp: mandatory): %s with %q, want RTP/SAVP with a=crypto", proto, cryptos)
	}
	if proto, cryptos := sdpCryptos(t, "200 to 1001", mc.Out.Final.Body()); proto != "RTP/AVP" || len(cryptos) != 0 {
		t.Errorf("answer to 1001 (rtp.srtp off): %s with %q, want plain RTP/AVP", proto, cryptos)
	}
	var calls []struct {
		Media *struct {
			CallerSRTP string `json:"caller_srtp"`
			CalleeSRTP string `json:"callee_srtp"`
		} `json:"media"`
	}
	pl.apiJSON(t, "/api/calls", &calls)
	if len(calls) != 1 || calls[0].Media == nil || calls[0].Media.CallerSRTP != "" || calls[0].Media.CalleeSRTP != "AES_CM_128_HMAC_SHA1_80" {
		t.Errorf("/api/calls media %+v: want 1001's leg plain, 1002's on AES_CM_128_HMAC_SHA1_80", calls)
	}
	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	srtpRefused(t, carol, alice, srtpOffer("127.0.0.1", 7388, "RTP/SAVP", srtpPhoneKey(t)), "SRTP is off (rtp.srtp)")
}

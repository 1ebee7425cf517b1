package media

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// key30 is a 30-byte AES_CM_128 key and salt, base64.
const key30 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"

func TestParseCrypto(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
		bad         string // part of the Warning, "" for no error
	}{
		{"80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, true, ""},
		{"32 with lifetime", "7 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20", true, ""},
		{"unpadded", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, true, ""},
		{"unknown suite", "1 F8_128_HMAC_SHA1_80 inline:" + key30, false, ""},
		{"mki", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4", false, ""},
		{"session params", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", false, ""},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=", false, "has 5 bytes, AES_CM_128_HMAC_SHA1_80 needs 30"},
		{"gcm wrong length", "1 AEAD_AES_128_GCM inline:" + key30, false, "AEAD_AES_128_GCM needs 28"},
		{"not base64", "1 AES_CM_128_HMAC_SHA1_80 inline:%%%%", false, "is not base64"},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:http://x", false, "is not inline"},
		{"bad tag", "x1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, false, "is not 1 to 9 digits"},
		{"huge tag", "12345678901 AES_CM_128_HMAC_SHA1_80 inline:" + key30, false, "is not 1 to 9 digits"},
		{"too short", "1 AES_CM_128_HMAC_SHA1_80", false, "needs a tag, a suite and a key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, ok, err := parseCrypto(tc.value)
			if tc.bad != "" {
				var se *sipmsg.Error
				if !errors.As(err, &se) || se.Code != 488 || !strings.Contains(se.Warning, tc.bad) || !errors.Is(err, ErrBadCrypto) {
					t.Fatalf("error %v, want a 488 ErrBadCrypto saying %q", err, tc.bad)
				}
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("ok %t, error %v; want ok %t", ok, err, tc.ok)
			}
			if ok && len(k.key) != k.suite.keyLen+k.suite.saltLen {
				t.Errorf("key of %d bytes", len(k.key))
			}
		})
	}
}

// The written a=crypto line reads back as the key it was written from.
func TestCryptoRoundTrip(t *testing.T) {
	for i, s := range cryptoSuites {
		k := newKey(i+1, s)
		a := k.attr()
		got, ok, err := parseCrypto(a.Value)
		if err != nil || !ok || !got.equal(k) {
			t.Errorf("%s: %q read back as %+v ok=%t err=%v", s.name, a.Value, got, ok, err)
		}
	}
	if a, b := newKey(1, cryptoSuites[0]), newKey(1, cryptoSuites[0]); a.equal(b) {
		t.Error("two new keys are equal")
	}
}

const (
	srtpOfferSAVP = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "\r\n"
	srtpOfferAVP = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "\r\n"
	plainOffer = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	plainAnswer = "v=0\r\no=bob 2 2 IN IP4 10.0.1.5\r\ns=-\r\nc=IN IP4 10.0.1.5\r\nt=0 0\r\n" +
		"m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

func newPolicySession(t *testing.T, p SRTPPolicy) (*Session, *fakeBridge) {
	t.Helper()
	s, fb := newTestSession(t, relayAddr, defaultPrefs)
	s.SetSRTPPolicy(SideA, p)
	s.SetSRTPPolicy(SideB, p)
	return s, fb
}

// An SRTP caller reaches a plain callee: parley offers the callee SRTP best
// effort, the callee answers plain, and the caller gets parley's own key
// under its tag and suite, on the transport it offered.
func TestSessionSRTPToPlain(t *testing.T) {
	for _, offer := range []string{srtpOfferSAVP, srtpOfferAVP} {
		s, fb := newPolicySession(t, SRTPOptional)
		out, err := s.Offer(SideA, []byte(offer))
		if err != nil {
			t.Fatal(err)
		}
		o := string(out)
		if !strings.Contains(o, "m=audio 30000 RTP/AVP 0") || strings.Count(o, "a=crypto:") != 2 ||
			!strings.Contains(o, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") || strings.Contains(o, key30) {
			t.Errorf("offer to the callee:\n%s", o)
		}
		ans, err := s.Answer(SideB, []byte(plainAnswer))
		if err != nil {
			t.Fatal(err)
		}
		a := string(ans)
		wantLine := "m=audio 20000 RTP/SAVP 0"
		wantCrypto := "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:"
		if offer == srtpOfferAVP {
			wantLine, wantCrypto = "m=audio 20000 RTP/AVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
		}
		if !strings.Contains(a, wantLine) || !strings.Contains(a, wantCrypto) || strings.Contains(a, key30) {
			t.Errorf("answer to the caller:\n%s", a)
		}
		if got := strings.Join(fb.take(), "\n"); !strings.Contains(got, "SetSRTP caller") || strings.Contains(got, "SetSRTP callee") {
			t.Errorf("bridge told:\n%s", got)
		}
		if s.SRTP(SideA) == "" || s.SRTP(SideB) != "" {
			t.Errorf("SRTP caller %q callee %q", s.SRTP(SideA), s.SRTP(SideB))
		}
		st, err := s.State()
		if err != nil {
			t.Fatal(err)
		}
		if st.Sides[SideA].SRTP == "" {
			t.Error("checkpoint does not say the caller spoke SRTP")
		}
		data, _ := s.Checkpoint()
		if !strings.Contains(string(data), "inline:-") ||
			strings.Contains(string(data), base64.StdEncoding.EncodeToString(s.sec[SideA].local.key)) {
			t.Errorf("checkpoint holds a key:\n%s", data)
		}
		ss, _ := NewSessions(func() (bridge, error) { return newFakeBridge(), nil }, relayAddr, defaultPrefs,
			withOpenAt(func([2]int) (bridge, error) { return newFakeBridge(), nil }))
		if _, err := ss.Restore(data); !errors.Is(err, ErrSRTPNotRestored) {
			t.Errorf("Restore: %v, want ErrSRTPNotRestored", err)
		}
	}
}

// A callee that answers parley's best-effort offer with a=crypto speaks
// SRTP too, with its key under parley's tag.
func TestSessionSRTPBothLegs(t *testing.T) {
	s, fb := newPolicySession(t, SRTPOptional)
	if _, err := s.Offer(SideA, []byte(srtpOfferAVP)); err != nil {
		t.Fatal(err)
	}
	ans := strings.Replace(plainAnswer, "a=rtpmap:0 PCMU/8000\r\n",
		"a=rtpmap:0 PCMU/8000\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"+key30+"\r\n", 1)
	if _, err := s.Answer(SideB, []byte(ans)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fb.take(), "\n"); !strings.Contains(got, "SetSRTP callee AES_CM_128_HMAC_SHA1_32") {
		t.Errorf("bridge told:\n%s", got)
	}
	// A re-INVITE from the callee keeps the caller's key: no rekeying.
	before := s.sec[SideA].local
	re := strings.Replace(strings.Replace(ans, "o=bob 2 2", "o=bob 2 3", 1), "5000", "5002", 1)
	out, err := s.Offer(SideB, []byte(re))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), before.attr().Value) {
		t.Errorf("re-offer to the caller does not keep its key:\n%s", out)
	}
}

func TestSessionSRTPPolicy(t *testing.T) {
	badKey := strings.Replace(srtpOfferSAVP, key30, "c2hvcnQ=", 1)
	for _, tc := range []struct {
		name    string
		policy  SRTPPolicy
		offer   string
		answer  string // "" when the offer fails
		want    error
		warning string
	}{
		{"off refuses SAVP", SRTPOff, srtpOfferSAVP, "", ErrSRTPOff, "SRTP is off (rtp.srtp)"},
		{"mandatory refuses plain", SRTPMandatory, plainOffer, "", ErrSRTPRequired, "SRTP is mandatory (rtp.srtp): the caller offered plain RTP"},
		{"mandatory refuses a plain answer", SRTPMandatory, srtpOfferAVP, plainAnswer, ErrSRTPRequired, "the callee answered without SRTP"},
		{"bad key", SRTPOptional, badKey, "", ErrBadCrypto, "has 5 bytes"},
		{"SAVP without crypto", SRTPOptional, strings.Replace(srtpOfferSAVP, "a=crypto", "a=x-crypto", 1), "", ErrNoCryptoSuite, "without a=crypto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newPolicySession(t, tc.policy)
			_, err := s.Offer(SideA, []byte(tc.offer))
			if tc.answer != "" {
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Answer(SideB, []byte(tc.answer))
			}
			var se *sipmsg.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &se) || se.Code != 488 || !strings.Contains(se.Warning, tc.warning) {
				t.Fatalf("error %v, want 488 %v saying %q", err, tc.want, tc.warning)
			}
		})
	}
}

// With rtp.srtp off, best-effort SRTP is answered plain, never stripped
// on the way to the callee with the caller's key.
func TestSessionSRTPOffAnswersPlain(t *testing.T) {
	s, fb := newPolicySession(t, SRTPOff)
	out, err := s.Offer(SideA, []byte(srtpOfferAVP))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "crypto") {
		t.Errorf("offer to the callee:\n%s", out)
	}
	ans, err := s.Answer(SideB, []byte(plainAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ans), "crypto") || strings.Contains(strings.Join(fb.take(), " "), "SetSRTP") {
		t.Errorf("answer to the caller:\n%s", ans)
	}
}

// Mandatory offers a plain caller's callee nothing: the call is refused
// before; but an SRTP caller's callee is offered RTP/SAVP.
func TestSessionSRTPMandatoryOffersSAVP(t *testing.T) {
	s, _ := newPolicySession(t, SRTPMandatory)
	out, err := s.Offer(SideA, []byte(srtpOfferAVP))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "RTP/SAVP 0") {
		t.Errorf("offer to the callee:\n%s", out)
	}
}

// Parley's own services answer plain RTP only: RTP/SAVP gets a 488 that
// says so, not "no codec in common".
func TestAnswerRefusesSAVP(t *testing.T) {
	_, _, err := Answer([]byte(srtpOfferSAVP), defaultPrefs, relayAddr, 4000, 1)
	var se *sipmsg.Error
	if !errors.Is(err, ErrSRTPUnsupported) || !errors.As(err, &se) || se.Code != 488 {
		t.Fatalf("Answer(RTP/SAVP): %v, want 488 ErrSRTPUnsupported", err)
	}
}

func FuzzParseCrypto(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30,
		"1 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4",
		"1 AEAD_AES_128_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"x y z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		k, ok, err := parseCrypto(v)
		if ok && (err != nil || len(k.key) != k.suite.keyLen+k.suite.saltLen) {
			t.Fatalf("%q: ok with err %v, key %d bytes", v, err, len(k.key))
		}
		if ok {
			if _, err := contextOf(k); err != nil {
				t.Fatalf("%q: key accepted but no context: %v", v, err)
			}
		}
	})
}

// Per side: a plain caller whose callee's user has srtp mandatory is
// bridged to an SRTP leg: the callee is offered RTP/SAVP.
func TestSessionSRTPPerSide(t *testing.T) {
	s, fb := newPolicySession(t, SRTPOptional)
	s.SetSRTPPolicy(SideB, SRTPMandatory)
	out, err := s.Offer(SideA, []byte(plainOffer))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "RTP/SAVP 0") || !strings.Contains(string(out), "a=crypto:1 ") {
		t.Fatalf("offer to the callee:\n%s", out)
	}
	o, _ := parseSDP(out)
	key := o.MediaDescriptions[0].Attributes
	var line string
	for _, a := range key {
		if a.Key == "crypto" {
			line = a.Value
			break
		}
	}
	k, _, _ := parseCrypto(line)
	ans := strings.Replace(strings.Replace(plainAnswer, "RTP/AVP", "RTP/SAVP", 1), "a=rtpmap:0 PCMU/8000\r\n",
		"a=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30+"\r\n", 1)
	a, err := s.Answer(SideB, []byte(ans))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(a), "crypto") || !strings.Contains(string(a), "RTP/AVP") {
		t.Errorf("answer to the plain caller:\n%s", a)
	}
	if got := strings.Join(fb.take(), "\n"); !strings.Contains(got, "SetSRTP callee AES_CM_128_HMAC_SHA1_80") || k.tag != 1 {
		t.Errorf("bridge told:\n%s", got)
	}
}

// A phone that answers parley's re-offer (a session refresh, Reoffered)
// with a new key gets it used; the same key keeps the contexts.
func TestSessionSRTPReoffered(t *testing.T) {
	s, fb := newPolicySession(t, SRTPOptional)
	if _, err := s.Offer(SideA, []byte(srtpOfferAVP)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(SideB, []byte(plainAnswer)); err != nil {
		t.Fatal(err)
	}
	fb.take()
	newKey := "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk" // 30 bytes
	ans := strings.Replace(strings.Replace(srtpOfferAVP, key30, newKey, 1), "o=alice 1 1", "o=alice 1 2", 1)
	if err := s.Reoffered(SideA, []byte(ans)); err != nil {
		t.Fatal(err)
	}
	if got := s.sec[SideA].remote.attr().Value; !strings.Contains(got, newKey) {
		t.Errorf("caller's key after the refresh: %s", got)
	}
	if got := strings.Join(fb.take(), "\n"); !strings.Contains(got, "SetSRTP caller") {
		t.Errorf("bridge told:\n%s", got)
	}
}

// A transfer's new phone on an SRTP leg is offered a fresh key of
// parley's, not the one the leaving phone knows.
func TestSessionSRTPPhoneChangedRekeys(t *testing.T) {
	s, _ := newPolicySession(t, SRTPOptional)
	if _, err := s.Offer(SideA, []byte(srtpOfferAVP)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(SideB, []byte(plainAnswer)); err != nil {
		t.Fatal(err)
	}
	old := s.sec[SideA].local
	s.PhoneChanged(SideA)
	out, err := s.Offer(SideB, []byte(strings.Replace(plainAnswer, "o=bob 2 2", "o=bob 2 3", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), old.attr().Value) || !strings.Contains(string(out), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
		t.Errorf("offer to the new phone:\n%s", out)
	}
}

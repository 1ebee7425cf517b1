package play

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wav writes a 16-bit PCM WAV of samples at rate with channels.
func wav(t *testing.T, rate, channels int, samples []int16) string {
	var data bytes.Buffer
	for _, s := range samples {
		for range channels {
			_ = binary.Write(&data, binary.LittleEndian, s)
		}
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+data.Len()))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(channels), uint32(rate),
		uint32(rate * 2 * channels), uint16(2 * channels), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(data.Len()))
	b.Write(data.Bytes())
	path := filepath.Join(t.TempDir(), "x.wav")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseSound(t *testing.T) {
	s, err := ParseSound("tone:440")
	if err != nil || !s.Loop || s.hz != 440 {
		t.Errorf("tone: %+v %v", s, err)
	}
	tone := make([]int16, 8000)
	audio.NewTone(600, 8000, 8000).Fill(tone)
	s, err = ParseSound(wav(t, 8000, 2, tone))
	if err != nil || s.Loop || len(s.pcm) != 16000 {
		t.Fatalf("wav: loop %v, %d samples, %v", s.Loop, len(s.pcm), err)
	}
	if audio.Goertzel(s.pcm, 600, 16000) < 1e6 {
		t.Error("the WAV's tone is lost")
	}
	for _, bad := range []string{"tone:x", "/nonexistent.wav"} {
		if _, err := ParseSound(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	junk := filepath.Join(t.TempDir(), "junk.wav")
	_ = os.WriteFile(junk, []byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"), 0o644)
	if _, err := ParseSound(junk); err == nil {
		t.Error("junk: no error")
	}
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x04\x00\x00\x00\x01\x00\x02\x00"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeWAV(b) })
}

// A WAV plays once, in the caller's codec, and then Done closes; a tone
// keeps playing.
func TestPlays(t *testing.T) {
	pool, err := media.NewPortPool(32680, 32699)
	if err != nil {
		t.Fatal(err)
	}
	tone := make([]int16, 4000) // half a second
	audio.NewTone(600, 8000, 8000).Fill(tone)
	s, err := ParseSound(wav(t, 8000, 1, tone))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sound Sound
		codec string
		pt    uint8
		hz    float64
	}{
		{s, "PCMA", 8, 600},
		{s, "G722", 9, 600},
		{Tone(1000), "PCMU", 0, 1000},
	} {
		p, err := New(pool, netip.MustParseAddr("127.0.0.1"), []string{"PCMU", "PCMA", "G722", "opus"}, tc.sound, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
			strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP " + strconv.Itoa(int(tc.pt)) + "\r\n"
		_, sess, err := p.Start([]byte(offer), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if sess.Codec() != tc.codec {
			t.Errorf("codec %s, want %s", sess.Codec(), tc.codec)
		}
		dec, _ := audio.NewDecoder(tc.codec)
		var heard []int16
		buf := make([]byte, 2048)
		var pkt rtp.Packet
		deadline := time.Now().Add(700 * time.Millisecond)
		for time.Now().Before(deadline) {
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if pkt.Unmarshal(buf[:n]) == nil && pkt.PayloadType == tc.pt {
				heard = dec.Decode(heard, pkt.Payload)
			}
		}
		rate := audio.RateOf(tc.codec)
		if audio.Goertzel(heard, tc.hz, rate) < 1e5 {
			t.Errorf("%s: %v Hz not heard in %d samples", tc.codec, tc.hz, len(heard))
		}
		select {
		case <-sess.Done():
			if tc.sound.Loop {
				t.Errorf("%s: a tone ended", tc.codec)
			}
		default:
			if !tc.sound.Loop {
				t.Errorf("%s: the WAV did not end after playing once", tc.codec)
			}
		}
		sess.Close()
		c.Close()
	}
}

package dialog

import (
	"strings"
	"testing"
	"time"
)

// TestParseDTMFInfo reads keys as phones send them in INFO and refuses
// what is not one, saying why.
func TestParseDTMFInfo(t *testing.T) {
	tests := []struct {
		name, ct, body string
		code           uint8
		dur            time.Duration
		err            string // part of the error; "" for none
	}{
		{"dtmf-relay", ctDTMFRelay, "Signal=5\r\nDuration=160\r\n", 5, 160 * time.Millisecond, ""},
		{"spaces and case", ctDTMFRelay, "signal= #\r\nDURATION = 250\r\n", 11, 250 * time.Millisecond, ""},
		{"no duration", ctDTMFRelay, "Signal=*\n", 10, 160 * time.Millisecond, ""},
		{"letter", ctDTMFRelay, "Signal=d\r\n", 15, 160 * time.Millisecond, ""},
		{"numeric 16", ctDTMFRelay, "Signal=16\r\n", 16, 160 * time.Millisecond, ""},
		{"numeric 11", ctDTMFRelay, "Signal=11\r\n", 11, 160 * time.Millisecond, ""},
		{"application/dtmf", ctDTMF, "7\r\n", 7, 160 * time.Millisecond, ""},
		{"bad signal", ctDTMFRelay, "Signal=X\r\n", 0, 0, "Signal"},
		{"signal 17", ctDTMFRelay, "Signal=17\r\n", 0, 0, "Signal"},
		{"signal 010", ctDTMFRelay, "Signal=010\r\n", 0, 0, "Signal"},
		{"no signal", ctDTMFRelay, "Duration=160\r\n", 0, 0, "no Signal"},
		{"twice", ctDTMFRelay, "Signal=1\r\nSignal=2\r\n", 0, 0, "twice"},
		{"short", ctDTMFRelay, "Signal=1\r\nDuration=10\r\n", 0, 0, "Duration"},
		{"long", ctDTMFRelay, "Signal=1\r\nDuration=60000\r\n", 0, 0, "Duration"},
		{"negative", ctDTMFRelay, "Signal=1\r\nDuration=-160\r\n", 0, 0, "Duration"},
		{"unknown field", ctDTMFRelay, "Signal=1\r\nVolume=10\r\n", 0, 0, "unknown"},
		{"no equals", ctDTMFRelay, "Signal 1\r\n", 0, 0, "name=value"},
		{"too big", ctDTMFRelay, "Signal=1\r\n" + strings.Repeat(" \r\n", 100), 0, 0, "over"},
		{"dtmf two keys", ctDTMF, "1 2", 0, 0, "Signal"},
		{"empty", ctDTMFRelay, "", 0, 0, "no Signal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := parseDTMFInfo(tc.ct, []byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if key.code != tc.code || key.dur != tc.dur {
				t.Errorf("key %d for %v, want %d for %v", key.code, key.dur, tc.code, tc.dur)
			}
		})
	}
}

// TestDTMFRelayBody writes each key as phones read it, and reads it back.
func TestDTMFRelayBody(t *testing.T) {
	for code := range uint8(17) {
		body := dtmfRelayBody(code, 160*time.Millisecond)
		want := "Signal=" + string("0123456789*#ABCD"[min(code, 15)]) + "\r\nDuration=160\r\n"
		if code == 16 {
			want = "Signal=16\r\nDuration=160\r\n"
		}
		if string(body) != want {
			t.Errorf("code %d: %q, want %q", code, body, want)
		}
		key, err := parseDTMFInfo(ctDTMFRelay, body)
		if err != nil || key.code != code || key.dur != 160*time.Millisecond {
			t.Errorf("code %d read back as %+v, %v", code, key, err)
		}
	}
}

// FuzzParseDTMFInfo: whatever a phone sends, the parser returns a key in
// range or an error, and never panics.
func FuzzParseDTMFInfo(f *testing.F) {
	for _, s := range []string{"Signal=5\r\nDuration=160\r\n", "Signal=#\n", "signal= 16\r\nduration=5000", "Signal=\r\n", "=\n", "7"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, relay bool) {
		ct := ctDTMF
		if relay {
			ct = ctDTMFRelay
		}
		key, err := parseDTMFInfo(ct, []byte(body))
		if err != nil {
			return
		}
		if key.code > 16 || key.dur < minDTMFDuration || key.dur > maxDTMFDuration {
			t.Fatalf("%q: key %+v out of range", body, key)
		}
	})
}

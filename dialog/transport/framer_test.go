package transport

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func sipMessage(body string) string {
	return "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-1\r\n" +
		"Call-ID: x\r\nl: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// TestFramer follows message boundaries over chunks cut anywhere: each
// case is fed whole, then byte by byte, and must give the same messages
// and the same error.
func TestFramer(t *testing.T) {
	two := sipMessage("") + "\r\n\r\n" + sipMessage("v=0\r\n")
	tests := []struct {
		name     string
		max      int
		stream   string
		complete int
		err      string // "" for none
	}{
		{"one message", 0, sipMessage(""), 1, ""},
		{"with a body", 0, sipMessage("hello"), 1, ""},
		{"keepalives and two messages", 0, "\r\n\r\n" + two, 2, ""},
		{"partial body", 0, strings.TrimSuffix(sipMessage("hello"), "lo"), 0, ""},
		{"partial headers", 0, "INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", 0, ""},
		{"folded Content-Length", 0, "OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n  3\r\n\r\nabc", 1, ""},
		{"compact and long name agree", 0, "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length : 0\r\n\r\n", 1, ""},
		{"response", 0, "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1, ""},
		{"no Content-Length", 0, "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", 0, "without Content-Length"},
		{"negative Content-Length", 0, "INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n", 0, "malformed Content-Length"},
		{"two Content-Lengths", 0, "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nContent-Length: 5\r\n\r\n", 0, "conflicting"},
		{"huge Content-Length", 0, "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999\r\n\r\n", 0, "larger than"},
		{"not SIP", 0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, "not a SIP"},
		{"two spaces in the request line", 0, "INVITE  sip:a@b SIP/2.0\r\nl: 0\r\n\r\n", 0, "not a SIP"},
		{"Request-URI sipgo cannot parse", 0, "INVITE <sip:a@b> SIP/2.0\r\nl: 0\r\n\r\n", 0, "not a SIP"},
		{"status code too large", 0, "SIP/2.0 4294967301 better not break the receiver\r\nl: 0\r\n\r\n", 0, "not a SIP"},
		{"header line without a colon", 0, "OPTIONS sip:a@b SIP/2.0\r\nnot a header\r\nl: 0\r\n\r\n", 0, "without a colon"},
		{"body over the limit", 100, sipMessage(strings.Repeat("x", 100)), 0, "larger than"},
		{"headers over the limit", 100, "OPTIONS sip:a@b SIP/2.0\r\nX: " + strings.Repeat("y", 200), 0, "larger than"},
		{"at the limit", len(sipMessage("abc")), sipMessage("abc"), 1, ""},
		{"good message, then garbage", 0, sipMessage("") + "garbage\r\n\r\n", 1, "not a SIP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				f := framer{max: tt.max}
				complete, good := 0, 0
				var err error
				if split {
					for i := 0; i < len(tt.stream) && err == nil; i++ {
						g, c, e := f.feed([]byte(tt.stream[i : i+1]))
						complete += c
						good += g
						err = e
					}
				} else {
					good, complete, err = f.feed([]byte(tt.stream))
				}
				if complete != tt.complete {
					t.Errorf("split=%v: %d messages, want %d", split, complete, tt.complete)
				}
				switch {
				case tt.err == "" && err != nil:
					t.Errorf("split=%v: error %v", split, err)
				case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
					t.Errorf("split=%v: error %v, want one with %q", split, err, tt.err)
				}
				if !split && tt.name == "good message, then garbage" && good != len(sipMessage("")) {
					t.Errorf("split=%v: %d good bytes, want %d (the first message)", split, good, len(sipMessage("")))
				}
			}
		})
	}
}

func TestFramerStateBetweenMessages(t *testing.T) {
	f := framer{}
	if _, c, err := f.feed([]byte(sipMessage("ab"))); c != 1 || err != nil {
		t.Fatalf("first message: %d, %v", c, err)
	}
	// The next message has its own Content-Length; the first one's is gone.
	if _, c, err := f.feed([]byte("OPTIONS sip:a@b SIP/2.0\r\n\r\n")); c != 0 || !errors.Is(err, errNoLength) {
		t.Fatalf("second message without a length: %d, %v", c, err)
	}
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte(sipMessage("hello")), 5)
	f.Add([]byte("\r\n\r\n"+sipMessage("")+sipMessage("v=0")), 1)
	f.Add([]byte("INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"), 3)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		whole := framer{max: 1000}
		g1, c1, e1 := whole.feed(data)
		if g1 < 0 || g1 > len(data) {
			t.Fatalf("good %d of %d bytes", g1, len(data))
		}
		if cut < 0 || cut > len(data) {
			return
		}
		parts := framer{max: 1000}
		ga, ca, ea := parts.feed(data[:cut])
		c2, e2 := ca, ea
		if ea == nil {
			_, cb, eb := parts.feed(data[cut:])
			c2, e2 = ca+cb, eb
		}
		if c1 != c2 || (e1 == nil) != (e2 == nil) {
			t.Fatalf("whole: %d, %v; cut at %d: %d, %v", c1, e1, cut, c2, e2)
		}
		_ = ga
	})
}

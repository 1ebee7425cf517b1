package testcalls

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tortureCase is one RFC 4475 message and the answer parley gives it.
type tortureCase struct {
	file    string // in testdata/torture
	section string // of RFC 4475
	// via is the sent-by of the top Via, replaced by the test's own
	// address so the answer comes back; "" for a response.
	via string
	// want is the status parley answers with; 0: no answer at all.
	want int
	// has is a part the answer must contain, when the status alone does
	// not show that parley understood (the Warning, Unsupported, Allow).
	has string
	// rfc says what RFC 4475 asks for, where it is not simply want.
	rfc string
}

// tortureCases are every message of RFC 4475, in its order. The
// requests come from an untrusted address, so an INVITE or REGISTER that
// parley takes gets the digest challenge, which is its normal answer.
var tortureCases = []tortureCase{
	// 3.1.1 Valid messages: parsers must take them.
	{"wsinv.dat", "3.1.1.1", "192.0.2.2", 481, "", "valid; its To tag names a dialog parley does not have"},
	{"intmeth.dat", "3.1.1.2", "host1.example.com", 501, "Allow:", ""},
	{"esc01.dat", "3.1.1.3", "host5.example.net", 407, "", ""},
	{"escnull.dat", "3.1.1.4", "host5.example.com", 401, "", ""},
	{"esc02.dat", "3.1.1.5", "host.example.com", 501, "Allow:", "RE%47IST%45R is an unknown method, not REGISTER"},
	{"lwsdisp.dat", "3.1.1.6", "funky.example.com", 200, "", ""},
	{"longreq.dat", "3.1.1.7", "sip33.example.com", 407, "", ""},
	{"dblreq.dat", "3.1.1.8", "192.0.2.125", 401, "", "the REGISTER is answered, the INVITE after its Content-Length ignored"},
	{"semiuri.dat", "3.1.1.9", "192.0.2.1", 200, "", ""},
	{"transports.dat", "3.1.1.10", "t1.example.com", 200, "", ""},
	{"mpart01.dat", "3.1.1.11", "127.0.0.1:5070", 407, "Proxy-Authenticate:", "a valid MESSAGE; from an untrusted source it is challenged, as a call is"},
	{"unreason.dat", "3.1.1.12", "", 0, "", "a response: taken and, matching no transaction, discarded"},
	{"noreason.dat", "3.1.1.13", "", 0, "", "a response: taken and discarded"},
	// 3.1.2 Invalid messages.
	{"badinv01.dat", "3.1.2.1", "192.0.2.15", 400, "Via", ""},
	{"clerr.dat", "3.1.2.2", "host5.example.com", 400, "Content-Length 9999", ""},
	{"ncl.dat", "3.1.2.3", "192.0.2.53", 400, "Content-Length", ""},
	{"scalar02.dat", "3.1.2.4", "host129.example.com", 400, "CSeq", ""},
	{"scalarlg.dat", "3.1.2.5", "", 0, "", "a response: discarded"},
	{"quotbal.dat", "3.1.2.6", "192.0.2.59:5050", 400, "To", ""},
	{"ltgtruri.dat", "3.1.2.7", "192.0.2.5", 400, "Request-URI", ""},
	{"lwsruri.dat", "3.1.2.8", "192.0.2.1:5060", 400, "Request-Line", ""},
	{"lwsstart.dat", "3.1.2.9", "host1.example.com", 400, "Request-Line", "400, or ignore the extra spaces"},
	{"trws.dat", "3.1.2.10", "host1.examle.com", 400, "Request-Line", "400, or ignore the trailing spaces"},
	{"escruri.dat", "3.1.2.11", "host-of-the-hour.example.com", 400, "Request-URI carries headers", "400, or ignore the escaped headers"},
	{"baddate.dat", "3.1.2.12", "host.example.com", 407, "", "400 only if the Date mattered; parley ignores Date"},
	{"regbadct.dat", "3.1.2.13", "135.180.130.133:5060", 401, "", "400, or infer the <>; parley's parser infers them"},
	{"badaspec.dat", "3.1.2.14", "host4.example.com:5060", 400, "To", "400, or ignore the spaces"},
	{"baddn.dat", "3.1.2.15", "c.example.com:5060", 400, "From", ""},
	{"badvers.dat", "3.1.2.16", "c.example.com", 505, "SIP/7.0", ""},
	{"mismatch01.dat", "3.1.2.17", "host.example.com", 400, "CSeq method", ""},
	{"mismatch02.dat", "3.1.2.18", "host.example.net", 501, "Allow:", "501, or 400"},
	{"bigcode.dat", "3.1.2.19", "", 0, "", "a response: discarded"},
	// 3.2 Transaction layer semantics.
	{"badbranch.dat", "3.2.1", "192.0.2.1", 200, "", "400, or fall back to RFC 2543 transaction matching; parley falls back"},
	// 3.3 Application layer semantics.
	{"insuf.dat", "3.3.1", "192.0.2.95", 400, "From", ""},
	{"unkscm.dat", "3.3.2", "host9.example.com", 416, "", ""},
	{"novelsc.dat", "3.3.3", "host9.example.com", 416, "soap.beep", ""},
	{"unksm2.dat", "3.3.4", "192.0.2.21:5060", 400, "To", "a registrar answers 400"},
	{"bext01.dat", "3.3.5", "fold-and-staple.example.com", 420, "Unsupported: nothingSupportsThis, nothingSupportsThisEither", ""},
	{"invut.dat", "3.3.6", "somehost.example.com", 415, "Accept: application/sdp", ""},
	{"regaut01.dat", "3.3.7", "192.0.2.253", 401, "", "a registrar that authenticates challenges with a scheme it knows"},
	{"multi01.dat", "3.3.8", "192.0.2.25", 400, "more than one", ""},
	{"mcl01.dat", "3.3.9", "host5.example.net", 400, "more than one Content-Length", ""},
	{"bcast.dat", "3.3.10", "", 0, "", "a response: discarded, never sent on to 255.255.255.255"},
	{"zeromf.dat", "3.3.11", "host1.example.com", 200, "", "an endpoint answers as if Max-Forwards were positive"},
	{"cparam01.dat", "3.3.12", "saturn.example.com:5060", 401, "", "valid; the registration proceeds"},
	{"cparam02.dat", "3.3.13", "saturn.example.com:5060", 401, "", "valid; the registration proceeds"},
	{"regescrt.dat", "3.3.14", "host5.example.com", 401, "", "valid; the registration proceeds"},
	{"sdp01.dat", "3.3.15", "192.0.2.15", 406, "", ""},
	// 3.4 Backward compatibility.
	{"inv2543.dat", "3.4.1", "iftgw.example.com", 400, "tag", "accepted by an element that keeps RFC 2543 compatibility; parley does not (no From tag)"},
}

// TestTorture sends every RFC 4475 message to parley over UDP, from its
// own socket, and checks the answer: the status the RFC calls for (or,
// where it allows a choice, the one parley makes), or none.
func TestTorture(t *testing.T) {
	// Every INVITE and REGISTER here is a stranger's, and their challenges
	// are never answered: with bans on, the source would be banned (and
	// then dropped) halfway through the table.
	pl := startParley(t, parleyConfig{Extra: "security: {ban_after: 0}\n"})
	for _, tc := range tortureCases {
		t.Run(strings.TrimSuffix(tc.file, ".dat"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "torture", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.via != "" {
				data = replaceSentBy(t, data, tc.via, conn.LocalAddr().String())
			}
			raddr, err := net.ResolveUDPAddr("udp", pl.SIPAddr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.WriteTo(data, raddr); err != nil {
				t.Fatal(err)
			}
			answers := readAnswers(conn, tc.want != 0)
			if tc.want == 0 {
				if len(answers) > 0 {
					t.Fatalf("RFC 4475 §%s (%s): got an answer, want none:\n%s", tc.section, tc.rfc, answers[0])
				}
				return
			}
			if len(answers) == 0 {
				t.Fatalf("RFC 4475 §%s: no answer, want %d", tc.section, tc.want)
			}
			final := answers[len(answers)-1]
			if code := statusOf(final); code != tc.want || !bytes.Contains(final, []byte(tc.has)) {
				t.Fatalf("RFC 4475 §%s: got\n%s\nwant %d containing %q", tc.section, final, tc.want, tc.has)
			}
			if !bytes.HasPrefix(final, []byte("SIP/2.0 ")) {
				t.Errorf("the answer is not SIP/2.0: %q", firstLine(final))
			}
			// One request, one Call-ID: nothing else in the datagram (the
			// INVITE after dblreq's REGISTER) may be answered.
			callID := headerValue(final, "Call-ID", "i")
			for _, a := range answers {
				if got := headerValue(a, "Call-ID", "i"); got != callID {
					t.Errorf("an answer to a second request (Call-ID %s) in one datagram:\n%s", got, a)
				}
			}
		})
	}
	if code, _ := pl.httpGet(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after the torture messages: %d", code)
	}
}

// replaceSentBy puts addr in place of sentBy in the message's top Via:
// the first sent-by after a transport, whatever whitespace or line folding
// lies between them.
func replaceSentBy(t *testing.T, data []byte, sentBy, addr string) []byte {
	t.Helper()
	re := regexp.MustCompile(`(?i)(/\s*(UDP|TCP|TLS|SCTP)\s+)` + regexp.QuoteMeta(sentBy))
	loc := re.FindSubmatchIndex(data)
	if loc == nil {
		t.Fatalf("no Via sent-by %s in the message", sentBy)
	}
	out := append([]byte(nil), data[:loc[3]]...)
	out = append(out, addr...)
	return append(out, data[loc[1]:]...)
}

// readAnswers reads what parley sends back: until the first final answer
// and a short while after it (to see what else comes), or until a short
// wait when no answer is expected.
func readAnswers(conn net.PacketConn, expect bool) [][]byte {
	var out [][]byte
	deadline := time.Now().Add(700 * time.Millisecond)
	if expect {
		deadline = time.Now().Add(3 * time.Second)
	}
	buf := make([]byte, 65535)
	for {
		_ = conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return out
		}
		a := bytes.Clone(buf[:n])
		if statusOf(a) == 100 {
			continue
		}
		out = append(out, a)
		if statusOf(a) >= 200 && deadline.Sub(time.Now()) > 300*time.Millisecond {
			deadline = time.Now().Add(300 * time.Millisecond)
		}
	}
}

// statusOf returns a response's status code; 0 for anything else.
func statusOf(msg []byte) int {
	line := firstLine(msg)
	if !strings.HasPrefix(line, "SIP/") {
		return 0
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

func firstLine(msg []byte) string {
	line, _, _ := strings.Cut(string(msg), "\r\n")
	return line
}

// headerValue returns the value of the first header named name (or its
// compact form) in msg.
func headerValue(msg []byte, name, compact string) string {
	for _, line := range strings.Split(string(msg), "\r\n")[1:] {
		if line == "" {
			break
		}
		n, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n = strings.TrimSpace(n)
		if strings.EqualFold(n, name) || strings.EqualFold(n, compact) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

package cdr

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/dialog"
)

var (
	t0 = time.Date(2026, 12, 6, 9, 30, 0, 250e6, time.UTC)
	// calls are the golden records' calls, one per disposition.
	calls = []struct {
		name string
		call dialog.CallRecord
	}{
		{"answered", dialog.CallRecord{
			ID: "c0ffee42deadbeef", Node: "lab1", CallID: "abc@10.0.0.5", Account: "1001", From: "1001", To: "1002",
			FromName: "Alice", FromURI: "sip:1001@lab", ToURI: "sip:1002@lab", CalleeURI: "sip:1002@10.0.0.6:5060",
			Start: t0, Answer: t0.Add(3 * time.Second), End: t0.Add(65*time.Second + 900*time.Millisecond),
			Result: "answered", Reason: "BYE from callee",
			Media: &dialog.MediaQuality{Codec: "PCMU", Packets: 6200, Lost: 3, Jitter: 1250 * time.Microsecond},
		}},
		{"busy", dialog.CallRecord{
			ID: "0123456789abcdef", Node: "lab1", Account: "1001", From: "1001", To: "1003", FromName: `Al "the pal"`,
			ToURI: "sip:1003@lab", Start: t0, End: t0.Add(2 * time.Second), Result: "busy", Reason: "486 Busy Here", Code: 486,
		}},
		{"cancelled", dialog.CallRecord{
			ID: "fedcba9876543210", From: "1002", To: "1001", ToURI: "sip:1001@lab", Start: t0, End: t0.Add(12 * time.Second),
			Result: "cancelled", Reason: "cancelled by caller",
		}},
		{"congestion", dialog.CallRecord{
			ID: "1111111122222222", From: "1002", To: "1001", Start: t0, End: t0, Result: "rejected",
			Reason: "503 Service Unavailable", Code: 503,
		}},
		{"not found", dialog.CallRecord{
			ID: "3333333344444444", From: "1002", To: "9999", Start: t0, End: t0, Result: "not_found",
			Reason: "404 Not Found", Code: 404,
		}},
		{"echo", dialog.CallRecord{
			ID: "5555555566666666", Account: "1003", From: "1003", To: "600", App: "Echo", Start: t0,
			Answer: t0, End: t0.Add(10 * time.Second), Result: "answered", Reason: "BYE from caller",
		}},
		{"hostile display name", dialog.CallRecord{
			ID: "7777777788888888", From: "1002", To: "1001", FromName: "line\r\nbreak,\"quote\"\x00" + strings.Repeat("é", 200),
			Start: t0, End: t0, Result: "failed", Reason: "500 Server Internal Error", Code: 500,
		}},
	}
)

// TestAppendCSVGolden writes one record per disposition and compares them
// with testdata/records.csv: cdr_csv's columns and quoting, then
// parley's.
func TestAppendCSVGolden(t *testing.T) {
	var b []byte
	for _, c := range calls {
		b = FromCall(c.call).AppendCSV(b)
	}
	if want := readGolden(t, "records.csv", b); !bytes.Equal(b, want) {
		t.Errorf("records differ from testdata/records.csv:\ngot:\n%s\nwant:\n%s", b, want)
	}
	if n := bytes.Count(b, []byte("\n")); n != len(calls) {
		t.Errorf("%d lines for %d records", n, len(calls))
	}
}

// TestAsteriskColumns checks the first line column by column, as a tool
// reading Asterisk's Master.csv sees it.
func TestAsteriskColumns(t *testing.T) {
	line := FromCall(calls[0].call).AppendCSV(nil)
	want := `"1001","1001","1002","default","""Alice"" <1001>","SIP/1001-c0ffee42","SIP/1002-c0ffee42","Dial","sip:1002@10.0.0.6:5060",` +
		`"2026-12-06 10:30:00","2026-12-06 10:30:03","2026-12-06 10:31:06",65,62,"ANSWERED","DOCUMENTATION","c0ffee42deadbeef","",` +
		`"PCMU",6200,3,1.250,"BYE from callee","lab1"` + "\n"
	if string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	// Duration and billsec are whole seconds, cut down as Asterisk's
	// are: 65.9 s and 62.9 s.
	// Never answered: the answer column is empty and unquoted, billsec 0.
	busy := string(FromCall(calls[1].call).AppendCSV(nil))
	if !strings.Contains(busy, `"2026-12-06 10:30:00",,"2026-12-06 10:30:02",2,0,"BUSY"`) {
		t.Errorf("busy call: %s", busy)
	}
}

func TestDisposition(t *testing.T) {
	want := []string{Answered, Busy, NoAnswer, Congestion, Failed, Answered, Failed}
	for i, c := range calls {
		if got := Disposition(c.call); got != want[i] {
			t.Errorf("%s: disposition %q, want %q", c.name, got, want[i])
		}
	}
	for _, r := range []string{"unavailable", "cancelled"} {
		if got := Disposition(dialog.CallRecord{Result: r}); got != NoAnswer {
			t.Errorf("%s: %q, want NO ANSWER", r, got)
		}
	}
	if got := Disposition(dialog.CallRecord{Result: "transferred", Answer: t0}); got != Answered {
		t.Errorf("transferred: %q", got)
	}
}

// TestParseCSV reads back what AppendCSV writes, and Asterisk's own
// lines.
func TestParseCSV(t *testing.T) {
	for _, c := range calls {
		r := FromCall(c.call)
		got, err := ParseCSV(r.AppendCSV(nil))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// What a line keeps: times to the second, text cleaned.
		r.Start, r.Answer, r.End = sec(r.Start), sec(r.Answer), sec(r.End)
		r.CLID = clean(r.CLID)
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", c.name, got, r)
		}
	}
	asterisk := `"","1001","1002","from-internal","""Alice"" <1001>","PJSIP/1001-00000001","PJSIP/1002-00000002","Dial","PJSIP/1002,30","2026-12-06 10:30:00",,"2026-12-06 10:30:12",12,0,"NO ANSWER","DOCUMENTATION","1765013400.1",""`
	r, err := ParseCSV([]byte(asterisk))
	if err != nil {
		t.Fatal(err)
	}
	if r.Disposition != NoAnswer || !r.Answer.IsZero() || r.Duration != 12 || r.UniqueID != "1765013400.1" || r.CLID != `"Alice" <1001>` {
		t.Errorf("Asterisk's line read as %+v", r)
	}
	if _, err := ParseCSV([]byte(`"a","b"`)); err == nil {
		t.Error("a line of two columns read without error")
	}
}

func sec(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Second).In(time.Local)
}

func FuzzParseCSV(f *testing.F) {
	for _, c := range calls {
		f.Add(FromCall(c.call).AppendCSV(nil))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseCSV(line)
		if err != nil {
			return
		}
		// What parses writes out as one line.
		out := r.AppendCSV(nil)
		if bytes.Count(out, []byte("\n")) != 1 {
			t.Fatalf("%q wrote %q", line, out)
		}
	})
}

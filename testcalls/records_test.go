package testcalls

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The relay ports of the call record tests.
var (
	rangeRecords = rangeOf(32000)
	rangeKick    = rtpRange{32100, 32149}
	rangeStream  = rtpRange{32150, 32175}
	rangeFull    = rtpRange{32176, 32199}
)

// The columns of a call record: Asterisk's cdr_csv, then parley's.
const (
	colAccount = iota
	colSrc
	colDst
	colDContext
	colCLID
	colChannel
	colDstChannel
	colLastApp
	colLastData
	colStart
	colAnswer
	colEnd
	colDuration
	colBillSec
	colDisposition
	colAMAFlags
	colUniqueID
	colUserField
	colCodec
	colPackets
	colLoss
	colJitter
	colReason
	colNode
	recordColumns
)

// cdrTime is cdr_csv's time: local, to the second.
var cdrTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

// readRecords waits up to d for the CSV file at path to hold n records
// and returns them, each checked to have every column.
func readRecords(t *testing.T, path string, n int, d time.Duration) [][]string {
	t.Helper()
	var recs [][]string
	var raw []byte
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		raw, _ = os.ReadFile(path)
		r := csv.NewReader(strings.NewReader(string(raw)))
		r.FieldsPerRecord = -1
		var err error
		recs, err = r.ReadAll()
		if err != nil {
			t.Fatalf("%s is not CSV: %v\n%s", path, err, raw)
		}
		if len(recs) >= n || time.Now().After(deadline) {
			break
		}
	}
	if len(recs) != n {
		t.Fatalf("%s holds %d records, want %d:\n%s", path, len(recs), n, raw)
	}
	for _, rec := range recs {
		if len(rec) != recordColumns {
			t.Fatalf("record of %d columns, want %d: %q", len(rec), recordColumns, rec)
		}
	}
	return recs
}

// checkRecord checks the columns every record shares, and those named
// in want (column to value).
func checkRecord(t *testing.T, what string, rec []string, want map[int]string) {
	t.Helper()
	if !cdrTime.MatchString(rec[colStart]) || !cdrTime.MatchString(rec[colEnd]) {
		t.Errorf("%s: start %q, end %q: want YYYY-MM-DD HH:MM:SS", what, rec[colStart], rec[colEnd])
	}
	if rec[colAnswer] != "" && !cdrTime.MatchString(rec[colAnswer]) {
		t.Errorf("%s: answer %q", what, rec[colAnswer])
	}
	if rec[colAMAFlags] != "DOCUMENTATION" || rec[colUniqueID] == "" || rec[colDContext] != "default" {
		t.Errorf("%s: amaflags %q, uniqueid %q, dcontext %q", what, rec[colAMAFlags], rec[colUniqueID], rec[colDContext])
	}
	for col, v := range want {
		if rec[col] != v {
			t.Errorf("%s: column %d is %q, want %q (record %q)", what, col, rec[col], v, rec)
		}
	}
}

// recordsConfig is a parley whose records go to path.
func recordsConfig(t *testing.T, r rtpRange, path string) parleyConfig {
	return parleyConfig{StorePath: t.TempDir(), Extra: r.yaml(nil, "") + fmt.Sprintf("cdr:\n  path: %s\nsessions:\n  drain_grace: 1s\n", yamlQuote(path))}
}

// TestRecordsCSV: an answered call, a busy one, one the caller gave up on
// while it rang, and a call to the echo service each leave one line of
// cdr_csv in cdr.path, with the dispositions ANSWERED, BUSY, NO ANSWER and
// ANSWERED, lastapp Dial or Echo, and an empty answer time for the calls
// never answered. parley last lists them newest first, all or one
// user's. After the file is renamed, SIGHUP makes parley start a new one.
func TestRecordsCSV(t *testing.T) {
	t.Parallel()
	needParley(t)
	path := filepath.Join(t.TempDir(), "records", "cdr.csv")
	pl := startParley(t, recordsConfig(t, rangeRecords, path))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()

	// Answered, talked over a second, hung up by the caller.
	mc := mustMediaCall(t, alice, bob)
	time.Sleep(1100 * time.Millisecond)
	mc.Out.hangup(t)
	readRecords(t, path, 1, 3*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	bob.setMode(answerBusy)
	if c := alice.call(ctx, "1002"); c.status() != 486 {
		t.Fatalf("busy call: %v", c.codes())
	}
	readRecords(t, path, 2, 3*time.Second)

	bob.setMode(answerRing)
	rctx, rcancel := context.WithCancel(ctx)
	go func() {
		if _, err := bob.waitEvent(evInvite, callTimeout); err == nil {
			time.Sleep(200 * time.Millisecond)
		}
		rcancel()
	}()
	if c := alice.call(rctx, "1002"); c.status() != 487 {
		t.Fatalf("cancelled call: %v", c.codes())
	}
	readRecords(t, path, 3, 3*time.Second)

	echo := alice.call(ctx, "600")
	echo.mustAnswered(t)
	echo.hangup(t)
	recs := readRecords(t, path, 4, 3*time.Second)

	checkRecord(t, "answered call", recs[0], map[int]string{
		colAccount: "1001", colSrc: "1001", colDst: "1002", colLastApp: "Dial", colDisposition: "ANSWERED",
		colReason: "BYE from caller", colCodec: "PCMU",
	})
	if recs[0][colAnswer] == "" || recs[0][colBillSec] == "0" || recs[0][colDstChannel] == "" {
		t.Errorf("answered call: answer %q, billsec %q, dstchannel %q", recs[0][colAnswer], recs[0][colBillSec], recs[0][colDstChannel])
	}
	checkRecord(t, "busy call", recs[1], map[int]string{
		colSrc: "1001", colDst: "1002", colAnswer: "", colBillSec: "0", colDisposition: "BUSY", colReason: "486 Busy Here",
	})
	checkRecord(t, "cancelled call", recs[2], map[int]string{
		colSrc: "1001", colDst: "1002", colAnswer: "", colBillSec: "0", colDisposition: "NO ANSWER", colReason: "cancelled by caller",
	})
	checkRecord(t, "echo call", recs[3], map[int]string{
		colSrc: "1001", colDst: "600", colLastApp: "Echo", colDisposition: "ANSWERED", colDstChannel: "", colCodec: "PCMU",
	})
	// cdr_csv's quoting: text quoted, numbers and an unset time bare.
	raw, _ := os.ReadFile(path)
	if os.Getenv("PARLEY_TEST_VERBOSE") != "" {
		t.Logf("%s:\n%s", path, raw)
	}
	busyLine := strings.Split(string(raw), "\n")[1]
	if !regexp.MustCompile(`^"1001","1001","1002","default",.*"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",,"[^"]+",\d+,0,"BUSY","DOCUMENTATION","[^"]+","","[^"]*",\d+,\d+,[0-9.]+,"486 Busy Here","[^"]*"$`).MatchString(busyLine) {
		t.Errorf("busy call's line is not quoted as cdr_csv quotes:\n%s", busyLine)
	}

	// parley last: newest first, as last lists logins.
	code, out, errOut := runCLI(t, "last", "-admin", pl.AdminAddr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.Contains(lines[1], "600") || !strings.Contains(lines[1], "Echo") ||
		!strings.Contains(lines[4], "ANSWERED") || !strings.Contains(lines[3], "BUSY") {
		t.Errorf("parley last: exit %d, want a header and the 4 calls newest first:\n%s%s", code, out, errOut)
	}
	if os.Getenv("PARLEY_TEST_VERBOSE") != "" {
		t.Logf("parley last:\n%s", out)
	}
	code, out, errOut = runCLI(t, "last", "-n", "2", "1002", "-admin", pl.AdminAddr)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "NO ANSWER") || !strings.Contains(lines[2], "BUSY") {
		t.Errorf("parley last -n 2 1002: exit %d, want the 2 newest calls of 1002:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "last", "-json", "-n", "1", "-admin", pl.AdminAddr)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0]["lastapp"] != "Echo" {
		t.Errorf("parley last -json -n 1: exit %d, %v:\n%s%s", code, err, out, errOut)
	}

	// Rotation: rename, SIGHUP, and the next call starts a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	pl.signal(t, syscall.SIGHUP)
	bob.setMode(answerBusy)
	// The reopen runs in the writer's turn; a record written before it
	// would go to the renamed file, so wait for the log line first.
	waitLog(t, pl, "call record file reopened", 3*time.Second)
	if c := alice.call(ctx, "1002"); c.status() != 486 {
		t.Fatalf("busy call after SIGHUP: %v", c.codes())
	}
	recs = readRecords(t, path, 1, 3*time.Second)
	checkRecord(t, "call after the rotation", recs[0], map[int]string{colDisposition: "BUSY"})
	if old := readRecords(t, path+".1", 4, time.Second); old[3][colLastApp] != "Echo" {
		t.Errorf("renamed file's last record: %q", old[3])
	}
	select {
	case <-pl.exited:
		t.Fatalf("parley exited after SIGHUP: %v", pl.err)
	default:
	}
}

// waitLog waits up to d for parley's log to contain s.
func waitLog(t *testing.T, pl *parley, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(pl.LogPath); strings.Contains(string(b), s) {
			return
		}
	}
	t.Fatalf("parley's log has no %q after %v", s, d)
}

// TestWhoKick: parley who shows both registered phones and the call
// between them; parley kick 1002 (the admin token found through -config)
// removes 1002's registration and ends its call: both phones get BYE, and
// the call's record says the admin hung it up.
func TestWhoKick(t *testing.T) {
	t.Parallel()
	needParley(t)
	path := filepath.Join(t.TempDir(), "cdr.csv")
	pl := startParley(t, recordsConfig(t, rangeKick, path))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	mustMediaCall(t, alice, bob)

	code, out, errOut := runCLI(t, "who", "-admin", pl.AdminAddr)
	if code != 0 || !strings.Contains(out, alice.Addr) || !strings.Contains(out, bob.Addr) ||
		!regexp.MustCompile(`(?m)^1001 .*udp .*with active 1002`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1002 .*from active 1001`).MatchString(out) {
		t.Errorf("parley who: exit %d, want both phones, their contacts and the call:\n%s%s", code, out, errOut)
	}

	if os.Getenv("PARLEY_TEST_VERBOSE") != "" {
		t.Logf("parley who:\n%s", out)
	}
	code, out, errOut = runCLI(t, "kick", "1002", "-config", pl.ConfigPath)
	if code != 0 || strings.TrimSpace(out) != "1002: 1 registration removed, 1 call ended" {
		t.Errorf("parley kick 1002: exit %d:\n%s%s", code, out, errOut)
	}
	waitByes(t, 3*time.Second, alice, bob)
	for _, r := range pl.apiRegistrations(t) {
		if r.User == "1002" {
			t.Errorf("1002 still registered after the kick: %+v", r)
		}
	}
	recs := readRecords(t, path, 1, 3*time.Second)
	checkRecord(t, "kicked call", recs[0], map[int]string{colDisposition: "ANSWERED", colReason: "hung up by admin"})

	code, out, errOut = runCLI(t, "who", "-admin", pl.AdminAddr)
	if code != 0 || strings.Contains(out, "1002") || strings.Contains(out, "active") {
		t.Errorf("parley who after the kick: exit %d, still shows 1002 or a call:\n%s%s", code, out, errOut)
	}
	// Without the token the kick is refused.
	if code, body := pl.httpDo(t, "POST", "/api/users/1001/kick"); code != 401 {
		t.Errorf("POST /api/users/1001/kick without the token: %d %s", code, body)
	}
}

// TestRecordsRedisStream: with store.redis, a call's record goes to the
// stream parley:cdr as well as to the file, and /api/cdr reads the
// stream.
func TestRecordsRedisStream(t *testing.T) {
	t.Parallel()
	needParley(t)
	rs := startRedis(t)
	path := filepath.Join(t.TempDir(), "cdr.csv")
	cfg := recordsConfig(t, rangeStream, path)
	cfg.Redis = rs.URL
	cfg.Extra += "node:\n  id: stream-node\n"
	pl := startParley(t, cfg)
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustRegister()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	echo := alice.call(ctx, "600")
	echo.mustAnswered(t)
	echo.hangup(t)
	file := readRecords(t, path, 1, 3*time.Second)

	opt, err := redis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var msgs []redis.XMessage
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(msgs) == 0; time.Sleep(50 * time.Millisecond) {
		msgs, _ = rdb.XRange(ctx, "parley:cdr", "-", "+").Result()
	}
	if len(msgs) != 1 {
		t.Fatalf("stream parley:cdr holds %d entries, want 1", len(msgs))
	}
	line, _ := msgs[0].Values["csv"].(string)
	if want := `"` + strings.Join(file[0][:colStart], `","`) + `"`; !strings.HasPrefix(line, want) {
		t.Errorf("stream entry %q\ndoes not start as the file's record: %s", line, want)
	}
	code, body := pl.httpDo(t, "GET", "/api/cdr?user=1001")
	var list []map[string]any
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list) != 1 ||
		list[0]["node"] != "stream-node" || list[0]["lastapp"] != "Echo" || list[0]["uniqueid"] != file[0][colUniqueID] {
		t.Errorf("GET /api/cdr: %d %v %s", code, err, body)
	}
}

// TestRecordsFullDisk: with cdr.path on /dev/full, a disk that is always
// full, calls go on as ever; each lost record is logged and counted in
// parley_cdr_records_total{sink="file",outcome="failed"}.
func TestRecordsFullDisk(t *testing.T) {
	t.Parallel()
	needParley(t)
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	pl := startParley(t, recordsConfig(t, rangeFull, "/dev/full"))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustRegister()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		echo := alice.call(ctx, "600")
		echo.mustAnswered(t)
		echo.hangup(t)
		cancel()
	}
	pl.waitMetric(t, 3*time.Second, equals(3), "parley_cdr_records_total", "sink", "file", "outcome", "failed")
	pl.waitMetric(t, time.Second, equals(3), "parley_calls_total", "result", "answered")
	waitLog(t, pl, "call record not written", time.Second)
}

package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog/store"
)

// parley runs the operator command args[0] with args[1:] and returns its
// exit code and output.
func parley(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args[0], args[1:], &out, &errb)
	return code, out.String(), errb.String()
}

// testToken is the admin token of the servers newTestAdmin builds.
const testToken = "0123456789abcdef0123456789abcdef"

// newTestAdmin returns the real admin handler over calls and regs (and
// what opts add, such as bans), taking changes with testToken.
func newTestAdmin(t *testing.T, calls admin.CallTable, regs admin.Registrations, opts ...admin.Option) http.Handler {
	t.Helper()
	srv, err := admin.New("", append([]admin.Option{admin.WithMetrics(prometheus.NewRegistry()), admin.WithCalls(calls),
		admin.WithRegistrations(regs), admin.WithToken(testToken)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

// apiServer serves the real admin mux over fakes.
func apiServer(t *testing.T, calls *admintest.Calls, regs *admintest.Registrations, opts ...admin.Option) string {
	t.Helper()
	h := newTestAdmin(t, calls, regs, opts...)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "localhost"
	h.ServeHTTP(rec, req)
	return rec
}

// table splits tabwriter output into rows of fields.
func table(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, splitColumns(line))
	}
	return rows
}

// splitColumns splits on runs of two or more spaces, so a date and time
// with one space between stay one column.
func splitColumns(line string) []string {
	var cols []string
	for _, f := range strings.Split(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			cols = append(cols, f)
		}
	}
	return cols
}

func TestCLICalls(t *testing.T) {
	addr := apiServer(t, admintest.SampleCalls(), &admintest.Registrations{})
	code, out, errs := parley(t, "calls", "-admin", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := [][]string{
		{"ID", "FROM", "TO", "STATE", "STARTED", "ANSWERED", "CODEC", "LOSS", "JITTER"},
		{"aaaa", "1001", "1002", "Active", "2026-11-22 10:04:00", "2026-11-22 10:04:03", "PCMU", "0.5%", "2.5ms"},
		{"bbbb", "1002", "600", "Establishing", "2026-11-22 10:05:00", "-", "-", "-", "-"},
	}
	if got := table(out); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got\n%s\nwant rows %q", out, want)
	}
	// Aligned: every column starts at the same offset on every line.
	lines := strings.Split(out, "\n")
	if strings.Index(lines[0], "STATE") != strings.Index(lines[1], "Active") {
		t.Errorf("columns not aligned:\n%s", out)
	}
}

func TestCLIJSONPassthrough(t *testing.T) {
	calls, regs, bans := admintest.SampleCalls(), admintest.SampleRegistrations(time.Now()), admintest.SampleBans()
	addr := apiServer(t, calls, regs, admin.WithBans(bans))
	h := newTestAdmin(t, calls, regs, admin.WithBans(bans))
	for _, tt := range []struct{ cmd, path string }{{"calls", "/api/calls"}, {"registrations", "/api/registrations"}, {"bans", "/api/bans"}} {
		code, out, errs := parley(t, tt.cmd, "-json", "-admin", addr)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.cmd, code, errs)
		}
		if want := do(t, h, "GET", tt.path).Body.String(); out != want {
			t.Errorf("%s -json printed\n%s\nwant the API's body\n%s", tt.cmd, out, want)
		}
		if !json.Valid([]byte(out)) {
			t.Errorf("%s -json: not JSON", tt.cmd)
		}
	}
}

func TestCLIRegistrations(t *testing.T) {
	addr := apiServer(t, &admintest.Calls{}, admintest.SampleRegistrations(time.Now()))
	code, out, errs := parley(t, "registrations", "-admin", "http://"+addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := [][]string{
		{"USER", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES-IN", "REACHABLE", "RTT"},
		{"1001", "sip:1001@192.168.1.30:5060", "192.168.1.30:5060", "tcp", "1h0m0s", "yes", "12.3ms"},
		{"1002", "sip:1002@192.168.1.31:5062", "203.0.113.7:40112", "udp", "1m30s", "no", "-"},
	}
	if got := table(out); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got\n%s\nwant rows %q", out, want)
	}
}

func TestCLIHangup(t *testing.T) {
	calls := admintest.SampleCalls()
	addr := apiServer(t, calls, &admintest.Registrations{})
	// Flags may come after the ID.
	if code, out, errs := parley(t, "hangup", "aaaa", "-admin", addr, "-token", testToken); code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and silence", code, out, errs)
	}
	if !slices.Equal(calls.HungUp(), []string{"aaaa"}) {
		t.Fatalf("hung up %v", calls.HungUp())
	}
	code, _, errs := parley(t, "hangup", "-admin", addr, "-token", testToken, "aaaa")
	if code != 1 || !strings.Contains(errs, `no call with ID "aaaa"`) {
		t.Fatalf("unknown ID: exit %d, stderr %q", code, errs)
	}
}

func TestCLIBans(t *testing.T) {
	addr := apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(admintest.SampleBans()))
	code, out, errs := parley(t, "bans", "-admin", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := [][]string{
		{"ADDRESS", "UNTIL", "REASON"},
		{"203.0.113.9", "2026-11-22 10:09:00", "challenges unanswered"},
		{"2001:db8::7", "2026-11-22 10:19:00", "authentication failures"},
	}
	if got := table(out); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got\n%s\nwant rows %q", out, want)
	}
	lines := strings.Split(out, "\n")
	if strings.Index(lines[0], "REASON") != strings.Index(lines[1], "challenges") ||
		strings.Index(lines[0], "UNTIL") != strings.Index(lines[2], "2026") {
		t.Errorf("columns not aligned:\n%s", out)
	}
}

// TestCLIEmptyLists: with nothing to list, bans prints what calls and
// registrations print: the header alone, exit 0.
func TestCLIEmptyLists(t *testing.T) {
	addr := apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(&admintest.Bans{}))
	for cmd, header := range map[string]string{
		"calls":         "ID  FROM  TO  STATE  STARTED  ANSWERED  CODEC  LOSS  JITTER\n",
		"registrations": "USER  CONTACT  SOURCE  TRANSPORT  EXPIRES-IN  REACHABLE  RTT\n",
		"bans":          "ADDRESS  UNTIL  REASON\n",
	} {
		if code, out, errs := parley(t, cmd, "-admin", addr); code != 0 || out != header {
			t.Errorf("%s with none: exit %d, stdout %q, stderr %q; want 0 and %q", cmd, code, out, errs, header)
		}
	}
	if code, out, _ := parley(t, "bans", "-json", "-admin", addr); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("bans -json with none: exit %d, stdout %q; want []", code, out)
	}
}

func TestCLIUnban(t *testing.T) {
	bans := admintest.SampleBans()
	addr := apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(bans))
	// Flags may come after the address.
	if code, out, errs := parley(t, "unban", "203.0.113.9", "-admin", addr, "-token", testToken); code != 0 || out != "" || errs != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and silence", code, out, errs)
	}
	if code, out, errs := parley(t, "unban", "-admin", addr, "-token", testToken, "2001:db8::7"); code != 0 || out != "" {
		t.Fatalf("IPv6: exit %d, stdout %q, stderr %q; want 0 and silence", code, out, errs)
	}
	if !slices.Equal(bans.Unbanned(), []string{"203.0.113.9", "2001:db8::7"}) {
		t.Fatalf("unbanned %v", bans.Unbanned())
	}
	for _, tt := range []struct{ addr, stderr string }{
		{"203.0.113.9", "parley unban: no ban on 203.0.113.9"},
		{"203.0.113.0/24", `"203.0.113.0/24" is not an IP address`},
		{"host.example", `"host.example" is not an IP address`},
	} {
		code, out, errs := parley(t, "unban", tt.addr, "-admin", addr, "-token", testToken)
		if code != 1 || out != "" || !strings.Contains(errs, tt.stderr) {
			t.Errorf("unban %s: exit %d, stdout %q, stderr %q; want 1 and %q", tt.addr, code, out, errs, tt.stderr)
		}
	}
	t.Setenv(tokenEnv, "")
	t.Chdir(t.TempDir()) // no ./data/admin-token
	bans = admintest.SampleBans()
	addr = apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(bans))
	code, _, errs := parley(t, "unban", "203.0.113.9", "-admin", addr)
	if code != 1 || !strings.Contains(errs, "needs the admin token") || len(bans.Unbanned()) != 0 {
		t.Fatalf("without a token: exit %d, stderr %q, unbanned %v; want 1, a refusal and nothing lifted", code, errs, bans.Unbanned())
	}
}

func TestCLIUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"hangup"}, "exactly one call ID"},
		{[]string{"hangup", "a", "b"}, "exactly one call ID"},
		{[]string{"calls", "extra"}, `unexpected argument "extra"`},
		{[]string{"calls", "-bogus"}, "flag provided but not defined"},
		{[]string{"hangup", "-json", "x"}, "flag provided but not defined"},
		{[]string{"unban"}, "exactly one address"},
		{[]string{"unban", "192.0.2.1", "192.0.2.2"}, "exactly one address"},
		{[]string{"unban", "-json", "192.0.2.1"}, "flag provided but not defined"},
		{[]string{"bans", "192.0.2.1"}, `unexpected argument "192.0.2.1"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := parley(t, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, tt.stderr)
			}
		})
	}
}

func TestCLIUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, cmd := range [][]string{{"calls"}, {"registrations"}, {"hangup", "aaaa"}, {"bans"}, {"unban", "192.0.2.1"}} {
		code, out, errs := parley(t, append(cmd, "-admin", addr)...)
		if code != 1 || out != "" || !strings.Contains(errs, "cannot reach the admin API at http://"+addr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd[0], code, out, errs)
		}
	}
}

func TestCLIAddressFromConfig(t *testing.T) {
	addr := apiServer(t, admintest.SampleCalls(), &admintest.Registrations{})
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	off := filepath.Join(dir, "off.yaml")
	_, port, _ := net.SplitHostPort(addr)
	// A listener on every interface is reached on loopback.
	if err := os.WriteFile(good, []byte("admin:\n  listen: 0.0.0.0:"+port+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(off, []byte("admin:\n  listen: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := parley(t, "calls", "-config", good); code != 0 || !strings.Contains(out, "aaaa") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := parley(t, "calls", "-config", off); code != 1 || !strings.Contains(errs, "admin.listen is empty") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	// -admin wins over -config.
	if code, _, errs := parley(t, "calls", "-config", off, "-admin", addr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestAPIBase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:9060", "http://127.0.0.1:9060"},
		{"0.0.0.0:9060", "http://127.0.0.1:9060"},
		{":9060", "http://127.0.0.1:9060"},
		{"[::]:9060", "http://[::1]:9060"},
		{"admin.example:80", "http://admin.example:80"},
		{"http://10.0.0.1:9060/", "http://10.0.0.1:9060"},
	}
	for _, tt := range tests {
		if got, err := apiBase(tt.in); err != nil || got != tt.want {
			t.Errorf("apiBase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := apiBase("9060"); err == nil {
		t.Error("apiBase(9060): want an error")
	}
}

// fakeNodes is a cluster's node list for the admin API.
type fakeNodes []store.NodeInfo

func (f fakeNodes) Nodes() []store.NodeInfo { return slices.Clone(f) }

// TestCLINodes: parley nodes lists the cluster's nodes by ID, alive or
// dead, with their SIP address, calls and heartbeat age; -json passes the
// API's JSON through.
func TestCLINodes(t *testing.T) {
	now := time.Now()
	nodes := fakeNodes{
		{ID: "node-b", SIP: "10.0.0.3:5060", Started: admintest.Start, Seen: now.Add(-2 * time.Second), Calls: 3, Alive: true},
		{ID: "node-a", SIP: "10.0.0.2:5060", Started: admintest.Start, Seen: now.Add(-40 * time.Second), Calls: 7},
	}
	addr := apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithNodes(nodes))
	code, out, errs := parley(t, "nodes", "-admin", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rows := table(out)
	if len(rows) != 3 || !slices.Equal(rows[0], []string{"NODE", "STATE", "SIP", "CALLS", "HEARTBEAT", "STARTED"}) {
		t.Fatalf("got\n%s", out)
	}
	for i, want := range [][]string{{"node-a", "dead", "10.0.0.2:5060", "7"}, {"node-b", "alive", "10.0.0.3:5060", "3"}} {
		if !slices.Equal(rows[i+1][:4], want) {
			t.Errorf("row %d: %q, want it to start %q", i+1, rows[i+1], want)
		}
	}
	// The ages are rounded to 100 ms from the CLI's own clock, which may
	// run a little behind the test's on a busy machine.
	if !regexp.MustCompile(`\b40(\.\d)?s ago`).MatchString(out) || !regexp.MustCompile(`\b2(\.\d)?s ago`).MatchString(out) {
		t.Errorf("heartbeat ages missing:\n%s", out)
	}
	code, out, _ = parley(t, "nodes", "-json", "-admin", addr)
	var got []store.NodeInfo
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 2 || got[0].ID != "node-a" {
		t.Errorf("nodes -json: exit %d, %v, %q", code, err, out)
	}
	// Alone (no cluster), the list is empty.
	addr = apiServer(t, &admintest.Calls{}, &admintest.Registrations{})
	if code, out, _ := parley(t, "nodes", "-admin", addr); code != 0 || out != "NODE  STATE  SIP  CALLS  HEARTBEAT  STARTED\n" {
		t.Errorf("nodes without a cluster: exit %d, %q", code, out)
	}
}

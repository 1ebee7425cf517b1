package testcalls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Relay port blocks of the admin and qualify tests (see rtpRange).
var (
	rangeAdminAPI = rangeOf(24000)
	rangeAdminCLI = rangeOf(24100)
	rangeQualify  = rangeOf(24200)
	rangeQualify2 = rangeOf(24300)
)

// apiCall is one element of GET /api/calls.
type apiCall struct {
	ID     string    `json:"id"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	State  string    `json:"state"`
	Start  time.Time `json:"start"`
	Answer time.Time `json:"answer"`
	Media  *struct {
		Codec    string `json:"codec"`
		Packets  uint64 `json:"packets"`
		Lost     uint64 `json:"lost"`
		JitterNs int64  `json:"jitter_ns"`
	} `json:"media"`
}

// apiRegistration is one element of GET /api/registrations.
type apiRegistration struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`
	Source    string    `json:"source"`
	Transport string    `json:"transport"`
	Expires   time.Time `json:"expires"`
	Reachable string    `json:"reachable"`
	RTTNs     int64     `json:"rtt_ns"`
}

// httpDo sends method to http://AdminAddr+path and returns status and body.
func (p *parley) httpDo(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	return p.httpDoToken(t, method, path, "")
}

// httpDoToken is httpDo with the admin token (none when empty), as the
// admin API's changes need.
func (p *parley) httpDoToken(t *testing.T, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.AdminAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res.StatusCode, b
}

// apiJSON GETs path, wants 200 with a JSON body and decodes it into v.
func (p *parley) apiJSON(t *testing.T, path string, v any) []byte {
	t.Helper()
	code, body := p.httpDo(t, http.MethodGet, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200 (the admin API, admin.listen):\n%s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: not the JSON expected (%v):\n%s", path, err, body)
	}
	return body
}

// apiCalls returns GET /api/calls.
func (p *parley) apiCalls(t *testing.T) []apiCall {
	t.Helper()
	var calls []apiCall
	p.apiJSON(t, "/api/calls", &calls)
	return calls
}

// apiRegistrations returns GET /api/registrations.
func (p *parley) apiRegistrations(t *testing.T) []apiRegistration {
	t.Helper()
	var regs []apiRegistration
	p.apiJSON(t, "/api/registrations", &regs)
	return regs
}

// registrationOf returns the binding of user whose source is addr.
func registrationOf(regs []apiRegistration, user, addr string) (apiRegistration, bool) {
	for _, r := range regs {
		if r.User == user && (addr == "" || r.Source == addr) {
			return r, true
		}
	}
	return apiRegistration{}, false
}

// checkKeys asserts every element of a JSON array has keys.
func checkKeys(t *testing.T, what string, body []byte, keys ...string) {
	t.Helper()
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	for i, e := range raw {
		for _, k := range keys {
			if _, ok := e[k]; !ok {
				t.Errorf("%s[%d] has no %q: %s", what, i, k, body)
			}
		}
	}
}

// storedToken returns the admin token parley keeps in its store
// directory dir (store.path), as the operator commands read it.
func storedToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatalf("the admin token parley keeps in store.path: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestAdminAPI: GET /api/registrations lists the phones' bindings, GET
// /api/calls a call in progress with its media record, DELETE
// /api/calls/{id} (with the admin token) hangs it up with BYE on both
// legs, and DELETE /api/registrations/{user} removes a user's bindings so
// calls to it get 480; unknown IDs and users are 404.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	r := rangeAdminAPI
	store := t.TempDir()
	pl := startParley(t, parleyConfig{StorePath: store, Extra: r.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"})
	token := storedToken(t, store)
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()

	var regs []apiRegistration
	body := pl.apiJSON(t, "/api/registrations", &regs)
	checkKeys(t, "GET /api/registrations", body, "user", "contact", "source", "transport", "expires", "reachable")
	for _, p := range []*phone{alice, bob} {
		reg, ok := registrationOf(regs, p.User, p.Addr)
		if !ok {
			t.Errorf("GET /api/registrations has no binding of %s from %s:\n%s", p.User, p.Addr, body)
			continue
		}
		if !strings.Contains(reg.Contact, p.Addr) || reg.Transport != "udp" {
			t.Errorf("binding of %s: contact %q transport %q; want the phone's contact %s over udp", p.User, reg.Contact, reg.Transport, p.Addr)
		}
		if until := time.Until(reg.Expires); until < 50*time.Minute || until > 61*time.Minute {
			t.Errorf("binding of %s expires in %v; it registered for 3600 s", p.User, until.Round(time.Second))
		}
		if reg.Reachable != "unknown" {
			t.Errorf("binding of %s: reachable %q with registrar.qualify 0s, want \"unknown\"", p.User, reg.Reachable)
		}
	}

	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	mc := mustMediaCall(t, alice, bob)
	flows(t, "admin call", aSock, bSock, mc.CallerSees, mc.CalleeSees, 50)

	var calls []apiCall
	var callsBody []byte
	deadline := time.Now().Add(3 * time.Second)
	for {
		calls = nil
		callsBody = pl.apiJSON(t, "/api/calls", &calls)
		if len(calls) == 1 && calls[0].Media != nil && calls[0].Media.Packets >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(calls) != 1 {
		t.Fatalf("GET /api/calls during one call: %s", callsBody)
	}
	checkKeys(t, "GET /api/calls", callsBody, "id", "from", "to", "state", "start", "answer", "media")
	c := calls[0]
	if c.ID == "" || c.From != "1001" || c.To != "1002" || c.State != "active" {
		t.Errorf("GET /api/calls: id %q from %q to %q state %q; want an id, 1001, 1002, active", c.ID, c.From, c.To, c.State)
	}
	if c.Start.IsZero() || c.Answer.Before(c.Start) || time.Since(c.Start) > time.Minute {
		t.Errorf("GET /api/calls: start %v answer %v; want the call's start and a later answer", c.Start, c.Answer)
	}
	if c.Media == nil {
		t.Errorf("GET /api/calls: no media record:\n%s", callsBody)
	} else {
		if !strings.EqualFold(c.Media.Codec, "PCMU") {
			t.Errorf("GET /api/calls: media.codec %q, want PCMU", c.Media.Codec)
		}
		if c.Media.Packets < 100 || c.Media.Lost != 0 || c.Media.JitterNs < 0 {
			t.Errorf("GET /api/calls: media packets %d lost %d jitter_ns %d; want ≥ 100 relayed, none lost", c.Media.Packets, c.Media.Lost, c.Media.JitterNs)
		}
		var raw []map[string]map[string]json.RawMessage
		if json.Unmarshal(callsBody, &raw) == nil && len(raw) == 1 {
			for _, k := range []string{"codec", "packets", "lost", "jitter_ns"} {
				if _, ok := raw[0]["media"][k]; !ok {
					t.Errorf("GET /api/calls media has no %q:\n%s", k, callsBody)
				}
			}
		}
	}

	if code, b := pl.httpDoToken(t, http.MethodDelete, "/api/calls/no-such-call", token); code != http.StatusNotFound {
		t.Errorf("DELETE /api/calls/no-such-call: %d %s, want 404", code, b)
	}
	if code, b := pl.httpDoToken(t, http.MethodDelete, "/api/calls/"+c.ID, token); code != http.StatusNoContent && code != http.StatusOK {
		t.Errorf("DELETE /api/calls/%s: %d %s, want 204", c.ID, code, b)
	}
	waitByes(t, 3*time.Second, alice, bob)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	if calls := pl.apiCalls(t); len(calls) != 0 {
		t.Errorf("GET /api/calls after the hangup: %+v, want []", calls)
	}

	code, b := pl.httpDoToken(t, http.MethodDelete, "/api/registrations/1002", token)
	if code != http.StatusOK && code != http.StatusNoContent {
		t.Errorf("DELETE /api/registrations/1002: %d %s, want 200", code, b)
	}
	if _, ok := registrationOf(pl.apiRegistrations(t), "1002", ""); ok {
		t.Errorf("GET /api/registrations still lists 1002 after DELETE")
	}
	if code, b := pl.httpDoToken(t, http.MethodDelete, "/api/registrations/1002", token); code != http.StatusNotFound {
		t.Errorf("second DELETE /api/registrations/1002: %d %s, want 404", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if call := alice.call(ctx, "1002"); call.status() != 480 {
		t.Errorf("call to 1002 after its registrations were deleted: %v, want 480", call.codes())
	}
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_registrations")
}

// runCLI runs the parley binary with args and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("parley %s: %v", strings.Join(args, " "), err)
	}
	return code, stdout.String(), stderr.String()
}

// TestAdminCLI: parley calls and parley registrations, pointed at a
// running parley with -admin, show its calls and bindings; parley hangup
// ID, pointed at it with -config, finds the admin token in its store.path
// and hangs a call up; an unknown call and an unreachable admin API exit 1.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	needParley(t)
	r := rangeAdminCLI
	pl := startParley(t, parleyConfig{StorePath: t.TempDir(), Extra: r.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	mc := mustMediaCall(t, alice, bob)
	_ = mc
	calls := pl.apiCalls(t)
	if len(calls) != 1 {
		t.Fatalf("GET /api/calls: %+v, want one call", calls)
	}
	id := calls[0].ID

	code, out, errOut := runCLI(t, "calls", "-admin", pl.AdminAddr)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "1001") || !strings.Contains(out, "1002") {
		t.Errorf("parley calls -admin %s: exit %d, want 0 and a line with %s, 1001 and 1002:\n%s%s", pl.AdminAddr, code, id, out, errOut)
	}
	code, out, errOut = runCLI(t, "registrations", "-admin", pl.AdminAddr)
	if code != 0 || !strings.Contains(out, "1001") || !strings.Contains(out, "1002") || !strings.Contains(out, alice.Addr) {
		t.Errorf("parley registrations -admin %s: exit %d, want 0 and both users with their contacts (%s):\n%s%s", pl.AdminAddr, code, alice.Addr, out, errOut)
	}
	code, out, errOut = runCLI(t, "hangup", "no-such-call", "-config", pl.ConfigPath)
	if code != 1 || !strings.Contains(errOut, "no call") {
		t.Errorf("parley hangup no-such-call: exit %d, want 1 and no such call:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "hangup", "-config", pl.ConfigPath, id)
	if code != 0 {
		t.Errorf("parley hangup %s: exit %d, want 0:\n%s%s", id, code, out, errOut)
	}
	waitByes(t, 3*time.Second, alice, bob)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	code, out, errOut = runCLI(t, "calls", "-admin", pl.AdminAddr)
	if code != 0 || strings.Contains(out, id) {
		t.Errorf("parley calls after the hangup: exit %d, still shows %s:\n%s%s", code, id, out, errOut)
	}
	code, out, errOut = runCLI(t, "calls", "-admin", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)))
	if code != 1 || errOut == "" {
		t.Errorf("parley calls against no admin API: exit %d stderr %q, want 1 and an error:\n%s", code, errOut, out)
	}
}

// waitReachable polls GET /api/registrations until the binding of user
// from addr is reachable want, and returns how long that took.
func waitReachable(t *testing.T, pl *parley, user, addr, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last apiRegistration
	for time.Since(start) < d {
		reg, ok := registrationOf(pl.apiRegistrations(t), user, addr)
		if ok && reg.Reachable == want {
			return time.Since(start)
		}
		last = reg
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("binding of %s from %s: reachable %q (rtt_ns %d) after %v; want %q", user, addr, last.Reachable, last.RTTNs, d, want)
	return d
}

// qualifyConfig pings registered contacts every 2 s.
func qualifyConfig(r rtpRange) parleyConfig {
	return parleyConfig{
		Registrar: "{min_expires: 60, max_expires: 3600, qualify: 2s}",
		Extra:     r.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n",
	}
}

// TestQualifyVanishedCallee: with registrar.qualify 2s parley pings the
// registered phones with OPTIONS; they answer and show reachable "yes"
// with a round-trip time. Then the callee's socket closes (the phone is
// gone without unregistering): within a few seconds its binding is
// reachable "no", parley_contacts{state="unreachable"} counts it, and a
// call to it gets 480 at once.
func TestQualifyVanishedCallee(t *testing.T) {
	t.Parallel()
	pl := startParley(t, qualifyConfig(rangeQualify))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()

	took := waitReachable(t, pl, "1002", bob.Addr, "yes", 8*time.Second)
	t.Logf("answered pings: reachable after %v", took.Round(100*time.Millisecond))
	if reg, ok := registrationOf(pl.apiRegistrations(t), "1002", bob.Addr); ok && reg.RTTNs <= 0 {
		t.Errorf("reachable binding has rtt_ns %d, want the ping's round-trip time", reg.RTTNs)
	}
	pl.waitMetric(t, 5*time.Second, equals(2), "parley_contacts", "state", "reachable")

	bob.closer() // the phone vanishes
	gone := time.Now()
	took = waitReachable(t, pl, "1002", bob.Addr, "no", 15*time.Second)
	t.Logf("vanished phone: reachable \"no\" %v after its socket closed", took.Round(100*time.Millisecond))
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_contacts", "state", "unreachable")
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_contacts", "state", "reachable")

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	start := time.Now()
	c := alice.call(ctx, "1002")
	if c.status() != 480 {
		t.Errorf("call to a user whose only contact is unreachable: %v, want 480 (%v after it vanished)", c.codes(), time.Since(gone).Round(time.Second))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("480 took %v; an unreachable contact must be skipped, not tried", d)
	}
}

// TestQualifyContactRestored: a phone that stops answering OPTIONS (its
// socket stays open) becomes reachable "no" and is skipped (480); once it
// answers again it is reachable "yes" and takes calls.
func TestQualifyContactRestored(t *testing.T) {
	t.Parallel()
	pl := startParley(t, qualifyConfig(rangeQualify2))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	var mute atomic.Bool
	// Before the phone's first request (see answerInDialog).
	bob.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		if mute.Load() {
			return // no answer at all, as from a phone that hung
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	alice.mustRegister()
	bob.mustRegister()
	waitReachable(t, pl, "1002", bob.Addr, "yes", 8*time.Second)

	mute.Store(true)
	took := waitReachable(t, pl, "1002", bob.Addr, "no", 15*time.Second)
	t.Logf("silent phone: reachable \"no\" after %v", took.Round(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	if c := alice.call(ctx, "1002"); c.status() != 480 {
		t.Errorf("call to an unreachable contact: %v, want 480", c.codes())
	}
	bob.noEvent(evInvite, 100*time.Millisecond)

	mute.Store(false)
	took = waitReachable(t, pl, "1002", bob.Addr, "yes", 10*time.Second)
	t.Logf("phone answers again: reachable \"yes\" after %v", took.Round(100*time.Millisecond))
	pl.waitMetric(t, 3*time.Second, equals(2), "parley_contacts", "state", "reachable")
	mc := mustMediaCall(t, alice, bob)
	mc.Out.hangup(t)
	bob.mustEvent(evBye)
}

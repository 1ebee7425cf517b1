package testcalls

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Relay port blocks of the admin token and start-up secret tests (see
// rtpRange).
var (
	rangeAdminToken   = rangeOf(28100)
	rangeWelcome      = rangeOf(28200)
	rangeSecretsInLog = rangeOf(28300)
)

// startParleyYAML runs parley with body as its config, after a sip and an
// admin section on free loopback ports, for configs renderConfig cannot
// write (users without a password or with a digest hash, admin.token).
// Like startParley it waits for /readyz and stops parley when t ends; it
// also waits for the "parley ready" log line, so the welcome is written.
func startParleyYAML(t *testing.T, body string) *parley {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	sipPort, adminPort := freeSIPPort(t), freeTCPPort(t)
	p := &parley{
		SIPAddr:    fmt.Sprintf("127.0.0.1:%d", sipPort),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	head := fmt.Sprintf("sip:\n  listen: [udp://127.0.0.1:%d, tcp://127.0.0.1:%d]\n  realm: parley.lab\n", sipPort, sipPort)
	if !strings.Contains(body, "admin:") {
		head += fmt.Sprintf("admin:\n  listen: 127.0.0.1:%d\n", adminPort)
	} else {
		body = strings.ReplaceAll(body, "ADMIN_LISTEN", fmt.Sprintf("127.0.0.1:%d", adminPort))
	}
	writeFile(t, p.ConfigPath, head+body)
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	p.waitLog(t, "parley ready", 5*time.Second)
	return p
}

// waitLog polls parley's output until it holds s, for up to d.
func (p *parley) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		if strings.Contains(readFileOrErr(p.LogPath), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("parley's output has no %q after %v", s, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAndLog stops parley and returns all it wrote to stdout and stderr.
func (p *parley) stopAndLog(t *testing.T) string {
	t.Helper()
	p.stop(t)
	return readFileOrErr(p.LogPath)
}

// TestAdminTokenRequired: with admin.token empty parley makes a token on
// its first start and keeps it in store.path/admin-token (0600), and
// reuses it on the next start. Admin changes without it, or with another,
// get 401 with a Bearer challenge and change nothing; with it they are
// done, and parley hangup -config finds it. Reading needs no token, a
// foreign Host gets 403 (DNS rebinding), and /debug/pprof/ is off.
func TestAdminTokenRequired(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	cfg := parleyConfig{StorePath: store, Extra: rangeAdminToken.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"}
	pl := startParley(t, cfg)
	path := filepath.Join(store, "admin-token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no admin token in store.path: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	token := storedToken(t, store)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Errorf("admin token %q: want 32 random bytes in hex", token)
	}

	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustRegister()
	for _, tt := range []struct{ method, path, token string }{
		{http.MethodDelete, "/api/registrations/1001", ""},
		{http.MethodDelete, "/api/registrations/1001", strings.Repeat("0", 64)},
		{http.MethodDelete, "/api/registrations/1001", token[:63]},
		{http.MethodDelete, "/api/calls/no-such-call", ""},
		{http.MethodPost, "/api/calls", ""},
	} {
		req, err := http.NewRequest(tt.method, "http://"+pl.AdminAddr+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != `Bearer realm="parley"` ||
			res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s with token %q: %d, WWW-Authenticate %q, Content-Type %q; want 401, Bearer realm=\"parley\", JSON",
				tt.method, tt.path, tt.token, res.StatusCode, res.Header.Get("WWW-Authenticate"), res.Header.Get("Content-Type"))
		}
	}
	if _, ok := registrationOf(pl.apiRegistrations(t), "1001", alice.Addr); !ok {
		t.Fatal("a DELETE without the token removed the registration")
	}

	// Host checks: DNS rebinding sends the attacker's name.
	for _, tt := range []struct {
		path, host string
		code       int
	}{
		{"/api/registrations", "evil.example:" + portOf(pl.AdminAddr), http.StatusForbidden},
		{"/metrics", "evil.example", http.StatusForbidden},
		{"/api/registrations", "localhost:" + portOf(pl.AdminAddr), http.StatusOK},
		{"/healthz", "evil.example", http.StatusOK},
		{"/debug/pprof/", pl.AdminAddr, http.StatusNotFound},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+pl.AdminAddr+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tt.host
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.code {
			t.Errorf("GET %s with Host %s: %d, want %d", tt.path, tt.host, res.StatusCode, tt.code)
		}
	}

	// The CLI finds the token through the config's store.path.
	code, out, errOut := runCLI(t, "hangup", "no-such-call", "-config", pl.ConfigPath)
	if code != 1 || !strings.Contains(errOut, `no call with ID "no-such-call"`) {
		t.Errorf("parley hangup -config: exit %d, want 1 and no such call (the token accepted):\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "hangup", "no-such-call", "-admin", pl.AdminAddr, "-token", strings.Repeat("0", 64))
	if code != 1 || !strings.Contains(errOut, "wrong admin token") {
		t.Errorf("parley hangup with a wrong -token: exit %d, want 1 and wrong admin token:\n%s%s", code, out, errOut)
	}
	if code, b := pl.httpDoToken(t, http.MethodDelete, "/api/registrations/1001", token); code != http.StatusOK {
		t.Fatalf("DELETE /api/registrations/1001 with the token: %d %s, want 200", code, b)
	}
	if log := pl.stopAndLog(t); strings.Contains(log, token) {
		t.Errorf("parley printed the admin token it keeps in %s", path)
	}

	// The next start reuses the token.
	pl2 := startParley(t, cfg)
	if again := storedToken(t, store); again != token {
		t.Fatalf("second start: token %q, want %q kept", again, token)
	}
	if code, b := pl2.httpDoToken(t, http.MethodDelete, "/api/registrations/1001", token); code != http.StatusNotFound {
		t.Errorf("second start, DELETE with the kept token: %d %s, want 404 (no binding left)", code, b)
	}
}

// TestWelcomePasswordsFirstStartOnly: the demo passwords parley makes up
// for users configured without one are printed on the first start only,
// and kept in store.path/passwords.yaml (0600); the next start says where
// they are kept and prints none of them, and they still work.
func TestWelcomePasswordsFirstStartOnly(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	body := rangeWelcome.yaml(nil, "") + fmt.Sprintf("store:\n  path: %s\n", yamlQuote(store)) +
		"users:\n  - {username: '1001', password: ''}\n  - {username: '1002'}\n" +
		"registrar: {min_expires: 60, max_expires: 3600, qualify: 0s}\nsessions:\n  drain_grace: 1s\n"
	first := startParleyYAML(t, body)
	path := filepath.Join(store, "passwords.yaml")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no generated passwords in store.path: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	var pw map[string]string
	if err := yaml.Unmarshal([]byte(readFileOrErr(path)), &pw); err != nil || pw["1001"] == "" || pw["1002"] == "" {
		t.Fatalf("%s: %v %v, want a password for 1001 and 1002", path, pw, err)
	}
	log := first.stopAndLog(t)
	for _, u := range []string{"1001", "1002"} {
		if !strings.Contains(log, pw[u]) {
			t.Errorf("first start did not print the password it made up for %s", u)
		}
	}

	second := startParleyYAML(t, body)
	alice := newPhone(t, "1001", second.SIPAddr, "udp")
	alice.Password = pw["1001"]
	alice.mustRegister()
	log = second.stopAndLog(t)
	for _, u := range []string{"1001", "1002"} {
		if strings.Contains(log, pw[u]) {
			t.Errorf("second start printed the password of %s, made up on the first", u)
		}
	}
	if !strings.Contains(log, path) {
		t.Errorf("second start does not say the passwords are kept in %s", path)
	}
}

// TestConfigSecretsNeverLogged: passwords, digest hashes and admin.token
// written in the config file appear nowhere in parley's output, at debug
// level, through start-up, a registration with digest and a refused admin
// change. The one user without a credential still gets its password
// printed.
func TestConfigSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	const (
		password = "Config-Secret-Password-1001"
		token    = "Config-Secret-Admin-Token-0123456789"
	)
	sum := md5.Sum([]byte("1002:parley.lab:Config-Secret-Password-1002"))
	ha1 := hex.EncodeToString(sum[:])
	body := "admin:\n  listen: ADMIN_LISTEN\n  token: " + yamlQuote(token) + "\n" +
		rangeSecretsInLog.yaml(nil, "") + "store:\n  path: ''\n" +
		"users:\n  - {username: '1001', password: " + yamlQuote(password) + "}\n" +
		"  - {username: '1002', ha1: '" + ha1 + "'}\n  - {username: '1003'}\n" +
		"registrar: {min_expires: 60, max_expires: 3600, qualify: 0s}\nsessions:\n  drain_grace: 1s\nlog: {level: debug}\n"
	pl := startParleyYAML(t, body)
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.Password = password
	alice.mustRegister()
	if code, _ := pl.httpDoToken(t, http.MethodDelete, "/api/registrations/1001", "wrong-token-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("DELETE with a wrong token: %d, want 401", code)
	}
	if code, b := pl.httpDoToken(t, http.MethodDelete, "/api/registrations/1001", token); code != http.StatusOK {
		t.Errorf("DELETE with admin.token: %d %s, want 200", code, b)
	}
	log := pl.stopAndLog(t)
	for what, secret := range map[string]string{"users[0].password": password, "users[1].ha1": ha1, "admin.token": token} {
		if strings.Contains(log, secret) {
			t.Errorf("parley's output holds %s from the config file", what)
		}
	}
	if !regexp.MustCompile(`user 1003 +password \S+ +\(generated for this run`).MatchString(log) {
		t.Errorf("the welcome does not print the password made up for 1003 (store.path is empty)")
	}
}

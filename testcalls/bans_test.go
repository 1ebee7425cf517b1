package testcalls

// Issue 11: the bans of security.ban_after are listed and lifted through
// the admin API and the operator commands, so an operator can let a
// source that was banned by mistake (a phone with a stale password) back
// in without restarting parley.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rangeBans is the relay port block of the bans test (see rtpRange).
var rangeBans = rangeOf(28400)

// apiBan is one element of GET /api/bans.
type apiBan struct {
	Address string    `json:"address"`
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason"`
}

// apiBans returns GET /api/bans.
func (p *parley) apiBans(t *testing.T) []apiBan {
	t.Helper()
	var bans []apiBan
	p.apiJSON(t, "/api/bans", &bans)
	return bans
}

// guessUntilBanned answers u's REGISTER challenges with wrong passwords
// for user until parley stops answering, at most tries times, and returns
// how many wrong answers were answered.
func guessUntilBanned(t *testing.T, u *uaSocket, user string, tries int) int {
	t.Helper()
	res := u.ask(u.request("REGISTER", "sip:parley.lab", user, "guess", 1, "Expires: 600"), time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER from %s: %v, want 401", u.local(), res)
	}
	for i := range tries {
		wrong := answerChallenge(t, res, "REGISTER", "sip:parley.lab", user, "guess"+strconv.Itoa(i), 1)
		res = u.ask(u.request("REGISTER", "sip:parley.lab", user, "guess", 2+i, "Expires: 600", "Authorization: "+wrong), time.Second)
		if res == nil {
			return i
		}
		if res.StatusCode != 401 {
			t.Fatalf("wrong password %d from %s: %d, want 401", i, u.local(), res.StatusCode)
		}
	}
	t.Fatalf("%d wrong passwords from %s and still answered: no ban", tries, u.local())
	return tries
}

// TestBansListedAndLifted: a source banned for guessing passwords
// (security.ban_after 3) is listed by GET /api/bans with its reason and a
// future expiry, and by parley bans; a DELETE without the admin token, or
// with a wrong one, gets 401 and the source stays banned; parley unban
// ADDR, pointed at parley with -config, lifts the ban, after which GET
// /api/bans is empty and the source's REGISTER is challenged again. A
// second unban, and an address that is none, exit 1 with the API's
// message.
func TestBansListedAndLifted(t *testing.T) {
	t.Parallel()
	const src = "127.0.0.71"
	pl := startParley(t, parleyConfig{StorePath: t.TempDir(),
		Extra: rangeBans.yaml(nil, "") + "sessions:\n  drain_grace: 1s\nsecurity: {ban_after: 3, ban_window: 60s, ban_time: 60s}\n"})
	if bans := pl.apiBans(t); len(bans) != 0 {
		t.Fatalf("GET /api/bans before any ban: %+v, want none", bans)
	}
	guesser := newUASocket(t, src, pl.SIPAddr)
	banned := time.Now()
	if n := guessUntilBanned(t, guesser, "1001", 10); n != 3 {
		t.Errorf("banned after %d wrong passwords, want security.ban_after = 3", n)
	}

	// The API lists the ban.
	code, body := pl.httpDo(t, http.MethodGet, "/api/bans")
	if code != http.StatusOK {
		t.Fatalf("GET /api/bans: %d %s, want 200", code, body)
	}
	checkKeys(t, "ban", body, "address", "until", "reason")
	var bans []apiBan
	if err := json.Unmarshal(body, &bans); err != nil {
		t.Fatalf("GET /api/bans: %v:\n%s", err, body)
	}
	if len(bans) != 1 || bans[0].Address != src || bans[0].Reason != "authentication failures" {
		t.Fatalf("GET /api/bans: %+v, want %s banned for authentication failures", bans, src)
	}
	ban := bans[0]
	if !ban.Until.After(time.Now()) || ban.Until.Before(banned.Add(55*time.Second)) || ban.Until.After(time.Now().Add(61*time.Second)) {
		t.Errorf("ban until %v, want about security.ban_time (60s) after %v", ban.Until, banned)
	}

	// The CLI lists it too, finding the API in the config.
	code, out, errOut := runCLI(t, "bans", "-config", pl.ConfigPath)
	t.Logf("parley bans:\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || strings.Fields(lines[0])[0] != "ADDRESS" ||
		!strings.HasPrefix(lines[1], src+" ") || !strings.Contains(lines[1], ban.Until.Local().Format(time.DateTime)) ||
		!strings.HasSuffix(lines[1], "authentication failures") {
		t.Errorf("parley bans -config: exit %d, want 0, a header and %s until %s for authentication failures:\n%s%s",
			code, src, ban.Until.Local().Format(time.DateTime), out, errOut)
	}
	code, out, errOut = runCLI(t, "bans", "-json", "-admin", pl.AdminAddr)
	if code != 0 || out != string(body) {
		t.Errorf("parley bans -json: exit %d, want 0 and the API's body:\n%s%s", code, out, errOut)
	}

	// Lifting needs the admin token.
	for _, token := range []string{"", strings.Repeat("0", 64)} {
		code, b := pl.httpDoToken(t, http.MethodDelete, "/api/bans/"+src, token)
		if code != http.StatusUnauthorized || !strings.Contains(string(b), `"error"`) {
			t.Errorf("DELETE /api/bans/%s with token %q: %d %s, want 401 and a JSON error", src, token, code, b)
		}
	}
	if bans := pl.apiBans(t); len(bans) != 1 {
		t.Fatalf("a refused DELETE lifted the ban: %+v", bans)
	}
	if res := guesser.ask(guesser.request("REGISTER", "sip:parley.lab", "1001", "still-banned", 1, "Expires: 600"), time.Second); res != nil {
		t.Fatalf("REGISTER from %s after a refused DELETE: %d, want no answer (still banned)", src, res.StatusCode)
	}

	// parley unban lifts it, with the token from store.path.
	code, out, errOut = runCLI(t, "unban", src, "-config", pl.ConfigPath)
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("parley unban %s -config: exit %d, stdout %q, stderr %q; want 0 and silence", src, code, out, errOut)
	}
	if bans := pl.apiBans(t); len(bans) != 0 {
		t.Errorf("GET /api/bans after parley unban: %+v, want none", bans)
	}
	if code, out, errOut := runCLI(t, "bans", "-config", pl.ConfigPath); code != 0 || strings.Contains(out, src) {
		t.Errorf("parley bans after the unban: exit %d, still lists %s:\n%s%s", code, src, out, errOut)
	}
	answered := false
	for i := range 3 { // a datagram lost on a busy loopback is no ban
		res := guesser.ask(guesser.request("REGISTER", "sip:parley.lab", "1001", "after-unban", 1+i, "Expires: 600"), time.Second)
		if res == nil {
			continue
		}
		if res.StatusCode != 401 {
			t.Fatalf("REGISTER from %s after the unban: %d, want 401", src, res.StatusCode)
		}
		answered = true
		break
	}
	if !answered {
		t.Fatalf("REGISTER from %s after the unban: no answer, want 401", src)
	}

	for _, tt := range []struct{ addr, stderr string }{
		{src, "no ban on " + src},
		{"not-an-address", "not an IP address"},
	} {
		code, out, errOut := runCLI(t, "unban", tt.addr, "-config", pl.ConfigPath)
		if code != 1 || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("parley unban %s: exit %d, want 1 and %q:\n%s%s", tt.addr, code, tt.stderr, out, errOut)
		}
	}
}

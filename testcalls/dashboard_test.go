package testcalls

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// rangeDashboard is the relay port block of the dashboard test.
var rangeDashboard = rangeOf(32300)

// browserTimeout bounds the whole browser session of a test.
const browserTimeout = 90 * time.Second

// startBrowser starts headless Chromium (Debian's chromium, installed if
// missing) and returns a chromedp context for one tab. When t ends, the
// browser and every process it started are gone: chromedp kills the
// browser, and the cleanup looks for anything left that used the browser's
// profile directory.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := needPackage(t, "chromium", "chromium")
	profile, err := os.MkdirTemp("", "parley-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	out := new(lockedBuffer)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"),
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(out),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox as root
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, timeoutCancel := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() {
		timeoutCancel()
		cancel()
		allocCancel() // kills the browser and waits for it
		if left := processesUsing(profile); len(left) > 0 {
			t.Errorf("browser processes left after the test: %v; killing them", left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(profile)
		if t.Failed() {
			t.Logf("chromium's output:\n%s", tailString(out.String(), 4000))
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium (%s): %v\n%s", bin, err, out.String())
	}
	return ctx
}

// lockedBuffer is a bytes.Buffer safe for the browser's output goroutine
// and the test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// processesUsing returns the PIDs of processes whose command line names
// the browser profile dir.
func processesUsing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("--user-data-dir="+dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// tailString returns the last n bytes of s.
func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// waitJS polls the page until the JavaScript expression js is true, or
// fails the test naming what it waited for.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("the dashboard did not show %s within %v: %v\npage text:\n%s", what, d, err, pageText(ctx))
	}
}

// pageText returns the text the page shows, for failure messages.
func pageText(ctx context.Context) string {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return fmt.Sprintf("(no text: %v)", err)
	}
	return s
}

// jsString quotes s as a JavaScript string literal: Go's quoting is
// JavaScript's for the ASCII user names and addresses used here.
func jsString(s string) string { return strconv.Quote(s) }

// TestDashboard: the dashboard at / in headless Chromium shows the
// phones' registrations, reachable with their round-trip times, and,
// within a second of its answer, their call with its codec and packets.
// Without the admin token its hang-up button gets 401, the page says so
// and the call goes on; with the token typed into the page, hang-up ends
// the call with BYE to both phones. A room in a snapshot shows its
// members, floor and queue. Through a restart of parley the page shows
// "reconnecting", then live data again, without a reload. It saves a
// screenshot to $PARLEY_ARTIFACTS (and to testdata/dashboard.png with
// PARLEY_UPDATE_SCREENSHOT=1).
func TestDashboard(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	pl := startParley(t, parleyConfig{StorePath: store, Registrar: "{min_expires: 60, max_expires: 3600, qualify: 1s}",
		Extra: rangeDashboard.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"})
	token := storedToken(t, store)
	ctx := startBrowser(t)

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+pl.AdminAddr+"/")); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	waitJS(t, ctx, 5*time.Second, "the live state", `document.getElementById('status').dataset.state === 'live'`)
	waitJS(t, ctx, time.Second, "no rooms section (parley answers /api/rooms with 404)", `document.getElementById('rooms-section').hidden`)

	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	for _, p := range []*phone{alice, bob, carol} {
		p.mustRegister()
	}
	for _, p := range []*phone{alice, bob, carol} {
		waitJS(t, ctx, 3*time.Second, "the registration of "+p.User,
			`[...document.querySelectorAll('#registrations tbody tr')].some(tr => tr.dataset.user === `+jsString(p.User)+
				` && tr.cells[1].textContent.includes(`+jsString(p.Addr)+`) && tr.cells[2].textContent === 'udp' && tr.querySelector('button.kick'))`)
	}

	// Qualify pings them: reachable, with a round-trip time.
	waitJS(t, ctx, 8*time.Second, "every phone reachable with its RTT",
		`[...document.querySelectorAll('#registrations tbody tr')].filter(tr => tr.cells[3].textContent === 'yes' && tr.cells[4].textContent.endsWith(' ms')).length === 3`)

	// A second call, to the echo service, so that the page shows more
	// than one.
	ctxEcho, cancelEcho := context.WithTimeout(context.Background(), callTimeout)
	defer cancelEcho()
	echo := carol.call(ctxEcho, "600")
	echo.mustAnswered(t)

	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	mc := mustMediaCall(t, alice, bob)
	answered := time.Now()
	row := `document.querySelector('#calls tbody tr[data-from="1001"][data-to="1002"]')`
	waitJS(t, ctx, 3*time.Second, "the call 1001 → 1002, active", row+`?.dataset.state === 'active'`)
	if d := time.Since(answered); d > time.Second {
		t.Errorf("the call appeared on the dashboard %v after its answer; want within a second", d.Round(time.Millisecond))
	} else {
		t.Logf("the call appeared on the dashboard %v after its answer", d.Round(time.Millisecond))
	}
	flows(t, "dashboard call", aSock, bSock, mc.CallerSees, mc.CalleeSees, 50)
	waitJS(t, ctx, 3*time.Second, "the call's codec and packets", row+`.cells[4].textContent === 'PCMU' && Number(`+row+`.cells[6].textContent) >= 100`)

	// Without the token: 401, said on the page, and the call goes on.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#calls tbody tr[data-from="1001"] button.hangup`))); err != nil {
		t.Fatalf("press hang-up: %v", err)
	}
	waitJS(t, ctx, 3*time.Second, "the 401 of a hang-up without the token",
		`document.getElementById('message').classList.contains('error') && document.getElementById('message').textContent.includes('401')`)
	alice.noEvent(evBye, 300*time.Millisecond)
	bob.noEvent(evBye, 50*time.Millisecond)

	// The token, typed in once.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#save-token`)),
	); err != nil {
		t.Fatalf("set the token: %v", err)
	}
	waitJS(t, ctx, 2*time.Second, "the token kept", `document.body.dataset.token === 'set' && localStorage.getItem('parley.admin.token') === `+jsString(token))
	saveScreenshot(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#calls tbody tr[data-from="1001"] button.hangup`))); err != nil {
		t.Fatalf("press hang-up: %v", err)
	}
	waitByes(t, 3*time.Second, alice, bob)
	waitJS(t, ctx, 2*time.Second, "the call gone", row+` === null`)
	waitJS(t, ctx, time.Second, "the hang-up done", `!document.getElementById('message').classList.contains('error') && document.getElementById('message').textContent.includes('done')`)
	echo.hangup(t)
	waitJS(t, ctx, 2*time.Second, "no calls", `document.querySelectorAll('#calls tbody tr').length === 0 && !document.getElementById('calls-empty').hidden`)

	// Rooms: this parley has none (GET /api/rooms is 404), so the page
	// is given a snapshot with a room, as a parley with rooms sends it,
	// to see it rendered; the live snapshots after the restart hide it
	// again.
	const withRoom = `render(Object.assign({}, state, {rooms: [{number: "700", mode: "ptt", floor: "1001", queue: ["1003"],
		members: [{user: "1001", call: "c1", muted: false, talking: true}, {user: "1002", call: "c2", muted: true, talking: false}]}]})); true`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](withRoom)); err != nil {
		t.Fatalf("render a room: %v", err)
	}
	waitJS(t, ctx, time.Second, "the room with its floor holder, queue and muted member",
		`!document.getElementById('rooms-section').hidden && (r => r && r.cells[0].textContent === '700' && r.cells[1].textContent === 'ptt' && r.cells[3].textContent === '1001' && r.cells[4].textContent === '1003' && r.querySelector('.member.talking').textContent === '1001' && r.querySelector('.member.muted').textContent.startsWith('1002'))(document.querySelector('#rooms tbody tr'))`)

	// Through a restart: "reconnecting" while parley is down, then live
	// again with the registrations it kept in its store, no reload.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.parleyTestMark = true`)); err != nil {
		t.Fatal(err)
	}
	pl.stop(t)
	waitJS(t, ctx, 5*time.Second, "reconnecting while parley is down", `document.getElementById('status').dataset.state === 'reconnecting'`)
	restartParley(t, pl)
	waitJS(t, ctx, 15*time.Second, "live again after the restart", `document.getElementById('status').dataset.state === 'live'`)
	waitJS(t, ctx, 3*time.Second, "the kept registrations after the restart", `document.querySelectorAll('#registrations tbody tr[data-user="1001"]').length > 0`)
	waitJS(t, ctx, time.Second, "the same page (no reload)", `window.parleyTestMark === true`)
	waitJS(t, ctx, time.Second, "no rooms section again", `document.getElementById('rooms-section').hidden`)
}

// restartParley starts parley again as pl was started, on the same ports
// and with the same config and store, once pl has stopped.
func restartParley(t *testing.T, pl *parley) *parley {
	t.Helper()
	again := &parley{SIPAddr: pl.SIPAddr, AdminAddr: pl.AdminAddr, ConfigPath: pl.ConfigPath,
		LogPath: strings.TrimSuffix(pl.LogPath, ".log") + "-restarted.log", exited: make(chan struct{})}
	again.run(t, exec.Command(parleyBin, "-config", pl.ConfigPath))
	return again
}

// saveScreenshot saves what the browser shows as dashboard.png in
// $PARLEY_ARTIFACTS (a temporary directory without it), and with
// PARLEY_UPDATE_SCREENSHOT=1 as testdata/dashboard.png too, for the
// README.
func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the dashboard: %s", path)
	if os.Getenv("PARLEY_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("testdata", "dashboard.png"), png, 0o644); err != nil {
			t.Errorf("update testdata/dashboard.png: %v", err)
		} else {
			t.Logf("updated testdata/dashboard.png")
		}
	}
}

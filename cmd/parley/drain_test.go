package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeB2B is a drainable whose calls end when the test says.
type fakeB2B struct {
	mu       sync.Mutex
	active   int
	drained  bool
	hangups  []string
	detached bool
	readyzOn bool
}

func (f *fakeB2B) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = true
}

func (f *fakeB2B) ActiveCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fakeB2B) HangupAll(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = 0
	f.hangups = append(f.hangups, reason)
}

func (f *fakeB2B) Detach() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detached = true
	return nil
}

func (f *fakeB2B) set(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = n
}

// stopRun runs a stopper over b2b in a synctest bubble: script drives the
// calls and signals, and the result says when stop was called.
func stopRun(t *testing.T, b2b *fakeB2B, grace time.Duration, script func(sigs chan<- os.Signal)) (elapsed time.Duration, logs string) {
	t.Helper()
	var buf bytes.Buffer
	var bufMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&bufMu, &buf}, nil))
	synctest.Test(t, func(t *testing.T) {
		s := &stopper{srv: b2b, grace: grace, log: log, poll: drainPoll, progress: drainProgress,
			onDrain: func() { b2b.mu.Lock(); b2b.readyzOn = true; b2b.mu.Unlock() }}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		sigs := make(chan os.Signal, 2)
		start := time.Now()
		done := make(chan struct{})
		go func() { s.run(ctx, sigs, cancel); close(done) }()
		go script(sigs)
		<-done
		elapsed = time.Since(start)
		if ctx.Err() == nil {
			t.Error("stopper returned without cancelling the serve context")
		}
	})
	bufMu.Lock()
	defer bufMu.Unlock()
	return elapsed, buf.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDrainWaitsForCalls(t *testing.T) {
	b2b := &fakeB2B{active: 2}
	elapsed, logs := stopRun(t, b2b, time.Minute, func(sigs chan<- os.Signal) {
		sigs <- syscall.SIGTERM
		time.Sleep(3 * time.Second)
		b2b.set(1)
		time.Sleep(4 * time.Second)
		b2b.set(0)
	})
	if elapsed < 7*time.Second || elapsed > 7*time.Second+drainPoll {
		t.Errorf("stopped after %v, want when the last call ended (7s)", elapsed)
	}
	if !b2b.drained || !b2b.readyzOn {
		t.Errorf("drained %v, readyz draining %v: want both", b2b.drained, b2b.readyzOn)
	}
	if len(b2b.hangups) != 0 {
		t.Errorf("hung up %v, want no hangup: the calls ended by themselves", b2b.hangups)
	}
	if !strings.Contains(logs, "msg=draining calls=1") || !strings.Contains(logs, "drained") {
		t.Errorf("logs lack progress or the end of the drain:\n%s", logs)
	}
}

func TestDrainGivesUpAtGrace(t *testing.T) {
	b2b := &fakeB2B{active: 3}
	elapsed, logs := stopRun(t, b2b, 12*time.Second, func(sigs chan<- os.Signal) {
		sigs <- syscall.SIGTERM
	})
	if elapsed != 12*time.Second {
		t.Errorf("stopped after %v, want the grace (12s)", elapsed)
	}
	if !slices.Equal(b2b.hangups, []string{"drain grace elapsed"}) {
		t.Errorf("hangups %v", b2b.hangups)
	}
	// Progress every 5s: at 5s and 10s.
	if n := strings.Count(logs, "msg=draining calls=3"); n != 2 {
		t.Errorf("%d progress lines, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs, "drain grace elapsed") {
		t.Errorf("logs do not say the grace elapsed:\n%s", logs)
	}
}

func TestDrainZeroGrace(t *testing.T) {
	b2b := &fakeB2B{active: 1}
	elapsed, _ := stopRun(t, b2b, 0, func(sigs chan<- os.Signal) { sigs <- syscall.SIGTERM })
	if elapsed != 0 || len(b2b.hangups) != 1 {
		t.Errorf("stopped after %v with hangups %v, want at once with one", elapsed, b2b.hangups)
	}
}

func TestDrainSecondSignalCutsShort(t *testing.T) {
	for _, second := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(signalName(second), func(t *testing.T) {
			b2b := &fakeB2B{active: 1}
			elapsed, logs := stopRun(t, b2b, time.Minute, func(sigs chan<- os.Signal) {
				sigs <- syscall.SIGTERM
				time.Sleep(3 * time.Second)
				sigs <- second
			})
			if elapsed != 3*time.Second {
				t.Errorf("stopped after %v, want at the second signal (3s)", elapsed)
			}
			if !slices.Equal(b2b.hangups, []string{"shutdown"}) {
				t.Errorf("hangups %v", b2b.hangups)
			}
			if !strings.Contains(logs, "signal="+signalName(second)) {
				t.Errorf("logs do not name the second signal:\n%s", logs)
			}
		})
	}
}

func TestSIGINTStopsAtOnce(t *testing.T) {
	b2b := &fakeB2B{active: 2}
	elapsed, _ := stopRun(t, b2b, time.Minute, func(sigs chan<- os.Signal) { sigs <- os.Interrupt })
	if elapsed != 0 {
		t.Errorf("stopped after %v, want at once", elapsed)
	}
	if b2b.drained || b2b.readyzOn {
		t.Error("SIGINT drained; want an immediate stop")
	}
	if !slices.Equal(b2b.hangups, []string{"shutdown"}) {
		t.Errorf("hangups %v", b2b.hangups)
	}
}

func TestStopperEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b2b := &fakeB2B{active: 1}
		s := &stopper{srv: b2b, grace: time.Minute, log: slog.New(slog.DiscardHandler), poll: drainPoll, progress: drainProgress}
		ctx, cancel := context.WithCancel(t.Context())
		stopped := false
		done := make(chan struct{})
		go func() { s.run(ctx, nil, func() { stopped = true }); close(done) }()
		time.Sleep(time.Second)
		cancel()
		<-done
		if !stopped || b2b.drained || len(b2b.hangups) != 0 {
			t.Errorf("stopped %v drained %v hangups %v", stopped, b2b.drained, b2b.hangups)
		}
	})
}

func TestSIGUSR2Detaches(t *testing.T) {
	b2b := &fakeB2B{active: 3}
	elapsed, logs := stopRun(t, b2b, time.Minute, func(sigs chan<- os.Signal) { sigs <- syscall.SIGUSR2 })
	b2b.mu.Lock()
	defer b2b.mu.Unlock()
	if !b2b.detached || len(b2b.hangups) != 0 || b2b.drained {
		t.Errorf("after SIGUSR2: detached %v, hangups %q, drained %v; want detached only", b2b.detached, b2b.hangups, b2b.drained)
	}
	if elapsed != 0 {
		t.Errorf("SIGUSR2 stop took %v, want no wait", elapsed)
	}
	if !strings.Contains(logs, "SIGUSR2: stopping without BYE") {
		t.Errorf("log does not say the calls were left: %s", logs)
	}
}

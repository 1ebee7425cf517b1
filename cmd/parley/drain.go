package main

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// drainable is what a graceful stop needs from the B2BUA.
type drainable interface {
	// Drain makes new INVITEs get 503 with Retry-After.
	Drain()
	// ActiveCalls returns the number of calls in progress.
	ActiveCalls() int
	// HangupAll ends every call with BYE on both legs.
	HangupAll(reason string)
	// Detach writes every call's checkpoint and leaves the calls to the
	// next process: no BYE.
	Detach() error
}

// Defaults for stopper's poll and progress intervals.
const (
	drainPoll     = 100 * time.Millisecond
	drainProgress = 5 * time.Second
)

// stopper turns the signals parley stops on into its stop sequence.
//
// SIGTERM drains: new calls are refused, /readyz turns 503 so load
// balancers stop sending, and active calls have up to grace to end by
// themselves; whatever is left then gets BYE. SIGINT, or a second signal
// during the drain, hangs up every call at once. Either way the stopper
// then cancels the serve context, and dialog.Server.Serve waits for the
// BYEs before parley exits 0. SIGUSR2 detaches instead, for an upgrade:
// every call's checkpoint is written, no BYE is sent, and the next parley
// started on the same store carries the calls on.
type stopper struct {
	srv   drainable
	grace time.Duration
	log   *slog.Logger
	// onDrain, if set, runs as the drain starts (it turns /readyz 503).
	onDrain func()
	// poll is how often ActiveCalls is checked; progress how often the
	// number of calls left is logged.
	poll, progress time.Duration
}

// run waits for the first signal on sigs, or for ctx to end, stops parley
// as the signal asks, and calls stop.
func (s *stopper) run(ctx context.Context, sigs <-chan os.Signal, stop context.CancelFunc) {
	defer stop()
	var sig os.Signal
	select {
	case <-ctx.Done():
		return
	case sig = <-sigs:
	}
	if sig == syscall.SIGTERM {
		s.drain(ctx, sigs)
		return
	}
	if sig == syscall.SIGUSR2 {
		n := s.srv.ActiveCalls()
		if err := s.srv.Detach(); err != nil {
			s.log.Error("SIGUSR2: calls not left to the next process; stopping anyway without BYE", "calls", n, "error", err)
			return
		}
		s.log.Info("SIGUSR2: stopping without BYE; the calls' checkpoints are left to the next process", "calls", n)
		return
	}
	s.log.Info("stopping now: hanging up every call", "signal", signalName(sig), "calls", s.srv.ActiveCalls())
	s.srv.HangupAll("shutdown")
}

// drain refuses new calls and waits for the active ones to end, for at
// most s.grace. It returns early when ctx ends or another signal arrives,
// hanging up what is left in the latter case and when the grace runs out.
func (s *stopper) drain(ctx context.Context, sigs <-chan os.Signal) {
	s.srv.Drain()
	if s.onDrain != nil {
		s.onDrain()
	}
	s.log.Info("SIGTERM: draining; new calls get 503, /readyz reports draining",
		"calls", s.srv.ActiveCalls(), "grace", s.grace)
	end := time.Now().Add(s.grace)
	deadline := time.NewTimer(s.grace)
	defer deadline.Stop()
	poll := time.NewTicker(s.poll)
	defer poll.Stop()
	progress := time.NewTicker(s.progress)
	defer progress.Stop()
	for {
		n := s.srv.ActiveCalls()
		if n == 0 {
			s.log.Info("drained: no calls left, stopping")
			return
		}
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			s.log.Info("stopping now: hanging up the remaining calls", "signal", signalName(sig), "calls", n)
			s.srv.HangupAll("shutdown")
			return
		case <-deadline.C:
			s.log.Info("drain grace elapsed: hanging up the remaining calls", "calls", n, "grace", s.grace)
			s.srv.HangupAll("drain grace elapsed")
			return
		case <-progress.C:
			s.log.Info("draining", "calls", n, "grace_left", time.Until(end).Round(time.Second))
		case <-poll.C:
		}
	}
}

// signalName names sig the way operators write it.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	}
	return sig.String()
}

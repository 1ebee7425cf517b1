package main

import (
	"log/slog"
	"syscall"
)

// raiseOpenFiles raises the soft limit on open files (RLIMIT_NOFILE) to
// the hard limit, as Kamailio and rtpengine do at start-up: every TCP
// connection and every relay socket (four per call) is a file, and the
// usual soft limit of 1,024 would cap parley at a few hundred calls. Go's
// runtime does the same for its own process since Go 1.19; doing it here
// as well makes the limit explicit and puts it in the log. Past the limit,
// new TCP connections wait in the kernel's queue (the accept loop retries)
// and new calls get 503; parley keeps running.
func raiseOpenFiles(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("open files limit unknown", "error", err)
		return
	}
	if lim.Cur >= lim.Max {
		log.Info("open files limit", "soft", lim.Cur, "hard", lim.Max)
		return
	}
	before := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("open files limit not raised", "soft", before, "hard", lim.Max, "error", err)
		return
	}
	log.Info("open files limit raised", "soft", lim.Cur, "hard", lim.Max, "was", before)
}

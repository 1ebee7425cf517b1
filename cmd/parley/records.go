package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/cdr"
)

// records are the node's call records: the writer every ended call goes
// to (the cdr.path file and, with store.redis, the cluster's stream), and
// where /api/cdr reads them back. SIGHUP reopens the file, after a log
// rotation renamed it.
type records struct {
	// w is nil when records are off (cdr.path "" and no store.redis).
	w      *cdr.Writer
	reader admin.Records
	hup    chan os.Signal
	stop   chan struct{}
	wg     sync.WaitGroup
}

// buildRecords opens the call records' sinks and returns the option that
// makes the B2BUA record its calls, none when records are off (cdr.path
// "" and no store.redis), and takes SIGHUP. The writer is closed, after
// the B2BUA has ended every call, when serve returns.
func (p *parts) buildRecords(cfg *config.Config, log *slog.Logger) ([]dialog.Option, error) {
	var sinks []cdr.Sink
	var reader admin.Records
	if cfg.CDR.Path != "" {
		f, err := cdr.OpenFile(cfg.CDR.Path)
		if err != nil {
			return nil, fmt.Errorf("cdr.path: %w", err)
		}
		sinks = append(sinks, f)
		reader = cdr.FileReader{Path: cfg.CDR.Path}
	}
	if p.redis != nil {
		s := cdr.NewStream(p.redis, cdr.StreamKey, cdr.DefaultStreamLen)
		sinks = append(sinks, s)
		reader = s // one history for every node
	}
	r := &records{reader: reader, hup: make(chan os.Signal, 1), stop: make(chan struct{})}
	var opts []dialog.Option
	if len(sinks) > 0 {
		w, err := cdr.NewWriter(sinks, cdr.WithLogger(log.With("component", "cdr")), cdr.WithRegisterer(p.metrics))
		if err != nil {
			return nil, err
		}
		r.w = w
		opts = append(opts, dialog.WithRecorder(w.Record))
	}
	// SIGHUP never stops parley, even with nothing to reopen: an operator
	// or logrotate sending it expects a reload, not an exit.
	signal.Notify(r.hup, syscall.SIGHUP)
	r.wg.Go(func() {
		for {
			select {
			case <-r.hup:
				p.reloadTLS(cfg, log) // tls.go
				if r.w == nil || cfg.CDR.Path == "" {
					log.Info("SIGHUP: no call record file to reopen (cdr.path is empty)")
					continue
				}
				log.Info("SIGHUP: reopening the call record file", "cdr.path", cfg.CDR.Path)
				r.w.Reopen()
			case <-r.stop:
				return
			}
		}
	})
	p.records = r
	p.closer = append(p.closer, r.close)
	return opts, nil
}

// close stops taking SIGHUP, writes the records still queued and closes
// the sinks.
func (r *records) close() error {
	signal.Stop(r.hup)
	close(r.stop)
	r.wg.Wait()
	if r.w == nil {
		return nil
	}
	return r.w.Close()
}

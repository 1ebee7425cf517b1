package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-sip/parley/config"
)

// TestServeStops checks the wiring of the stop sequence: serve returns nil
// after SIGTERM (nothing to drain) and after SIGINT.
func TestServeStops(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(signalName(sig), func(t *testing.T) {
			cfg, err := config.Parse([]byte(`
sip:
  listen: [udp://127.0.0.1:0]
rtp:
  port_min: 41000
  port_max: 41099
admin:
  listen: 127.0.0.1:0
store:
  path: ""
cdr:
  path: ""
`), "test")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			sigs := make(chan os.Signal, 1)
			sigs <- sig
			done := make(chan error, 1)
			go func() { done <- serve(context.Background(), cfg, log, io.Discard, sigs) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop")
			}
			mu.Lock()
			defer mu.Unlock()
			want := "drained: no calls left"
			if sig == os.Interrupt {
				want = "stopping now"
			}
			if !strings.Contains(logs.String(), want) {
				t.Errorf("logs lack %q:\n%s", want, logs.String())
			}
		})
	}
}

package cdr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/parley-sip/parley/dialog"
)

func record(id string) dialog.CallRecord {
	return dialog.CallRecord{ID: id, From: "1001", To: "1002", Start: t0, End: t0.Add(time.Second), Result: "busy", Code: 486}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestWriterReopen renames the file as logrotate does, asks for a reopen
// (SIGHUP in parley), and finds the next records in a new file at the
// path, the earlier ones in the renamed file.
func TestWriterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "cdr.csv")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := NewWriter([]Sink{f}, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	w.Record(record("before1"))
	w.Record(record("before2"))
	written := w.records.WithLabelValues("file", "written")
	waitFor(t, "two records written", func() bool { return testutil.ToFloat64(written) == 2 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Record(record("still-old")) // queued before the reopen: the old file
	w.Reopen()
	w.Record(record("after"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := lines(t, path+".1"), lines(t, path)
	if len(old) != 3 || !strings.Contains(old[2], `"still-old"`) {
		t.Errorf("renamed file: %q", old)
	}
	if len(cur) != 1 || !strings.Contains(cur[0], `"after"`) {
		t.Errorf("new file: %q", cur)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
}

// TestWriterFailingFile writes to /dev/full, a disk that is always full:
// Record never blocks, every record is counted as failed or dropped, and
// none is written.
func TestWriterFailingFile(t *testing.T) {
	f, err := OpenFile("/dev/full")
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	w, err := NewWriter([]Sink{f}, WithQueue(8))
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	start := time.Now()
	for i := range n {
		w.Record(record("c" + string(rune('a'+i%26))))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d records took %v to hand over", n, d)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	failed := testutil.ToFloat64(w.records.WithLabelValues("file", "failed"))
	dropped := testutil.ToFloat64(w.records.WithLabelValues("file", "dropped"))
	written := testutil.ToFloat64(w.records.WithLabelValues("file", "written"))
	if failed+dropped != n || written != 0 || failed == 0 {
		t.Errorf("failed %v + dropped %v, written %v; want %d lost, some failed", failed, dropped, written, n)
	}
}

// stuckSink blocks every write until released, as a hung NFS mount or a
// Redis that never answers would.
type stuckSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (*stuckSink) Name() string { return "stuck" }
func (s *stuckSink) Write(Record, []byte) error {
	<-s.release
	s.mu.Lock()
	s.got++
	s.mu.Unlock()
	return nil
}
func (*stuckSink) Close() error { return nil }

// TestWriterStuckSink: a sink that hangs costs its own queue only; the
// file beside it gets every record, and Record returns at once.
func TestWriterStuckSink(t *testing.T) {
	stuck := &stuckSink{release: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "cdr.csv")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter([]Sink{stuck, f}, WithQueue(4))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		done := make(chan struct{})
		go func() { w.Record(record(string(rune('a' + i)))); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Fatal("Record blocked on a stuck sink")
		}
		waitFor(t, "the file's record", func() bool {
			return testutil.ToFloat64(w.records.WithLabelValues("file", "written")) == float64(i+1)
		})
	}
	if d := testutil.ToFloat64(w.records.WithLabelValues("stuck", "dropped")); d < 15 {
		t.Errorf("stuck sink dropped %v of 20 with a queue of 4", d)
	}
	close(stuck.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(lines(t, path)); got != 20 {
		t.Errorf("file has %d lines, want 20", got)
	}
}

// TestWriterClosedFile: a file closed under the sink (a write on a
// closed descriptor) fails that record, and the next reopen recovers.
func TestWriterClosedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdr.csv")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.f.Close()
	w, err := NewWriter([]Sink{f})
	if err != nil {
		t.Fatal(err)
	}
	w.Record(record("lost"))
	waitFor(t, "the failure", func() bool { return testutil.ToFloat64(w.records.WithLabelValues("file", "failed")) == 1 })
	w.Reopen()
	w.Record(record("kept"))
	if err := w.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte("lost")) || !bytes.Contains(b, []byte(`"kept"`)) {
		t.Errorf("file after reopen: %q", b)
	}
}

// TestFileReader reads the newest records first, and a user's only.
func TestFileReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdr.csv")
	var b []byte
	for i, to := range []string{"1002", "1003", "600", "1002"} {
		c := record(string(rune('a' + i)))
		c.To = to
		b = FromCall(c).AppendCSV(b)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := FileReader{Path: path}.Recent(t.Context(), 10, "")
	if err != nil || len(got) != 4 || got[0].UniqueID != "d" || got[3].UniqueID != "a" {
		t.Fatalf("Recent: %v %+v", err, got)
	}
	got, _ = FileReader{Path: path}.Recent(t.Context(), 1, "1002")
	if len(got) != 1 || got[0].UniqueID != "d" {
		t.Errorf("Recent(1, 1002): %+v", got)
	}
	got, _ = FileReader{Path: path}.Recent(t.Context(), 10, "600")
	if len(got) != 1 || got[0].UniqueID != "c" {
		t.Errorf("Recent(10, 600): %+v", got)
	}
	got, err = FileReader{Path: path + ".none"}.Recent(t.Context(), 10, "")
	if err != nil || len(got) != 0 {
		t.Errorf("missing file: %v %v", got, err)
	}
}

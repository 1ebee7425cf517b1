package dialog

import (
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
)

// fakeCheckpoints is a Checkpoints in memory that records every batch.
type fakeCheckpoints struct {
	mu      sync.Mutex
	data    map[string][]byte
	batches int
	deletes []string
	fail    error
	// during runs inside Write, to queue more while a batch is in flight.
	during func()
}

func (f *fakeCheckpoints) Write(put map[string][]byte, del []string) error {
	if f.during != nil {
		d := f.during
		f.during = nil
		d()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.batches++
	for _, id := range del {
		delete(f.data, id)
		f.deletes = append(f.deletes, id)
	}
	maps.Copy(f.data, put)
	return nil
}

func (f *fakeCheckpoints) Load() (map[string][]byte, error) { return maps.Clone(f.data), nil }

func (f *fakeCheckpoints) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.data))
}

func TestCkWriterBatches(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	st := &callState{V: ckVersion, ID: "x"}

	t.Run("a call that ends before its checkpoint is written costs nothing", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{}}
		w := newCkWriter(f)
		w.put("a", st)
		w.del("a")
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if f.batches != 0 || len(f.deletes) != 0 {
			t.Errorf("%d batches, deletes %q; want none", f.batches, f.deletes)
		}
	})

	t.Run("a written checkpoint is deleted at the end", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{}}
		w := newCkWriter(f)
		w.put("a", st)
		w.put("b", st)
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("stored %q after one batch", got)
		}
		w.put("a", st) // a later sync point, then the end: the delete wins
		w.del("a")
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(); !slices.Equal(got, []string{"b"}) || f.batches != 2 {
			t.Errorf("stored %q in %d batches; want b in 2", got, f.batches)
		}
	})

	t.Run("an end while its checkpoint is being written still deletes it", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{}}
		w := newCkWriter(f)
		w.put("a", st)
		f.during = func() {
			w.put("a", st) // pending again, the first still in flight
			w.del("a")
		}
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(); len(got) != 0 {
			t.Errorf("stored %q; the call ended, want nothing", got)
		}
	})

	t.Run("a restored call's checkpoint goes at its end", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{"r": []byte("{}")}}
		w := newCkWriter(f)
		w.markStored("r")
		w.put("r", st)
		w.del("r")
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(); len(got) != 0 {
			t.Errorf("stored %q; want the restored call's checkpoint gone", got)
		}
	})

	t.Run("a failed batch is written once the store works again", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{}, fail: errors.New("store away")}
		w := newCkWriter(f)
		w.put("a", st)
		if err := w.flush(log); err == nil || w.healthy() == nil {
			t.Fatalf("flush %v, healthy %v; want the store's error", err, w.healthy())
		}
		f.mu.Lock()
		f.fail = nil
		f.mu.Unlock()
		if err := w.flush(log); err != nil || w.healthy() != nil {
			t.Fatalf("flush %v, healthy %v after the store came back", err, w.healthy())
		}
		if got := f.ids(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("stored %q, want a", got)
		}
	})

	t.Run("frozen writes nothing more", func(t *testing.T) {
		f := &fakeCheckpoints{data: map[string][]byte{}}
		w := newCkWriter(f)
		w.put("a", st)
		if err := w.freeze(log); err != nil {
			t.Fatal(err)
		}
		w.del("a")
		w.put("b", st)
		if err := w.flush(log); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("stored %q; want a alone, as it was when frozen", got)
		}
	})
}

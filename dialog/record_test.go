package dialog

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordLog keeps the records the recorder (WithRecorder) was handed.
type recordLog struct {
	mu   sync.Mutex
	recs []CallRecord
}

func (l *recordLog) add(r CallRecord) {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
}

func (l *recordLog) all() []CallRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// wantOnePerCall waits for one record of each call in ids, then checks
// there is no other and each is whole: times in order, a result.
func (l *recordLog) wantOnePerCall(t *testing.T, ids []string) {
	t.Helper()
	eventually(t, 2*time.Second, func() error {
		if n := len(l.all()); n < len(ids) {
			return fmt.Errorf("%d records for %d calls", n, len(ids))
		}
		return nil
	})
	recs := l.all()
	if len(recs) != len(ids) {
		t.Errorf("%d records for calls %v: %+v", len(recs), ids, recs)
	}
	for _, r := range recs {
		if !slices.Contains(ids, r.ID) {
			t.Errorf("record of an unknown call: %+v", r)
		}
		if r.Result == "" || r.Start.IsZero() || r.End.Before(r.Start) || !r.Answer.IsZero() && (r.Answer.Before(r.Start) || r.End.Before(r.Answer)) {
			t.Errorf("record not whole: %+v", r)
		}
		if r.Result == resultAnswered && r.Answer.IsZero() {
			t.Errorf("answered call's record has no answer time: %+v", r)
		}
	}
}

package cdr

import (
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestStream adds records to the stream and reads them back newest
// first, a user's only, and a page boundary apart.
func TestStream(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	s := NewStream(rdb, "", 0)
	const n = streamPage + 20
	for i := range n {
		c := record(string(rune('a'+i%26)) + "-" + string(rune('0'+i/26%10)))
		if i == 3 {
			c.To = "600"
		}
		r := FromCall(c)
		r.UniqueID = r.UniqueID + "/" + strconv.Itoa(i)
		if err := s.Write(r, r.AppendCSV(nil)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Recent(t.Context(), 5, "")
	if err != nil || len(got) != 5 || got[0].UniqueID[len(got[0].UniqueID)-3:] != strconv.Itoa(n-1) {
		t.Fatalf("Recent(5): %v %+v", err, got)
	}
	got, err = s.Recent(t.Context(), 10, "600")
	if err != nil || len(got) != 1 || got[0].Dst != "600" {
		t.Fatalf("Recent(600): %v %+v", err, got)
	}
	got, _ = s.Recent(t.Context(), MaxRecent, "")
	if len(got) != n {
		t.Errorf("Recent(all): %d records, want %d", len(got), n)
	}
}

package store

import (
	"path/filepath"
	"testing"
)

func TestBoltWriteLoadDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(map[string][]byte{"a": []byte("1"), "b": []byte("2")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(map[string][]byte{"c": []byte("3")}, []string{"a", "missing"}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b, err = OpenBolt(path) // a new process on the same file
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["b"]) != "2" || string(got["c"]) != "3" {
		t.Fatalf("loaded %q, want b=2 and c=3", got)
	}
}

package cdr

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
)

// MaxRecent bounds how many records one Recent call returns, and MaxScan
// how many it reads looking for a user's.
const (
	MaxRecent = 1000
	MaxScan   = 20000
)

// Reader reads recent records back: the Redis stream, or a file.
type Reader interface {
	// Recent returns up to n records, newest first; with user set, only
	// those user took part in.
	Recent(ctx context.Context, n int, user string) ([]Record, error)
}

// tailBytes is how much of the file's end FileReader reads: about
// MaxScan records of parley's (a record is 250 to 400 bytes).
const tailBytes = 8 << 20

// FileReader reads the newest records from the end of a CSV file. After a
// rotation it sees only the records written since.
type FileReader struct{ Path string }

// Recent implements Reader over the file's last 8 MiB.
func (f FileReader) Recent(_ context.Context, n int, user string) ([]Record, error) {
	out := []Record{}
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return out, err
	}
	off := max(st.Size()-tailBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := file.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return out, err
	}
	if off > 0 {
		// The first line is cut: start after it.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	for len(buf) > 0 && len(out) < n {
		buf = bytes.TrimRight(buf, "\n")
		line := buf
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[i+1:], buf[:i]
		} else {
			buf = nil
		}
		r, err := ParseCSV(line)
		if err != nil && r.UniqueID == "" {
			continue // not a record of ours (a header a tool added)
		}
		if user == "" || r.Involves(user) {
			out = append(out, r)
		}
	}
	return out, nil
}

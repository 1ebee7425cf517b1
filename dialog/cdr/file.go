package cdr

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is the sink that appends records to a CSV file (cdr.path). Each
// record is one write of one line to a file opened for appending, so lines
// never interleave. After a rotation renamed the file, Reopen starts a new
// one at the path; a file that cannot be opened is tried again with the
// next record.
type File struct {
	path string
	f    *os.File
}

// OpenFile opens (creating it and its directory if need be) the file at
// path for appending records.
func OpenFile(path string) (*File, error) {
	f := &File{path: path}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// Name is "file".
func (*File) Name() string { return "file" }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

func (f *File) open() error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o750); err != nil {
		return err
	}
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	f.f = file
	return nil
}

// Write appends line.
func (f *File) Write(_ Record, line []byte) error {
	if f.f == nil {
		if err := f.open(); err != nil {
			return err
		}
	}
	n, err := f.f.Write(line)
	if err == nil && n < len(line) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(line))
	}
	if err != nil {
		// The next record opens the path again: a descriptor gone bad
		// or a file deleted under parley mends itself.
		_ = f.f.Close()
		f.f = nil
	}
	return err
}

// Reopen closes the file and opens the path again: after a rotation
// renamed it, records go to a new file there.
func (f *File) Reopen() error {
	if f.f != nil {
		_ = f.f.Close()
		f.f = nil
	}
	return f.open()
}

// Close closes the file.
func (f *File) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

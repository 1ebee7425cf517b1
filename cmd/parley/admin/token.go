package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the name, inside the store directory (store.path), of the
// file that keeps the admin token parley generated because admin.token is
// empty. The operator commands read it there.
const TokenFile = "admin-token"

// tokenBytes is how much randomness a generated token carries.
const tokenBytes = 32

// NewToken returns a new random admin token: 32 bytes from crypto/rand, in
// hex.
func NewToken() string {
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

// TokenPath returns where the admin token of the store directory dir is
// kept.
func TokenPath(dir string) string { return filepath.Join(dir, TokenFile) }

// ReadToken returns the admin token kept in dir. An error wrapping
// fs.ErrNotExist means there is none yet; an empty file is an error too.
func ReadToken(dir string) (string, error) {
	path := TokenPath(dir)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty; delete it and parley makes a new token on its next start", path)
	}
	return tok, nil
}

// KeepToken returns the admin token kept in dir, first making one with
// NewToken and keeping it there (mode 0600) when there is none; created
// says it was made now. The file appears whole or not at all, and it is
// never replaced: of two starts racing to make it, one wins and the other
// reads the winner's token.
func KeepToken(dir string) (token string, created bool, err error) {
	token, err = ReadToken(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return token, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	token = NewToken()
	if err := createOnce(TokenPath(dir), []byte(token+"\n")); errors.Is(err, fs.ErrExist) {
		token, err = ReadToken(dir)
		return token, false, err
	} else if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return token, true, nil
}

// createOnce writes data to a new file at path, mode 0600, atomically: it
// writes a temporary file beside it and links it into place, which fails
// with fs.ErrExist rather than replace a file already there. Where the
// file system cannot link, it renames instead.
func createOnce(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	err = os.Link(tmp, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Rename(tmp, path)
}

package registrar

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/parley-sip/parley/config"
	"go.yaml.in/yaml/v3"
)

// PasswordsFile is the name, inside the store directory, of the file that
// keeps generated demo passwords.
const PasswordsFile = "passwords.yaml"

// Passwords returns every user's digest password. A user configured with a
// password keeps it. A user with an empty one gets a random password, made
// up on first start and kept in dir/passwords.yaml (mode 0600) so later
// starts reuse it; with dir empty, passwords are made up for this run only.
//
// generated lists, sorted, the users whose password came from parley rather
// than the configuration (new or reused), so the caller can show them.
func Passwords(dir string, users []config.User) (pw map[string]string, generated []string, err error) {
	stored := map[string]string{}
	path := ""
	if dir != "" {
		path = filepath.Join(dir, PasswordsFile)
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, nil, fmt.Errorf("registrar: read passwords: %w", err)
		default:
			if err := yaml.Unmarshal(data, &stored); err != nil {
				return nil, nil, fmt.Errorf("registrar: %s: %w", path, err)
			}
		}
	}
	pw = make(map[string]string, len(users))
	dirty := false
	for _, u := range users {
		if u.Password != "" {
			pw[u.Username] = u.Password
			continue
		}
		p, ok := stored[u.Username]
		if !ok || p == "" {
			p = rand.Text()
			stored[u.Username] = p
			dirty = true
		}
		pw[u.Username] = p
		generated = append(generated, u.Username)
	}
	slices.Sort(generated)
	if path != "" && dirty {
		if err := writePasswords(dir, path, stored); err != nil {
			return nil, nil, err
		}
	}
	return pw, generated, nil
}

// writePasswords replaces the file atomically so a crash never leaves half
// of it.
func writePasswords(dir, path string, pw map[string]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("registrar: store dir: %w", err)
	}
	data, err := yaml.Marshal(pw)
	if err != nil {
		return fmt.Errorf("registrar: encode passwords: %w", err)
	}
	data = append([]byte("# Demo passwords parley generated for users configured without one.\n"), data...)
	f, err := os.CreateTemp(dir, PasswordsFile+".*")
	if err != nil {
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("registrar: write passwords: %w", err)
	}
	return nil
}

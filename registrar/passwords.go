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

// Generated says which users' passwords parley made up rather than took
// from the configuration, so that the caller shows each one once.
type Generated struct {
	// New lists, sorted, the users whose password this call made up: all
	// of them on the first start, a user added since on a later one, and
	// every one on each start without a store directory.
	New []string
	// Kept lists, sorted, the users whose password an earlier start made
	// up, read back from the store directory.
	Kept []string
}

// Passwords returns the digest password of every user that has one. A
// user configured with a password keeps it. A user configured with a
// digest hash instead (ha1 or ha1_sha256) and no password has no entry:
// the hash is its credential, and it gets no password. Any other user gets
// a random password, made up on first start and kept in
// dir/passwords.yaml (mode 0600) so later starts reuse it; with dir empty,
// passwords are made up for this run only. gen says which passwords were
// made up, now or before.
func Passwords(dir string, users []config.User) (pw map[string]string, gen Generated, err error) {
	stored := map[string]string{}
	path := ""
	if dir != "" {
		path = filepath.Join(dir, PasswordsFile)
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, Generated{}, fmt.Errorf("registrar: read passwords: %w", err)
		default:
			if err := yaml.Unmarshal(data, &stored); err != nil {
				return nil, Generated{}, fmt.Errorf("registrar: %s: %w", path, err)
			}
		}
	}
	pw = make(map[string]string, len(users))
	for _, u := range users {
		switch {
		case u.Password != "":
			pw[u.Username] = u.Password
		case u.HA1 != "" || u.HA1SHA256 != "":
		case stored[u.Username] != "":
			pw[u.Username] = stored[u.Username]
			gen.Kept = append(gen.Kept, u.Username)
		default:
			p := rand.Text()
			stored[u.Username] = p
			pw[u.Username] = p
			gen.New = append(gen.New, u.Username)
		}
	}
	slices.Sort(gen.New)
	slices.Sort(gen.Kept)
	if path != "" && len(gen.New) > 0 {
		if err := writePasswords(dir, path, stored); err != nil {
			return nil, Generated{}, err
		}
	}
	return pw, gen, nil
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

package registrar

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltBucket holds one key per user whose value is the JSON array of that
// user's bindings.
var boltBucket = []byte("bindings")

// boltStore keeps bindings in a bbolt file.
type boltStore struct {
	db *bolt.DB
}

// OpenBoltStore opens (creating it and its directory if needed) the bbolt
// file at path. Only one process may hold the file; a second one waits a
// second and then fails.
func OpenBoltStore(path string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("registrar: store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("registrar: open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("registrar: init store %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Load() ([]Binding, error) {
	var out []Binding
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(boltBucket).ForEach(func(k, v []byte) error {
			var bs []Binding
			if err := json.Unmarshal(v, &bs); err != nil {
				// One damaged record must not lose everyone's bindings.
				return nil
			}
			out = append(out, bs...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registrar: load store: %w", err)
	}
	return out, nil
}

func (s *boltStore) Save(user string, bs []Binding) error {
	return s.SaveBatch(map[string][]Binding{user: bs})
}

// SaveBatch writes the whole batch in one transaction: one fsync however
// many users changed.
func (s *boltStore) SaveBatch(batch map[string][]Binding) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		for user, bs := range batch {
			if len(bs) == 0 {
				if err := b.Delete([]byte(user)); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(bs)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(user), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registrar: save store: %w", err)
	}
	return nil
}

func (s *boltStore) Close() error { return s.db.Close() }

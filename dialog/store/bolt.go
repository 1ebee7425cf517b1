package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// callsBucket holds one key per call ID whose value is its checkpoint.
var callsBucket = []byte("calls")

// Bolt keeps checkpoints in a bbolt file: the embedded store of a single
// node. Each Write is one transaction and one disk sync, made by the
// B2BUA's checkpoint writer, never on the signalling path.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens (creating it and its directory if needed) the bbolt file
// at path. Only one process may hold it; a second one fails after a second.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(callsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init checkpoint store %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Write stores put and deletes del in one transaction.
func (b *Bolt) Write(put map[string][]byte, del []string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(callsBucket)
		for _, id := range del {
			if err := bk.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for id, data := range put {
			if err := bk.Put([]byte(id), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load returns every checkpoint in the file.
func (b *Bolt) Load() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(callsBucket).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load checkpoints: %w", err)
	}
	return out, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

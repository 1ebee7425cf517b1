package cdr

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// StreamKey is the Redis stream every node adds its records to.
const StreamKey = "parley:cdr"

// DefaultStreamLen is about how many records the stream keeps (XADD
// MAXLEN ~): the oldest go first.
const DefaultStreamLen = 100000

// streamTimeout bounds one XADD or one page of XREVRANGE.
const streamTimeout = 2 * time.Second

// Stream is the sink that adds records to a Redis stream shared by the
// nodes of a cluster (store.redis), so that they give one history. Each
// entry holds the record's CSV line in its field "csv".
type Stream struct {
	rdb    redis.Cmdable
	key    string
	maxLen int64
}

// NewStream returns the sink on rdb's stream key (StreamKey when empty),
// trimmed to about maxLen entries (DefaultStreamLen when 0 or less).
func NewStream(rdb redis.Cmdable, key string, maxLen int64) *Stream {
	if key == "" {
		key = StreamKey
	}
	if maxLen <= 0 {
		maxLen = DefaultStreamLen
	}
	return &Stream{rdb: rdb, key: key, maxLen: maxLen}
}

// Name is "redis".
func (*Stream) Name() string { return "redis" }

// Write adds the record's line to the stream.
func (s *Stream) Write(_ Record, line []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	return s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.key, MaxLen: s.maxLen, Approx: true,
		Values: []any{"csv", line[:len(line)-1]},
	}).Err()
}

// Close does nothing: the Redis client is cmd's.
func (*Stream) Close() error { return nil }

// streamPage is how many entries one XREVRANGE reads.
const streamPage = 500

// Recent returns up to n records from the stream, newest first, those of
// user only when user is set. It reads at most MaxScan entries.
func (s *Stream) Recent(ctx context.Context, n int, user string) ([]Record, error) {
	out := []Record{}
	end := "+"
	for scanned := 0; scanned < MaxScan && len(out) < n; {
		pctx, cancel := context.WithTimeout(ctx, streamTimeout)
		msgs, err := s.rdb.XRevRangeN(pctx, s.key, end, "-", streamPage).Result()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
		for _, m := range msgs {
			scanned++
			line, _ := m.Values["csv"].(string)
			r, err := ParseCSV([]byte(line))
			if err != nil && r.UniqueID == "" {
				continue
			}
			if user == "" || r.Involves(user) {
				out = append(out, r)
				if len(out) == n {
					break
				}
			}
		}
		if len(msgs) < streamPage {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	return out, nil
}

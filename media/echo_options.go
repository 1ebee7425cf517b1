package media

import (
	"errors"
	"log/slog"
	"time"
)

// EchoOption configures an Echo. Options check their value and may fail.
type EchoOption func(*Echo) error

// WithEchoTimeout ends a session (see EchoSession.Done) when no RTP arrives
// for d while the peer is meant to send. Zero, the default, never does.
func WithEchoTimeout(d time.Duration) EchoOption {
	return func(e *Echo) error {
		if d < 0 {
			return errors.New("media: echo timeout must not be negative")
		}
		e.timeout = d
		return nil
	}
}

// WithEchoLogger sets the logger sessions log to. The default discards.
func WithEchoLogger(l *slog.Logger) EchoOption {
	return func(e *Echo) error {
		if l == nil {
			return errors.New("media: nil logger")
		}
		e.log = l
		return nil
	}
}

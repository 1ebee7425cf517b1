package dialog

import (
	"context"
	"log/slog"
)

// callLog is a call's logger: every record carries the call's ID. It is
// what s.log.With("call", id) would give, without the copy of the handler
// that With makes for every call, which stayed for the call's life (about
// 0.4 KB a call) even when the level let nothing through.
type callLog struct {
	l  *slog.Logger
	id string
}

func (cl callLog) Debug(msg string, args ...any) { cl.log(slog.LevelDebug, msg, args) }
func (cl callLog) Info(msg string, args ...any)  { cl.log(slog.LevelInfo, msg, args) }
func (cl callLog) Warn(msg string, args ...any)  { cl.log(slog.LevelWarn, msg, args) }
func (cl callLog) Error(msg string, args ...any) { cl.log(slog.LevelError, msg, args) }

// enabled reports whether records at level are logged. Hot paths ask it
// first: the arguments of a call that logs nothing are still converted to
// interfaces, which allocates.
func (cl callLog) enabled(level slog.Level) bool {
	return cl.l.Enabled(context.Background(), level)
}

func (cl callLog) log(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !cl.l.Enabled(ctx, level) {
		return
	}
	cl.l.Log(ctx, level, msg, append([]any{"call", cl.id}, args...)...)
}

package trunk

import "log/slog"

// discard is the logger of registrations the tests build.
var discard = slog.New(slog.DiscardHandler)

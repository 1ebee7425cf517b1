package admin

import "errors"

// ErrBadOption means an option was given a value it cannot use.
var ErrBadOption = errors.New("admin: bad option")

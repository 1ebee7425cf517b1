package main

import "github.com/parley-sip/parley/cmd/parley/admin"

// publishedOptions turns what services published (service.Env.Publish)
// into admin options: the rooms' directory becomes /api/rooms.
func publishedOptions(published []any) []admin.Option {
	var opts []admin.Option
	for _, v := range published {
		if r, ok := v.(admin.Rooms); ok {
			opts = append(opts, admin.WithRooms(r))
		}
	}
	return opts
}

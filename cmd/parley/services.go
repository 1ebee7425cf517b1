package main

// The built-in services parley offers. Each package registers itself with
// dialog/service when it is imported, as CoreDNS plugins do; buildMedia
// then sets up every one the config turns on. A new service is one more
// import here, and nothing in dialog changes.
import (
	_ "github.com/parley-sip/parley/dialog/service/echo"
	_ "github.com/parley-sip/parley/dialog/service/paging"
	_ "github.com/parley-sip/parley/dialog/service/playback"
	_ "github.com/parley-sip/parley/dialog/service/rooms"
)

package room

import "net/netip"

var netipLoop = netip.MustParseAddrPort("127.0.0.1:9")

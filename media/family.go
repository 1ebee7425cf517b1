package media

import "net/netip"

// Family is the IP address family a bridge side binds its sockets on: a
// call between an IPv4 phone and an IPv6 phone gets a bridge with one side
// of each, and the relay forwards between them.
type Family uint8

// The families a side may ask for.
const (
	// FamilyDefault is the family of the relay's own address (NewRelay's
	// addr), what Relay.Open binds both sides on.
	FamilyDefault Family = 0
	// IPv4 binds on the relay's IPv4 address.
	IPv4 Family = 4
	// IPv6 binds on the relay's IPv6 address (NewRelay's addr when that is
	// IPv6, else the one of WithRelayAddress6).
	IPv6 Family = 6
)

// FamilyOf returns the family of addr, a phone's address: IPv4 for an IPv4
// or IPv4-mapped IPv6 address, IPv6 for another IPv6 address, and
// FamilyDefault for an invalid one.
func FamilyOf(addr netip.Addr) Family {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return FamilyDefault
	case addr.Is4():
		return IPv4
	}
	return IPv6
}

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "default"
}

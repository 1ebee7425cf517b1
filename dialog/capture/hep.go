package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// HEPv3 (EEP) puts each captured message in one packet: the four bytes
// "HEP3", the packet's total length (16 bits, network order), then
// chunks. A chunk is a vendor ID and a type (16 bits each; vendor 0 is
// the generic set), its length including this 6-byte head (16 bits), and
// its value. The chunk types parley writes, all of vendor 0:
const (
	chunkIPFamily  = 0x0001 // uint8: 2 IPv4, 10 IPv6
	chunkIPProto   = 0x0002 // uint8: the IP protocol, 6 TCP, 17 UDP
	chunkIPv4Src   = 0x0003 // 4 bytes
	chunkIPv4Dst   = 0x0004
	chunkIPv6Src   = 0x0005 // 16 bytes
	chunkIPv6Dst   = 0x0006
	chunkSrcPort   = 0x0007 // uint16
	chunkDstPort   = 0x0008
	chunkTimeSec   = 0x0009 // uint32: Unix seconds
	chunkTimeUsec  = 0x000a // uint32: microseconds within the second
	chunkProtoType = 0x000b // uint8: what the payload is, 0x01 SIP
	chunkAgentID   = 0x000c // uint32: the capture node's ID
	chunkAuthKey   = 0x000e // octets: the collector's password
	chunkPayload   = 0x000f // octets: the message itself
	chunkNodeName  = 0x0013 // octets: the capture node's name
)

// HEP values parley uses.
const (
	familyIPv4 = 2
	familyIPv6 = 10
	// ProtoTCP and ProtoUDP are the IP protocols of Packet.Protocol.
	ProtoTCP = 6
	ProtoUDP = 17
	// TypeSIP is the HEP protocol type of a SIP message.
	TypeSIP = 0x01
)

const (
	hepHeader   = 6 // "HEP3" and the total length
	chunkHeader = 6 // vendor, type, length
	// MaxHEP is the largest HEP packet: its length field has 16 bits.
	MaxHEP = 0xffff
)

// Errors of AppendHEP.
var (
	// ErrTooLarge is a packet past MaxHEP: the message does not fit.
	ErrTooLarge = errors.New("HEP packet larger than 65535 bytes")
	// ErrAddress is a packet whose addresses are missing or of two IP
	// families.
	ErrAddress = errors.New("HEP packet needs a source and destination of one IP family")
)

// Packet is one captured message as HEPv3 carries it.
type Packet struct {
	// Protocol is the IP protocol the message went over: ProtoUDP or
	// ProtoTCP.
	Protocol uint8
	// Src and Dst are where the message went from and to; both IPv4 or
	// both IPv6.
	Src, Dst netip.AddrPort
	// Time is when it was read or written.
	Time time.Time
	// Type is what the payload is: TypeSIP.
	Type uint8
	// AgentID is the capture node's ID (capture.hep_id).
	AgentID uint32
	// AuthKey is the collector's password (capture.hep_password); "" sends
	// no auth key chunk.
	AuthKey string
	// NodeName names the capture node (node.id); "" sends no chunk.
	NodeName string
	// Payload is the message, as on the wire.
	Payload []byte
}

// AppendHEP appends p, encoded as one HEPv3 packet, to dst. The chunks
// follow the order of captagent's fixed header (family, protocol, ports,
// time, type, agent ID, addresses, auth key, payload), which receivers
// that read HEP at fixed offsets (old sngrep) expect; the node name comes
// last, where such receivers ignore it.
func AppendHEP(dst []byte, p *Packet) ([]byte, error) {
	src, dstAddr := p.Src.Addr(), p.Dst.Addr()
	if !src.IsValid() || !dstAddr.IsValid() || src.Is4() != dstAddr.Is4() {
		return dst, ErrAddress
	}
	ipLen := 4
	family := uint8(familyIPv4)
	srcType, dstType := uint16(chunkIPv4Src), uint16(chunkIPv4Dst)
	if src.Is6() {
		ipLen, family = 16, familyIPv6
		srcType, dstType = chunkIPv6Src, chunkIPv6Dst
	}
	size := hepHeader +
		3*(chunkHeader+1) + // family, protocol, type
		2*(chunkHeader+2) + // ports
		3*(chunkHeader+4) + // seconds, microseconds, agent ID
		2*(chunkHeader+ipLen) +
		chunkHeader + len(p.Payload)
	if p.AuthKey != "" {
		size += chunkHeader + len(p.AuthKey)
	}
	if p.NodeName != "" {
		size += chunkHeader + len(p.NodeName)
	}
	if size > MaxHEP {
		return dst, ErrTooLarge
	}
	start := len(dst)
	dst = append(dst, 'H', 'E', 'P', '3')
	dst = binary.BigEndian.AppendUint16(dst, uint16(size))
	dst = append(chunkHead(dst, chunkIPFamily, 1), family)
	dst = append(chunkHead(dst, chunkIPProto, 1), p.Protocol)
	dst = binary.BigEndian.AppendUint16(chunkHead(dst, chunkSrcPort, 2), p.Src.Port())
	dst = binary.BigEndian.AppendUint16(chunkHead(dst, chunkDstPort, 2), p.Dst.Port())
	dst = binary.BigEndian.AppendUint32(chunkHead(dst, chunkTimeSec, 4), uint32(p.Time.Unix()))
	dst = binary.BigEndian.AppendUint32(chunkHead(dst, chunkTimeUsec, 4), uint32(p.Time.Nanosecond()/1000))
	dst = append(chunkHead(dst, chunkProtoType, 1), p.Type)
	dst = binary.BigEndian.AppendUint32(chunkHead(dst, chunkAgentID, 4), p.AgentID)
	dst = append(chunkHead(dst, srcType, ipLen), src.AsSlice()...)
	dst = append(chunkHead(dst, dstType, ipLen), dstAddr.AsSlice()...)
	if p.AuthKey != "" {
		dst = append(chunkHead(dst, chunkAuthKey, len(p.AuthKey)), p.AuthKey...)
	}
	dst = append(chunkHead(dst, chunkPayload, len(p.Payload)), p.Payload...)
	if p.NodeName != "" {
		dst = append(chunkHead(dst, chunkNodeName, len(p.NodeName)), p.NodeName...)
	}
	if len(dst)-start != size {
		panic("capture: HEP size miscounted")
	}
	return dst, nil
}

// chunkHead appends the head of a chunk of vendor 0 whose value has n
// bytes; the value follows.
func chunkHead(dst []byte, typ uint16, n int) []byte {
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	return binary.BigEndian.AppendUint16(dst, uint16(chunkHeader+n))
}

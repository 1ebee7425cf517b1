package capture

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// decoded is a HEPv3 packet read back chunk by chunk, as a collector
// reads it, independently of AppendHEP.
type decoded struct {
	family, proto, ptype uint8
	src, dst             netip.Addr
	sport, dport         uint16
	sec, usec, agent     uint32
	auth, node           string
	payload              []byte
	order                []uint16 // chunk types in the order they came
}

func decodeHEP(b []byte) (*decoded, error) {
	if len(b) < 6 || string(b[:4]) != "HEP3" {
		return nil, errors.New("no HEP3 header")
	}
	if n := int(binary.BigEndian.Uint16(b[4:6])); n != len(b) {
		return nil, fmt.Errorf("length field %d, packet %d bytes", n, len(b))
	}
	d := &decoded{}
	for rest := b[6:]; len(rest) > 0; {
		if len(rest) < 6 {
			return nil, errors.New("truncated chunk head")
		}
		vendor, typ, n := binary.BigEndian.Uint16(rest), binary.BigEndian.Uint16(rest[2:]), int(binary.BigEndian.Uint16(rest[4:]))
		if n < 6 || n > len(rest) {
			return nil, fmt.Errorf("chunk %#x: bad length %d", typ, n)
		}
		if vendor != 0 {
			return nil, fmt.Errorf("chunk %#x: vendor %#x", typ, vendor)
		}
		v := rest[6:n]
		rest = rest[n:]
		d.order = append(d.order, typ)
		want := map[uint16]int{1: 1, 2: 1, 3: 4, 4: 4, 5: 16, 6: 16, 7: 2, 8: 2, 9: 4, 10: 4, 11: 1, 12: 4}
		if w, ok := want[typ]; ok && len(v) != w {
			return nil, fmt.Errorf("chunk %#x: %d bytes, want %d", typ, len(v), w)
		}
		switch typ {
		case 1:
			d.family = v[0]
		case 2:
			d.proto = v[0]
		case 3, 5:
			d.src, _ = netip.AddrFromSlice(v)
		case 4, 6:
			d.dst, _ = netip.AddrFromSlice(v)
		case 7:
			d.sport = binary.BigEndian.Uint16(v)
		case 8:
			d.dport = binary.BigEndian.Uint16(v)
		case 9:
			d.sec = binary.BigEndian.Uint32(v)
		case 10:
			d.usec = binary.BigEndian.Uint32(v)
		case 11:
			d.ptype = v[0]
		case 12:
			d.agent = binary.BigEndian.Uint32(v)
		case 14:
			d.auth = string(v)
		case 15:
			d.payload = v
		case 19:
			d.node = string(v)
		default:
			return nil, fmt.Errorf("unexpected chunk %#x", typ)
		}
	}
	return d, nil
}

// golden is a REGISTER from 192.0.2.10:5062 to 192.0.2.1:5060 over UDP,
// at 2026-12-06 10:00:00.123456 UTC, from capture node 2001 with the
// password "s3cret", named "pbx1", laid out by hand from the HEPv3
// specification.
var golden = strings.Join([]string{
	"48455033", "009b", // "HEP3", total length 155
	"0000 0001 0007 02",           // IP family: IPv4
	"0000 0002 0007 11",           // IP protocol: UDP
	"0000 0007 0008 13c6",         // source port 5062
	"0000 0008 0008 13c4",         // destination port 5060
	"0000 0009 000a 6b153220",     // seconds
	"0000 000a 000a 0001e240",     // microseconds 123456
	"0000 000b 0007 01",           // protocol type: SIP
	"0000 000c 000a 000007d1",     // capture agent 2001
	"0000 0003 000a c000020a",     // source 192.0.2.10
	"0000 0004 000a c0000201",     // destination 192.0.2.1
	"0000 000e 000c 733363726574", // auth key "s3cret"
	"0000 000f 0028 5245474953544552207369703a6578616d706c652e636f6d205349502f322e300d0a", // payload
	"0000 0013 000a 70627831", // node name "pbx1"
}, "")

const goldenPayload = "REGISTER sip:example.com SIP/2.0\r\n"

func TestAppendHEPGolden(t *testing.T) {
	want, err := hex.DecodeString(strings.ReplaceAll(golden, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	p := &Packet{
		Protocol: ProtoUDP,
		Src:      netip.MustParseAddrPort("192.0.2.10:5062"),
		Dst:      netip.MustParseAddrPort("192.0.2.1:5060"),
		Time:     time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC),
		Type:     TypeSIP, AgentID: 2001, AuthKey: "s3cret", NodeName: "pbx1",
		Payload: []byte(goldenPayload),
	}
	got, err := AppendHEP([]byte("prefix"), p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatal("AppendHEP did not append")
	}
	got = got[len("prefix"):]
	if !bytes.Equal(got, want) {
		t.Fatalf("HEP packet\n got %x\nwant %x", got, want)
	}
}

func TestAppendHEPDecodes(t *testing.T) {
	at := time.Unix(1796551200, 987654000)
	tests := []struct {
		name   string
		p      Packet
		family uint8
		order  []uint16
	}{
		{"IPv4 over TCP, no key, no name", Packet{Protocol: ProtoTCP,
			Src: netip.MustParseAddrPort("127.0.0.1:40000"), Dst: netip.MustParseAddrPort("127.0.0.1:5060")},
			2, []uint16{1, 2, 7, 8, 9, 10, 11, 12, 3, 4, 15}},
		{"IPv6 with key and name", Packet{Protocol: ProtoUDP, AuthKey: "k", NodeName: "node-a",
			Src: netip.MustParseAddrPort("[2001:db8::1]:5060"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5070")},
			10, []uint16{1, 2, 7, 8, 9, 10, 11, 12, 5, 6, 14, 15, 19}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			p.Time, p.Type, p.AgentID, p.Payload = at, TypeSIP, 4294967295, []byte("SIP/2.0 200 OK\r\n\r\n")
			b, err := AppendHEP(nil, &p)
			if err != nil {
				t.Fatal(err)
			}
			d, err := decodeHEP(b)
			if err != nil {
				t.Fatal(err)
			}
			if d.family != tt.family || d.proto != p.Protocol || d.ptype != TypeSIP || d.agent != p.AgentID {
				t.Errorf("family %d proto %d type %d agent %d", d.family, d.proto, d.ptype, d.agent)
			}
			if d.src != p.Src.Addr() || d.dst != p.Dst.Addr() || d.sport != p.Src.Port() || d.dport != p.Dst.Port() {
				t.Errorf("addresses %s:%d -> %s:%d, want %s -> %s", d.src, d.sport, d.dst, d.dport, p.Src, p.Dst)
			}
			if d.sec != 1796551200 || d.usec != 987654 {
				t.Errorf("time %d.%06d", d.sec, d.usec)
			}
			if d.auth != p.AuthKey || d.node != p.NodeName || string(d.payload) != string(p.Payload) {
				t.Errorf("auth %q node %q payload %q", d.auth, d.node, d.payload)
			}
			if fmt.Sprint(d.order) != fmt.Sprint(tt.order) {
				t.Errorf("chunk order %v, want %v", d.order, tt.order)
			}
		})
	}
}

func TestAppendHEPRefuses(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("192.0.2.1:5060"), netip.MustParseAddrPort("[2001:db8::1]:5060")
	tests := []struct {
		name string
		p    Packet
		err  error
	}{
		{"two families", Packet{Src: v4, Dst: v6}, ErrAddress},
		{"no source", Packet{Dst: v4}, ErrAddress},
		{"too large", Packet{Src: v4, Dst: v4, Payload: make([]byte, MaxHEP)}, ErrTooLarge},
	}
	for _, tt := range tests {
		if b, err := AppendHEP(nil, &tt.p); !errors.Is(err, tt.err) || len(b) != 0 {
			t.Errorf("%s: %d bytes, error %v; want %v", tt.name, len(b), err, tt.err)
		}
	}
}

// FuzzAppendHEP checks that whatever fits is read back whole.
func FuzzAppendHEP(f *testing.F) {
	f.Add([]byte(goldenPayload), "s3cret", "pbx1", true)
	f.Add([]byte{}, "", "", false)
	f.Fuzz(func(t *testing.T, payload []byte, key, node string, v6 bool) {
		src, dst := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")
		if v6 {
			src, dst = netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::2]:2")
		}
		p := &Packet{Protocol: ProtoUDP, Src: src, Dst: dst, Type: TypeSIP, AuthKey: key, NodeName: node, Payload: payload}
		b, err := AppendHEP(nil, p)
		if errors.Is(err, ErrTooLarge) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeHEP(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.payload, payload) || d.auth != key || d.node != node {
			t.Fatal("read back differs")
		}
	})
}

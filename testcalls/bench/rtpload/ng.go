//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"
)

// ngClient speaks rtpengine's ng control protocol: a cookie, a space and a
// bencoded dictionary, over UDP; the reply carries the same cookie.
type ngClient struct {
	conn *net.UDPConn
	buf  []byte
}

func newNGClient(addr string) (*ngClient, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp4", nil, ua)
	if err != nil {
		return nil, err
	}
	return &ngClient{conn: conn, buf: make([]byte, 65536)}, nil
}

func (c *ngClient) Close() error { return c.conn.Close() }

// do sends one command and returns the reply dictionary; it retries a lost
// datagram and fails on result "error".
func (c *ngClient) do(ctx context.Context, cmd map[string]any) (map[string]any, error) {
	cookie := strconv.FormatUint(rand.Uint64(), 36)
	var msg bytes.Buffer
	msg.WriteString(cookie + " ")
	bencode(&msg, cmd)
	for try := 0; try < 5; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := c.conn.Write(msg.Bytes()); err != nil {
			return nil, err
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				return nil, err
			}
			got, rest, ok := bytes.Cut(c.buf[:n], []byte(" "))
			if !ok || string(got) != cookie {
				continue // a late reply to an earlier try
			}
			v, _, err := bdecode(rest)
			if err != nil {
				return nil, fmt.Errorf("ng reply: %w", err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("ng reply is not a dictionary")
			}
			if r, _ := d["result"].(string); r != "ok" && r != "pong" {
				return d, fmt.Errorf("ng %v: result %q: %v", cmd["command"], r, d["error-reason"])
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("ng %v: no reply from rtpengine", cmd["command"])
}

// bencode writes v (string, []byte, int, []string, map[string]any).
func bencode(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case string:
		fmt.Fprintf(b, "%d:%s", len(x), x)
	case []byte:
		fmt.Fprintf(b, "%d:", len(x))
		b.Write(x)
	case int:
		fmt.Fprintf(b, "i%de", x)
	case []string:
		b.WriteByte('l')
		for _, s := range x {
			bencode(b, s)
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // bencode wants sorted keys
		b.WriteByte('d')
		for _, k := range keys {
			bencode(b, k)
			bencode(b, x[k])
		}
		b.WriteByte('e')
	default:
		panic(fmt.Sprintf("bencode: %T", v))
	}
}

// bdecode decodes one value: strings, integers, lists and dictionaries.
func bdecode(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("bencode: truncated")
	}
	switch {
	case b[0] == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, errors.New("bencode: unterminated integer")
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		return n, b[end+1:], err
	case b[0] == 'l':
		var out []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			v, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		if len(b) == 0 {
			return nil, nil, errors.New("bencode: unterminated list")
		}
		return out, b[1:], nil
	case b[0] == 'd':
		out := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			v, rest, err := bdecode(rest)
			if err != nil {
				return nil, nil, err
			}
			ks, _ := k.(string)
			out[ks], b = v, rest
		}
		if len(b) == 0 {
			return nil, nil, errors.New("bencode: unterminated dictionary")
		}
		return out, b[1:], nil
	case b[0] >= '0' && b[0] <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, errors.New("bencode: bad string")
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || colon+1+n > len(b) {
			return nil, nil, errors.New("bencode: bad string length")
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	}
	return nil, nil, fmt.Errorf("bencode: unexpected %q", b[0])
}

// rtpengineRelay sets calls up in rtpengine with offer/answer and frees
// them with delete.
type rtpengineRelay struct {
	ng    *ngClient
	calls []string // call-ids
	run   string
}

func newRTPEngineRelay(addr string) (*rtpengineRelay, error) {
	ng, err := newNGClient(addr)
	if err != nil {
		return nil, err
	}
	return &rtpengineRelay{ng: ng, run: strconv.FormatUint(rand.Uint64(), 36)}, nil
}

func (r *rtpengineRelay) name() string { return "rtpengine" }

// setup offers a's SDP and answers with b's for each call; the offer's
// reply names rtpengine's port facing the callee, the answer's the one
// facing the caller.
func (r *rtpengineRelay) setup(ctx context.Context, calls int, a, b netip.AddrPort) (aDst, bDst []netip.AddrPort, err error) {
	// Probe first so that a missing daemon fails fast and clearly.
	if _, err := r.ng.do(ctx, map[string]any{"command": "ping"}); err != nil {
		return nil, nil, fmt.Errorf("rtpengine ping: %w", err)
	}
	aDst = make([]netip.AddrPort, calls)
	bDst = make([]netip.AddrPort, calls)
	for i := range calls {
		callID := fmt.Sprintf("rtpload-%s-%d", r.run, i)
		off, err := r.ng.do(ctx, map[string]any{
			"command": "offer", "call-id": callID, "from-tag": "a" + strconv.Itoa(i),
			"sdp": string(sdpFor(a)), "flags": []string{"trust-address"},
			"replace": []string{"origin", "session-connection"},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("call %d: %w", i, err)
		}
		r.calls = append(r.calls, callID)
		sdp, _ := off["sdp"].(string)
		if bDst[i], err = sdpAudioAddr([]byte(sdp)); err != nil {
			return nil, nil, fmt.Errorf("call %d offer: %w", i, err)
		}
		ans, err := r.ng.do(ctx, map[string]any{
			"command": "answer", "call-id": callID, "from-tag": "a" + strconv.Itoa(i), "to-tag": "b" + strconv.Itoa(i),
			"sdp": string(sdpFor(b)), "flags": []string{"trust-address"},
			"replace": []string{"origin", "session-connection"},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("call %d: %w", i, err)
		}
		sdp, _ = ans["sdp"].(string)
		if aDst[i], err = sdpAudioAddr([]byte(sdp)); err != nil {
			return nil, nil, fmt.Errorf("call %d answer: %w", i, err)
		}
	}
	return aDst, bDst, nil
}

// teardown deletes every call it set up.
func (r *rtpengineRelay) teardown(ctx context.Context) error {
	var first error
	for i, id := range r.calls {
		if _, err := r.ng.do(ctx, map[string]any{"command": "delete", "call-id": id, "from-tag": "a" + strconv.Itoa(i)}); err != nil && first == nil {
			first = err
		}
	}
	r.calls = nil
	r.ng.Close()
	return first
}

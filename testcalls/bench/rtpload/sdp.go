//go:build linux

package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
)

// sdpFor is a G.711 A-law offer or answer for RTP at addr.
func sdpFor(addr netip.AddrPort) []byte {
	id := rand.Uint32()
	return fmt.Appendf(nil, "v=0\r\no=- %d %d IN IP4 %s\r\ns=rtpload\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n",
		id, id, addr.Addr(), addr.Addr(), addr.Port())
}

// sdpAudioAddr returns where an SDP body asks for audio RTP: its c= address
// (media level over session level) and the first audio m= port.
func sdpAudioAddr(body []byte) (netip.AddrPort, error) {
	var sessionC, mediaC string
	port := -1
	inAudio := false
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "m="):
			if port >= 0 {
				inAudio = false
				continue
			}
			f := strings.Fields(line[2:])
			inAudio = len(f) >= 2 && f[0] == "audio"
			if inAudio {
				p, err := strconv.Atoi(f[1])
				if err != nil {
					return netip.AddrPort{}, fmt.Errorf("bad m= line %q", line)
				}
				port = p
			}
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) < 3 {
				continue
			}
			if port < 0 && !inAudio {
				sessionC = f[2]
			} else if inAudio {
				mediaC = f[2]
			}
		}
	}
	if port <= 0 {
		return netip.AddrPort{}, fmt.Errorf("no audio stream with a port in SDP:\n%s", body)
	}
	c := sessionC
	if mediaC != "" {
		c = mediaC
	}
	ip, err := netip.ParseAddr(c)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("SDP c= address %q: %w", c, err)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

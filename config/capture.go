package config

import (
	"net"
	"strconv"
	"strings"
)

// Capture says where copies of the SIP messages go.
type Capture struct {
	// HEP is the host:port of a HEPv3 collector (Homer, sngrep -L) that
	// gets a copy of every SIP message parley sends and receives, over
	// UDP; "" turns it off. A host name is resolved once, at start.
	HEP string `yaml:"hep"`
	// HEPID is the capture node ID in every packet.
	HEPID uint32 `yaml:"hep_id"`
	// HEPPassword is the collector's auth key; "" sends none.
	HEPPassword string `yaml:"hep_password"`
}

// maxHEPPassword bounds capture.hep_password: it goes into every packet.
const maxHEPPassword = 256

// validateCapture checks capture.*.
func (c *Config) validateCapture() error {
	cp := c.Capture
	if cp.HEP != "" {
		host, port, err := net.SplitHostPort(cp.HEP)
		if err != nil || host == "" {
			return bad("capture.hep", "%q: want host:port of a HEP collector (\"\": off)", cp.HEP)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad("capture.hep", "port %q is not 1..65535", port)
		}
	}
	if len(cp.HEPPassword) > maxHEPPassword || strings.ContainsAny(cp.HEPPassword, "\r\n\x00") {
		return bad("capture.hep_password", "want one line of at most %d bytes", maxHEPPassword)
	}
	return nil
}

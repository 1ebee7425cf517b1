package main

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
)

// printWelcome tells a newcomer how to point a softphone at parley.
func printWelcome(w io.Writer, cfg *config.Config, b2b *dialog.Server, pw map[string]string, generated []string) {
	addr := b2b.Addr("udp")
	if addr == "" {
		addr = b2b.Addr("tcp")
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = guessLANAddress()
	}
	if cfg.SIP.PublicAddress != "" {
		host = cfg.SIP.PublicAddress
	}
	fmt.Fprintf(w, "\nparley is running.\n\nTo register a softphone (Linphone, Zoiper, MicroSIP, baresip):\n")
	fmt.Fprintf(w, "  SIP server / proxy: %s:%s (UDP or TCP)\n  domain / realm:     %s\n", host, port, cfg.SIP.Realm)
	users := make([]string, 0, len(pw))
	for u := range pw {
		users = append(users, u)
	}
	sort.Strings(users)
	gen := map[string]bool{}
	for _, g := range generated {
		gen[g] = true
	}
	for _, u := range users {
		note := ""
		if gen[u] {
			note = "  (generated"
			if cfg.Store.Path != "" {
				note += ", kept in " + filepath.Join(cfg.Store.Path, "passwords.yaml")
			}
			note += ")"
		}
		fmt.Fprintf(w, "  user %-8s password %s%s\n", u, pw[u], note)
	}
	if cfg.Services.Echo != "" {
		fmt.Fprintf(w, "\nDial %s for the echo service.\n", cfg.Services.Echo)
	}
	if ip := net.ParseIP(cfg.RTP.Address); ip != nil && ip.IsLoopback() && !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(w, "\nNote: rtp.address is %s, so only phones on this host get audio.\n"+
			"For phones on your network, set rtp.address to this host's address (e.g. %s) in a config file.\n", cfg.RTP.Address, host)
	}
	if cfg.Admin.Listen != "" {
		fmt.Fprintf(w, "Metrics and health: http://%s/metrics  /healthz  /readyz\n", cfg.Admin.Listen)
		fmt.Fprintf(w, "Calls and registrations: parley calls, parley registrations (http://%s/api/)\n", cfg.Admin.Listen)
	}
	fmt.Fprintln(w)
}

func guessLANAddress() string {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

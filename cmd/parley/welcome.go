package main

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/registrar"
)

// credentials are the secrets the welcome speaks of. It shows only those
// parley made up on this start: a password or token from the config file
// is never printed, and one made on an earlier start is named by the file
// that keeps it.
type credentials struct {
	passwords map[string]string
	generated registrar.Generated
	token     adminToken
}

// printWelcome tells a newcomer how to point a softphone at parley.
func printWelcome(w io.Writer, cfg *config.Config, b2b *dialog.Server, cred credentials) {
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
	if tlsAddr := b2b.Addr("tls"); tlsAddr != "" {
		_, tlsPort, _ := net.SplitHostPort(tlsAddr)
		fmt.Fprintf(w, "  over TLS:           %s:%s (transport=tls)\n", host, tlsPort)
	}
	printUsers(w, cfg, cred)
	if cfg.Services.Echo != "" {
		fmt.Fprintf(w, "\nDial %s for the echo service.\n", cfg.Services.Echo)
	}
	fmt.Fprint(w, rtpNote(cfg, host))
	if cfg.Admin.Listen != "" {
		fmt.Fprintf(w, "Metrics and health: http://%s/metrics  /healthz  /readyz\n", cfg.Admin.Listen)
		fmt.Fprintf(w, "Calls and registrations: parley calls, parley registrations (http://%s/api/)\n", cfg.Admin.Listen)
		printToken(w, cred.token)
	}
	fmt.Fprintln(w)
}

// rtpNote warns, when rtp.address is a loopback address while phones
// elsewhere reach SIP at host, that those phones would ring but get no
// audio. With rtp.address "" (the default) each phone is told the local
// address facing it, so there is nothing to warn about.
func rtpNote(cfg *config.Config, host string) string {
	ip := net.ParseIP(cfg.RTP.Address)
	if ip == nil || !ip.IsLoopback() || net.ParseIP(host).IsLoopback() {
		return ""
	}
	return fmt.Sprintf("\nNote: rtp.address is %s, so only phones on this host get audio.\n"+
		"For phones on your network, set rtp.address to \"\" (each phone is told the address facing it)\n"+
		"or to this host's address (e.g. %s) in a config file.\n", cfg.RTP.Address, host)
}

// printUsers lists the users and where each one's credential is. Only a
// password made up on this start is printed.
func printUsers(w io.Writer, cfg *config.Config, cred credentials) {
	kept := ""
	if cfg.Store.Path != "" {
		kept = filepath.Join(cfg.Store.Path, registrar.PasswordsFile)
	}
	users := slices.Clone(cfg.Users)
	slices.SortFunc(users, func(a, b config.User) int { return strings.Compare(a.Username, b.Username) })
	for _, u := range users {
		var what string
		switch {
		case slices.Contains(cred.generated.New, u.Username) && kept != "":
			what = fmt.Sprintf("password %s  (generated now, kept in %s)", cred.passwords[u.Username], kept)
		case slices.Contains(cred.generated.New, u.Username):
			what = fmt.Sprintf("password %s  (generated for this run: store.path is empty)", cred.passwords[u.Username])
		case slices.Contains(cred.generated.Kept, u.Username):
			what = "password generated on first start, kept in " + kept
		case u.Password != "":
			what = "password as in the config file"
		default:
			what = "digest hash as in the config file"
		}
		fmt.Fprintf(w, "  user %-8s %s\n", u.Username, what)
	}
}

// printToken says what the admin API's changes need. Only a token made
// for this run alone is printed: nothing else could tell it.
func printToken(w io.Writer, t adminToken) {
	const changes = "Changes (parley hangup, DELETE /api/...) need the admin token"
	switch {
	case t.file != "" && t.created:
		fmt.Fprintf(w, "%s, generated now and kept in %s, where parley hangup finds it.\n", changes, t.file)
	case t.file != "":
		fmt.Fprintf(w, "%s kept in %s, where parley hangup finds it.\n", changes, t.file)
	case t.created:
		fmt.Fprintf(w, "%s of this run (store.path is empty, so it is not kept):\n  %s\n"+
			"  Give it to parley hangup with -token or PARLEY_ADMIN_TOKEN.\n", changes, t.value)
	default:
		fmt.Fprintf(w, "%s: admin.token of the config file.\n", changes)
	}
}

func guessLANAddress() string {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

package testcalls

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/transport/tlstest"
)

// tlsParley is a parley with a tls:// listener on a free port, its
// certificate (serial 10) issued by a test CA.
type tlsParley struct {
	*parley
	CA *tlstest.CA
	// TLSAddr is the TLS listener's host:port; Cert and Key its files.
	TLSAddr   string
	Cert, Key string
}

func startTLSParley(t *testing.T, cfg parleyConfig) *tlsParley {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	tp := &tlsParley{CA: ca, Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	ca.Issue(t, 10, tp.Cert, tp.Key)
	tp.TLSAddr = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg.Listen = append(cfg.Listen, "tls://"+tp.TLSAddr)
	cfg.SIP += fmt.Sprintf("  tls: {cert: %s, key: %s}\n", yamlQuote(tp.Cert), yamlQuote(tp.Key))
	tp.parley = startParley(t, cfg)
	return tp
}

// serial connects to the TLS listener trusting only the test CA and
// returns the serial of the certificate parley presents.
func (tp *tlsParley) serial(t *testing.T) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", tp.TLSAddr, tp.CA.ClientConfig())
	if err != nil {
		t.Fatalf("TLS dial %s: %v", tp.TLSAddr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// registeredTransport returns the transport /api/registrations shows for
// user's bindings.
func (p *parley) registeredTransport(t *testing.T, user string) []string {
	t.Helper()
	code, body := p.httpGet(t, "/api/registrations")
	if code != 200 {
		t.Fatalf("GET /api/registrations: %d %s", code, body)
	}
	var regs []struct {
		User      string `json:"user"`
		Transport string `json:"transport"`
	}
	if err := json.Unmarshal([]byte(body), &regs); err != nil {
		t.Fatalf("/api/registrations: %v\n%s", err, body)
	}
	var out []string
	for _, r := range regs {
		if r.User == user {
			out = append(out, r.Transport)
		}
	}
	return out
}

// TestTLSPhoneCallsUDPPhone: a phone registered over TLS calls a UDP phone
// and is called by it; each leg keeps its own transport, parley's Via and
// Contact towards the TLS phone say TLS, its requests to that phone go
// over the phone's own connection, and either side may hang up.
func TestTLSPhoneCallsUDPPhone(t *testing.T) {
	tp := startTLSParley(t, parleyConfig{Registrar: "{min_expires: 60, max_expires: 3600, qualify: 1s}"})
	alice := newPhoneCA(t, "1001", tp.TLSAddr, "tls", "127.0.0.1", tp.CA)
	bob := newPhone(t, "1002", tp.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	if got := tp.registeredTransport(t, "1001"); len(got) != 1 || got[0] != "tls" {
		t.Fatalf("1001's registrations show transports %v, want [tls]", got)
	}
	if got := tp.registeredTransport(t, "1002"); len(got) != 1 || got[0] != "udp" {
		t.Fatalf("1002's registrations show transports %v, want [udp]", got)
	}
	tp.waitMetric(t, 3*time.Second, equals(1), "parley_contacts_by_transport", "transport", "tls")
	tp.waitMetric(t, 3*time.Second, equals(1), "parley_contacts_by_transport", "transport", "udp")
	tp.waitMetric(t, 3*time.Second, equals(0), "parley_contacts_by_transport", "transport", "tcp")
	// Qualify pings reach the TLS phone over its connection.
	tp.waitMetric(t, 5*time.Second, equals(2), "parley_contacts", "state", "reachable")

	t.Run("TLS caller hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "1002")
		c.mustAnswered(t)
		checkTLSContact(t, "the 200 to the TLS caller", c.Final)
		in := bob.mustEvent(evInvite)
		if v := in.Req.Via(); v == nil || v.Transport != "UDP" {
			t.Fatalf("the UDP callee's INVITE has Via %v, want SIP/2.0/UDP", v)
		}
		if ct := in.Req.Contact(); ct == nil || ct.Address.UriParams.Has("transport") {
			t.Fatalf("the UDP callee's INVITE has Contact %v, want no transport parameter", ct)
		}
		bob.mustEvent(evAck)
		c.hangup(t)
		bob.mustEvent(evBye)
	})

	t.Run("UDP callee hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "1002")
		c.mustAnswered(t)
		in := bob.mustEvent(evInvite)
		bob.mustEvent(evAck)
		time.Sleep(100 * time.Millisecond)
		in.Call.hangup(t)
		bye := alice.mustEvent(evBye)
		if v := bye.Req.Via(); v == nil || v.Transport != "TLS" {
			t.Fatalf("the BYE to the TLS phone has Via %v, want SIP/2.0/TLS", v)
		}
	})

	t.Run("UDP phone calls the TLS phone, caller hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := bob.call(ctx, "1001")
		c.mustAnswered(t)
		in := alice.mustEvent(evInvite)
		if v := in.Req.Via(); v == nil || v.Transport != "TLS" {
			t.Fatalf("the TLS callee's INVITE has Via %v, want SIP/2.0/TLS", v)
		}
		checkTLSContact(t, "the INVITE to the TLS callee", in.Req)
		alice.mustEvent(evAck)
		c.hangup(t)
		alice.mustEvent(evBye)
	})

	t.Run("TLS callee hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := bob.call(ctx, "1001")
		c.mustAnswered(t)
		in := alice.mustEvent(evInvite)
		alice.mustEvent(evAck)
		time.Sleep(100 * time.Millisecond)
		in.Call.hangup(t)
		bob.mustEvent(evBye)
	})

	tp.waitMetric(t, 3*time.Second, equals(4), "parley_calls_total", "result", "answered")
	tp.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// checkTLSContact asserts m's Contact is parley's, over TLS.
func checkTLSContact(t *testing.T, what string, m sip.Message) {
	t.Helper()
	var ct *sip.ContactHeader
	switch m := m.(type) {
	case *sip.Request:
		ct = m.Contact()
	case *sip.Response:
		ct = m.Contact()
	}
	if ct == nil {
		t.Fatalf("%s has no Contact", what)
	}
	if v, _ := ct.Address.UriParams.Get("transport"); v != "tls" {
		t.Fatalf("%s has Contact %s, want ;transport=tls", what, ct.Address.String())
	}
}

// TestTLSReloadOnSIGHUP: after SIGHUP, new connections get the new
// certificate (its serial), parley goes on serving, and a certificate
// file that went bad is refused with its key and path while the one in
// use stays.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	tp := startTLSParley(t, parleyConfig{})
	if got := tp.serial(t); got != "10" {
		t.Fatalf("serial %s, want 10", got)
	}
	old, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", tp.TLSAddr, tp.CA.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	tp.CA.Issue(t, 11, tp.Cert, tp.Key)
	if err := tp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tp.serial(t) != "11" {
		if time.Now().After(deadline) {
			t.Fatal("new connections still get serial 10 five seconds after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A phone still registers and calls over TLS with the new certificate.
	alice := newPhoneCA(t, "1001", tp.TLSAddr, "tls", "127.0.0.1", tp.CA)
	alice.mustRegister()
	// The connection made before the reload is still served: an RFC 5626
	// ping over it gets its pong.
	if _, err := old.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatalf("ping over the connection made before SIGHUP: %v", err)
	}
	_ = old.SetReadDeadline(time.Now().Add(3 * time.Second))
	pong := make([]byte, 8)
	if n, err := old.Read(pong); err != nil || string(pong[:n]) != "\r\n" {
		t.Fatalf("no pong over the connection made before SIGHUP: %q %v", pong[:n], err)
	}
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != "10" {
		t.Fatalf("the old connection's certificate has serial %s, want 10", got)
	}

	if err := os.WriteFile(tp.Cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(readFileOrErr(tp.LogPath), "TLS certificate not reloaded") {
		if time.Now().After(deadline) {
			t.Fatal("no log line about the bad certificate after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if log := readFileOrErr(tp.LogPath); !strings.Contains(log, "sip.tls.cert") || !strings.Contains(log, tp.Cert) {
		t.Fatalf("the refusal does not name sip.tls.cert and %s:\n%s", tp.Cert, tail(tp.LogPath, 20))
	}
	if got := tp.serial(t); got != "11" {
		t.Fatalf("after a failed reload serial %s, want 11 still", got)
	}
	if code, _ := tp.httpGet(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz %d after SIGHUPs", code)
	}
}

// TestTLSHandshakeGarbage: bytes that are no TLS handshake close only
// that connection, with one debug line that does not show them; the next
// TLS phone registers.
func TestTLSHandshakeGarbage(t *testing.T) {
	tp := startTLSParley(t, parleyConfig{})
	c, err := net.DialTimeout("tcp", tp.TLSAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("REGISTER sip:parley.lab SIP/2.0\r\nX-Canary: zzcanaryzz\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("parley kept a connection that sent garbage instead of a TLS handshake")
			}
			break
		}
	}
	alice := newPhoneCA(t, "1001", tp.TLSAddr, "tls", "127.0.0.1", tp.CA)
	alice.mustRegister()
	log := readFileOrErr(tp.LogPath)
	if n := strings.Count(log, "SIP TLS handshake failed"); n != 1 {
		t.Fatalf("%d handshake failure lines, want 1:\n%s", n, tail(tp.LogPath, 30))
	}
	if strings.Contains(log, "zzcanaryzz") {
		t.Fatalf("the log shows the bytes received:\n%s", tail(tp.LogPath, 30))
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "handshake") && !strings.Contains(line, "level=DEBUG") {
			t.Fatalf("a handshake failure logged above debug: %s", line)
		}
	}
}

// baresipTLS registers a baresip account over TLS (baresipConfig.TLS).
type baresipTLS struct {
	// Addr is parley's TLS listener, CAFile the CA baresip trusts.
	Addr, CAFile string
}

// config is what baresip 1.0's config needs for it: sip_cafile (1.0 has
// no sip_verify_server; the CA is what it checks against).
func (b *baresipTLS) config() string { return fmt.Sprintf("sip_cafile %s\n", b.CAFile) }

// Relay ports and phone RTP ports of the TLS tests (see rtpRange and
// phonePorts).
var (
	rangeTLSBaresip  = rtpRange{6000, 6099}
	rangeTLSSipp     = rtpRange{6100, 6199}
	portsTLSCaller   = phonePorts{7200, 7219}
	portsTLSCallee   = phonePorts{7220, 7239}
	portsTLSSippSide = phonePorts{7240, 7259}
)

// TestBaresipTLSCallsUDPPhone: baresip registered over TLS (its account
// <sip:1001@parley;transport=tls>, trusting the test CA) calls a baresip
// on UDP; each hears the other's tone through parley's relay, and the
// callee's BYE reaches the TLS phone over its connection.
func TestBaresipTLSCallsUDPPhone(t *testing.T) {
	needParley(t)
	needSox(t)
	needBaresip(t)
	tp := startTLSParley(t, parleyConfig{Extra: rangeTLSBaresip.yaml(nil, "")})
	wav := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, wav, fileTone, toneLength)
	caller := startBaresip(t, tp.parley, baresipConfig{Name: "caller", User: "1001", Source: "aufile," + wav, RTP: portsTLSCaller,
		Record: true, TLS: &baresipTLS{Addr: tp.TLSAddr, CAFile: tp.CA.CertFile}})
	callee := startBaresip(t, tp.parley, baresipConfig{Name: "callee", User: "1002", Source: "ausine," + fmt.Sprint(sineTone), RTP: portsTLSCallee, Record: true})
	if got := tp.registeredTransport(t, "1001"); len(got) != 1 || got[0] != "tls" {
		t.Fatalf("baresip 1001's registrations show transports %v, want [tls]", got)
	}

	baresipCall(t, tp.parley, caller, callee)
	tp.waitMetric(t, phoneEvent, atLeast(packetsFor(4)), "parley_rtp_packets_total")
	callee.command(t, "hangup", "")
	waitHungUp(t, tp.parley, caller, callee)
	wantCallEnded(t, tp.parley, "BYE from callee")

	checkTone(t, "1002's recording of 1001 (over TLS signalling)", readPCM(t, callee.recording(t, "dec")).measure(t, recordingStart), fileTone, 3)
	checkTone(t, "1001's recording of 1002", readPCM(t, caller.recording(t, "dec")).measure(t, recordingStart), sineTone, 3)
}

// startTLSTunnel carries each TCP connection accepted on a loopback port
// over a TLS connection of its own to addr, trusting conf's roots (as
// stunnel's client mode does), and returns the port's address. SIPp 3.6.1
// as Debian builds it has no TLS ("-t l1": "To use a TLS transport you
// must compile SIPp with OpenSSL"), so SIPp speaks TCP to the tunnel and
// parley sees TLS. The tunnel's goroutines end when t does.
func startTLSTunnel(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			plain, err := ln.Accept()
			if err != nil {
				return
			}
			track(plain)
			sec, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, conf)
			if err != nil {
				t.Errorf("tunnel: TLS dial %s: %v", addr, err)
				plain.Close()
				continue
			}
			track(sec)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			wg.Go(func() { pipe(sec, plain) })
			wg.Go(func() { pipe(plain, sec) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestSippOverTLS: SIPp's built-in caller places short calls from the
// trusted loopback network over a TLS connection (through startTLSTunnel)
// to a phone registered over UDP; every call completes, and parley
// counted the callers' requests as TLS.
func TestSippOverTLS(t *testing.T) {
	needSipp(t)
	tp := startTLSParley(t, parleyConfig{Trusted: []string{"127.0.0.1/32"}, Extra: rangeTLSSipp.yaml(nil, "")})
	bob := newPhone(t, "1002", tp.SIPAddr, "udp")
	if r, err := bob.register(bob.Password, "", 3600); err != nil || r.Challenge.StatusCode != 200 {
		t.Fatalf("trusted REGISTER: %v %v, want 200 without a challenge", err, r.Challenge)
	}
	tunnel := startTLSTunnel(t, tp.TLSAddr, tp.CA.ClientConfig())

	const calls = 3
	args := []string{tunnel, "-t", "t1", "-sn", "uac", "-s", "1002", "-m", fmt.Sprint(calls), "-r", "2", "-d", "200",
		"-mp", fmt.Sprint(portsTLSSippSide.Min),
		"-trace_stat", "-stf", "uac.csv", "-trace_err", "-timeout", "30s", "-timeout_error"}
	uac := startSipp(t, "sipp-uac-tls", append(args, sippReorderFlags...)...)
	if code := uac.wait(t, 40*time.Second); code != 0 {
		t.Errorf("sipp uac over TLS exit code %d, want 0 (all %d calls successful)", code, calls)
	}
	if v, ok := uac.stat("SuccessfulCall(C)"); ok && v != fmt.Sprint(calls) {
		t.Errorf("sipp uac SuccessfulCall(C) = %s, want %d", v, calls)
	}
	for range calls {
		bob.mustEvent(evInvite)
		bob.mustEvent(evBye)
	}
	tp.waitMetric(t, 3*time.Second, equals(calls), "parley_calls_total", "result", "answered")
	tp.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	log := readFileOrErr(tp.LogPath)
	if n := strings.Count(log, `msg="call started"`); n != calls || strings.Count(log, "transport=tls") < calls {
		t.Errorf("parley logged %d calls started, want %d each with transport=tls:\n%s", n, calls, tail(tp.LogPath, 30))
	}
	if strings.Contains(log, "SIP TLS handshake failed") {
		t.Errorf("a handshake failed:\n%s", tail(tp.LogPath, 30))
	}
}

// TestTLSBadCertificateNamesKeyAndFile: parley refuses to start with a
// certificate file that does not load, naming the key and the file, both
// with -check-config and when started.
func TestTLSBadCertificateNamesKeyAndFile(t *testing.T) {
	needParley(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, 1, cert, key)
	bad := filepath.Join(dir, "broken.pem")
	writeFile(t, bad, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	cfg := filepath.Join(dir, "parley.yaml")
	writeFile(t, cfg, renderConfig(parleyConfig{
		Listen: []string{fmt.Sprintf("tls://127.0.0.1:%d", freeTCPPort(t))},
		SIP:    fmt.Sprintf("  tls: {cert: %s, key: %s}\n", yamlQuote(bad), yamlQuote(key)),
	}, freeSIPPort(t), freeTCPPort(t)))
	for _, args := range [][]string{{"-check-config", "-config", cfg}, {"-config", cfg}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, parleyBin, args...).CombinedOutput()
		cancel()
		if err == nil {
			t.Fatalf("parley %v accepted a broken certificate:\n%s", args, out)
		}
		if !strings.Contains(string(out), "sip.tls.cert") || !strings.Contains(string(out), bad) {
			t.Fatalf("parley %v does not name sip.tls.cert and %s:\n%s", args, bad, out)
		}
	}
}

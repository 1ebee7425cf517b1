//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// parleyRelay sets calls up through parley with SIP: it is both the caller
// (INVITE to 9<index> at parley, trusted, no digest) and the callee parley's
// route 9… leads back to (it answers with the B side's address).
type parleyRelay struct {
	proxy   netip.AddrPort // parley's SIP address
	listen  string         // our SIP address, parley's route target
	rate    int            // INVITEs per second
	workers int            // INVITEs in flight at most

	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	conn    net.PacketConn
	calls   *sipgo.DialogClientCache
	answers *sipgo.DialogServerCache
	bSDP    []byte

	mu       sync.Mutex
	calleeTo map[int]netip.AddrPort // call index → parley's port facing the callee
	sessions []*sipgo.DialogClientSession
}

func (p *parleyRelay) name() string { return "parley" }

func (p *parleyRelay) start() error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("rtpload"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		return err
	}
	p.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", p.listen)
	if err != nil {
		return fmt.Errorf("SIP listener: %w", err)
	}
	p.conn = conn
	addr := conn.LocalAddr().String()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(addr), sipgo.WithClientLogger(logger))
	if err != nil {
		return err
	}
	p.cli = cli
	go srv.ServeUDP(conn)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if c, _ := ua.TransportLayer().GetConnection("udp", addr); c != nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("sipgo did not start serving")
		}
		time.Sleep(time.Millisecond)
	}
	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "rtpload", Host: host, Port: pn}}
	p.calls = sipgo.NewDialogClientCache(cli, contact)
	p.answers = sipgo.NewDialogServerCache(cli, contact)
	p.calleeTo = map[int]netip.AddrPort{}

	srv.OnInvite(p.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.answers.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.answers.ReadBye(req, tx); err != nil {
			if err := p.calls.ReadBye(req, tx); err != nil {
				tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			}
		}
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	return nil
}

// onInvite is the callee: it notes parley's callee-facing port and answers.
func (p *parleyRelay) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	sess, err := p.answers.ReadInvite(req, tx)
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	idx, err := strconv.Atoi(req.Recipient.User)
	dst, err2 := sdpAudioAddr(req.Body())
	if err != nil || err2 != nil {
		sess.Respond(488, "Not Acceptable Here", nil)
		sess.Close()
		return
	}
	p.mu.Lock()
	p.calleeTo[idx] = dst
	p.mu.Unlock()
	if err := sess.RespondSDP(p.bSDP); err != nil {
		fmt.Fprintf(os.Stderr, "rtpload: call %d: 200: %v\n", idx, err)
	}
}

// setup places the calls, at most p.rate per second and p.workers at once.
func (p *parleyRelay) setup(ctx context.Context, calls int, a, b netip.AddrPort) (aDst, bDst []netip.AddrPort, err error) {
	if err := p.start(); err != nil {
		return nil, nil, err
	}
	p.bSDP = sdpFor(b)
	aSDP := sdpFor(a)
	aDst = make([]netip.AddrPort, calls)
	bDst = make([]netip.AddrPort, calls)
	errs := make([]error, calls)
	sem := make(chan struct{}, p.workers)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(max(p.rate, 1)))
	defer tick.Stop()
	for i := range calls {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			aDst[i], errs[i] = p.invite(ctx, i, aSDP)
		}()
	}
	wg.Wait()
	failed := 0
	var first error
	for i, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("call %d: %w", i, err)
			}
			continue
		}
		p.mu.Lock()
		d, ok := p.calleeTo[i]
		p.mu.Unlock()
		if !ok {
			failed++
			first = fmt.Errorf("call %d: answered, but its INVITE never reached the callee", i)
			continue
		}
		bDst[i] = d
	}
	if failed > 0 {
		return nil, nil, fmt.Errorf("%d of %d calls failed to set up; first: %w", failed, calls, first)
	}
	return aDst, bDst, nil
}

// invite places call i and returns parley's caller-facing RTP address.
func (p *parleyRelay) invite(ctx context.Context, i int, body []byte) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	user := fmt.Sprintf("9%06d", i)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: user, Host: p.proxy.Addr().String(), Port: int(p.proxy.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "rtpload", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: p.proxy.Addr().String()}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	sess, err := p.calls.WriteInvite(ctx, req)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		code := 0
		if sess.InviteResponse != nil {
			code = int(sess.InviteResponse.StatusCode)
		}
		return netip.AddrPort{}, fmt.Errorf("INVITE: %w (status %d)", err, code)
	}
	if err := sess.Ack(ctx); err != nil {
		return netip.AddrPort{}, fmt.Errorf("ACK: %w", err)
	}
	p.mu.Lock()
	p.sessions = append(p.sessions, sess)
	p.mu.Unlock()
	return sdpAudioAddr(sess.InviteResponse.Body())
}

// teardown sends BYE on every call.
func (p *parleyRelay) teardown(ctx context.Context) error {
	p.mu.Lock()
	sessions := p.sessions
	p.sessions = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, p.workers)
	for _, s := range sessions {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.Bye(c); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("BYE: %w", err)
				}
				mu.Unlock()
			}
			s.Close()
		}()
	}
	wg.Wait()
	if p.ua != nil {
		p.conn.Close()
		p.ua.Close()
	}
	return first
}

package testcalls

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// TestUserToUserCall: 1001 calls 1002 through parley, over UDP and over TCP;
// parley forks a new INVITE to 1002's registered contact, relays 180 and 200
// (with SDP) and the ACK, and relays the BYE whichever side hangs up.
func TestUserToUserCall(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			pl := startParley(t, parleyConfig{})
			alice := newPhone(t, "1001", pl.SIPAddr, transport)
			bob := newPhone(t, "1002", pl.SIPAddr, transport)
			alice.mustRegister()
			bob.mustRegister()

			t.Run("caller hangs up", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				c := alice.call(ctx, "1002")
				c.mustAnswered(t)
				in := bob.mustEvent(evInvite)
				checkForkedInvite(t, c, in)
				codes := c.codes()
				if !slices.Contains(codes, 100) {
					t.Errorf("caller got %v: no 100 Trying", codes)
				}
				if !slices.Contains(codes, 180) {
					t.Errorf("caller got %v: the callee's 180 was not relayed", codes)
				}
				bob.mustEvent(evAck)

				c.hangup(t)
				bye := bob.mustEvent(evBye)
				if got, want := bye.Req.CallID().Value(), in.Req.CallID().Value(); got != want {
					t.Errorf("callee got BYE for Call-ID %s, its call is %s", got, want)
				}
			})

			t.Run("callee hangs up", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				c := alice.call(ctx, "1002")
				c.mustAnswered(t)
				in := bob.mustEvent(evInvite)
				checkForkedInvite(t, c, in)
				time.Sleep(100 * time.Millisecond)
				in.Call.hangup(t)
				bye := alice.mustEvent(evBye)
				if got, want := bye.Req.CallID().Value(), c.Session.InviteRequest.CallID().Value(); got != want {
					t.Errorf("caller got BYE for Call-ID %s, its call is %s", got, want)
				}
			})

			pl.waitMetric(t, 3*time.Second, equals(2), "parley_calls_total", "result", "answered")
			pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
			pl.waitMetric(t, 3*time.Second, atLeast(2), "parley_call_setup_seconds_count")
			pl.waitMetric(t, 3*time.Second, atLeast(2), "parley_sip_requests_total", "method", "BYE")
			pl.waitMetric(t, 3*time.Second, atLeast(2), "parley_sip_responses_total", "method", "INVITE", "code", "407")
		})
	}
}

// checkForkedInvite asserts the INVITE the callee got is a new call leg (a
// B2BUA does not pass the caller's Call-ID through) and carries an SDP offer.
func checkForkedInvite(t *testing.T, c *outboundCall, in event) {
	t.Helper()
	if in.Req.CallID().Value() == c.Session.InviteRequest.CallID().Value() {
		t.Errorf("callee's INVITE reuses the caller's Call-ID %s; want a new leg", in.Req.CallID().Value())
	}
	if in.Req.GetHeader("Proxy-Authorization") != nil {
		t.Errorf("caller's Proxy-Authorization leaked to the callee:\n%s", in.Req)
	}
	checkSDP(t, "INVITE to the callee", in.Req.Body())
}

// TestCallFailures: the ways a call does not get answered, each with the
// status the caller must see, then the counters parley keeps of them.
func TestCallFailures(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()

	t.Run("busy callee 486", func(t *testing.T) {
		bob.setMode(answerBusy)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "1002")
		bob.mustEvent(evInvite)
		if c.status() != 486 {
			t.Fatalf("call to a busy callee: %v (final %v), want 486", c.codes(), c.Final)
		}
	})

	t.Run("cancel before answer 487", func(t *testing.T) {
		bob.setMode(answerRing)
		ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
		defer cancel()
		go func() {
			// Hang up as soon as the callee rings.
			if _, err := bob.waitEvent(evInvite, callTimeout); err == nil {
				time.Sleep(200 * time.Millisecond)
			}
			cancel()
		}()
		c := alice.call(ctx, "1002")
		if c.status() != 487 {
			t.Errorf("cancelled call: responses %v, final %v; want 487 (err %v)", c.codes(), c.Final, c.Err)
		}
		if !slices.Contains(c.codes(), 180) {
			t.Errorf("cancelled call: responses %v, want the 180 relayed before the CANCEL", c.codes())
		}
		if c.Err != nil && !errors.Is(c.Err, context.Canceled) {
			t.Errorf("CANCEL from the caller failed: %v", c.Err)
		}
		if _, err := bob.waitEvent(evCancel, callTimeout); err != nil {
			t.Errorf("callee never saw the CANCEL: %v", err)
		}
	})

	t.Run("unregistered user 480", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "1003")
		if c.status() != 480 {
			t.Fatalf("call to a local user with no binding: %v (final %v), want 480", c.codes(), c.Final)
		}
	})

	t.Run("unknown user 404", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "5555")
		if c.status() != 404 {
			t.Fatalf("call to an unknown user: %v (final %v), want 404", c.codes(), c.Final)
		}
	})

	t.Run("BYE outside a dialog 481", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		req := alice.newRequest(sip.BYE, "1002", sip.Uri{Scheme: "sip", User: "1002", Host: "parley.lab"})
		to := req.To()
		to.Params = sip.NewParams()
		to.Params.Add("tag", "no-such-dialog")
		res, err := alice.cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 481 {
			t.Fatalf("BYE for no dialog: %d, want 481:\n%s", res.StatusCode, res)
		}
	})

	pl.waitMetric(t, 3*time.Second, equals(1), "parley_calls_total", "result", "busy")
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_calls_total", "result", "cancelled")
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_calls_total", "result", "unavailable")
	pl.waitMetric(t, 3*time.Second, equals(1), "parley_calls_total", "result", "not_found")
	pl.waitMetric(t, time.Second, func(v float64, ok bool) bool { return !ok || v == 0 }, "parley_calls_total", "result", "answered")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "486")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "487")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "480")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "404")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_requests_total", "method", "CANCEL")
}

// TestEchoService: the echo number answers by itself with SDP.
func TestEchoService(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustRegister()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, "600")
	c.mustAnswered(t)

	// RTP sent to the address in the answer comes back, in order and intact.
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(c.Final.Body()); err != nil {
		t.Fatal(err)
	}
	host := sd.ConnectionInformation.Address.Address
	if len(sd.MediaDescriptions) > 0 && sd.MediaDescriptions[0].ConnectionInformation != nil {
		host = sd.MediaDescriptions[0].ConnectionInformation.Address.Address
	}
	port := sd.MediaDescriptions[0].MediaName.Port.Value
	conn, err := net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 50
	for i := range n {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(160 * i), SSRC: 0xabcdef}, Payload: bytes.Repeat([]byte{byte(i)}, 160)}
		raw, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	buf := make([]byte, 1500)
	for i := range n {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("echo packet %d: %v", i, err)
		}
		var got rtp.Packet
		if err := got.Unmarshal(buf[:k]); err != nil {
			t.Fatalf("echo packet %d is not RTP: %v", i, err)
		}
		if got.SequenceNumber != uint16(1000+i) || !bytes.Equal(got.Payload, bytes.Repeat([]byte{byte(i)}, 160)) {
			t.Fatalf("echo packet %d: seq %d, payload %x...", i, got.SequenceNumber, got.Payload[:4])
		}
	}
	c.hangup(t)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

package dialog

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// This file is RFC 3262 (reliable provisional responses, PRACK) on both
// legs, each leg on its own as a B2BUA does: parley sends the caller its
// 18x reliably when the caller supports 100rel, and PRACKs the callee's
// reliable 18x itself; a PRACK never crosses between the legs.

// reliable is the caller leg's side of RFC 3262: the reliable provisional
// response waiting for its PRACK, and those queued behind it (§3: one at a
// time). Its fields belong to the call's queue.
type reliable struct {
	// on is set when the caller's INVITE had 100rel in Supported or
	// Require.
	on      bool
	rseq    uint32
	pending *sip.Response
	queue   []*sip.Response
	tx      sip.ServerTransaction
	timer   *time.Timer
	wait    time.Duration
	sent    time.Time
}

// stop stops retransmitting the pending provisional.
func (r *reliable) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.pending, r.queue = nil, nil
}

// wants100rel reports whether req offers or requires reliable provisional
// responses.
func wants100rel(req *sip.Request) bool {
	return sipmsg.HasTag(req, "100rel", "Supported", "k", "Require")
}

// sendProvisional sends a 18x to the caller: reliably (RFC 3262 §3) when
// the caller supports 100rel, after the one still waiting for its PRACK;
// as it is otherwise. Run it in the call's queue.
func (s *Server) sendProvisional(c *Call, tx sip.ServerTransaction, res *sip.Response) {
	r := &c.rel
	if !r.on || res.StatusCode == 100 {
		_ = tx.Respond(res)
		return
	}
	if r.pending != nil {
		r.queue = append(r.queue, res)
		return
	}
	if r.rseq == 0 {
		// §7.1: the first RSeq is chosen between 1 and 2^31 - 1.
		r.rseq = 1 + rand.Uint32N(1<<30)
	} else {
		r.rseq++
	}
	res.RemoveHeader("Require")
	res.AppendHeader(sip.NewHeader("Require", "100rel"))
	res.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(r.rseq), 10)))
	r.pending, r.tx, r.sent, r.wait = res, tx, time.Now(), sip.T1
	_ = tx.Respond(res)
	s.armRetransmit(c)
}

// armRetransmit schedules the pending provisional's next retransmission:
// T1, doubling, for 64*T1 (§3). Run it in the call's queue.
func (s *Server) armRetransmit(c *Call) {
	r := &c.rel
	pending := r.pending
	r.timer = time.AfterFunc(r.wait, func() {
		c.post(func() {
			if r.pending != pending || c.state != Establishing || c.caller.okRes != nil {
				return // PRACKed, or the call was answered or failed
			}
			if time.Since(r.sent) >= 64*sip.T1 {
				// §3: the UAS should reject the INVITE; the call's own
				// answer or failure ends it, parley just stops.
				c.log.Info("reliable provisional never PRACKed; no more retransmissions", "rseq", r.rseq)
				r.pending = nil
				return
			}
			r.wait *= 2
			_ = r.tx.Respond(pending)
			s.armRetransmit(c)
		})
	})
}

// onPrack answers the caller's PRACK (§3): 200 when its RAck names the
// reliable provisional waiting for it, which stops its retransmissions and
// lets the next one go; 481 otherwise.
func (s *Server) onPrack(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	c := l.call
	var res *sip.Response
	c.do(func() {
		r := &c.rel
		rseq, cseq, method, ok := parseRAck(req)
		if !ok {
			res = sipmsg.Response(req, badRequest("malformed RAck"), l.localTag)
			return
		}
		if r.pending == nil || rseq != r.rseq || method != string(sip.INVITE) || cseq != r.pending.CSeq().SeqNo || l.role != roleCaller {
			res = sipmsg.NewResponse(req, 481, "Call/Transaction Does Not Exist", l.localTag)
			return
		}
		if seq := req.CSeq().SeqNo; seq > l.remoteCSeq {
			l.remoteCSeq = seq
		}
		if r.timer != nil {
			r.timer.Stop()
			r.timer = nil
		}
		r.pending = nil
		res = sipmsg.NewResponse(req, 200, "OK", l.localTag)
		if len(r.queue) > 0 {
			next := r.queue[0]
			r.queue = r.queue[1:]
			defer s.sendProvisional(c, r.tx, next)
		}
	})
	_ = tx.Respond(res)
}

// parseRAck reads RAck: response-num CSeq-num Method (§7.2).
func parseRAck(req *sip.Request) (rseq, cseq uint32, method string, ok bool) {
	h := sipmsg.HeaderNamed(req, "RAck")
	if h == nil {
		return 0, 0, "", false
	}
	f := strings.Fields(h.Value())
	if len(f) != 3 {
		return 0, 0, "", false
	}
	r, err1 := strconv.ParseUint(f[0], 10, 32)
	n, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil || r == 0 {
		return 0, 0, "", false
	}
	return uint32(r), uint32(n), strings.ToUpper(f[2]), true
}

// reliableRSeq returns the RSeq of a reliable provisional response from a
// callee (Require: 100rel and an RSeq, §4), or 0.
func reliableRSeq(res *sip.Response) uint32 {
	if res.StatusCode <= 100 || res.StatusCode >= 200 || !sipmsg.HasTag(res, "100rel", "Require") {
		return 0
	}
	h := sipmsg.HeaderNamed(res, "RSeq")
	if h == nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil || n == 0 {
		return 0
	}
	return uint32(n)
}

// prackCallee sends the PRACK for a callee's reliable provisional response
// res to f's INVITE, in the early dialog res makes (§4): once per RSeq; a
// retransmission is dropped (false). The PRACK's answer is only logged
// (see send).
func (s *Server) prackCallee(c *Call, f *fork, res *sip.Response, rseq uint32) bool {
	var prack *sip.Request
	c.do(func() {
		if rseq <= f.rackSeq {
			return // a retransmission: its PRACK is on its way
		}
		f.rackSeq = rseq
		l := f.leg
		early := *l
		early.remoteTag = strings.Clone(sipmsg.Tag(res.To().Params))
		if ct := res.Contact(); ct != nil {
			early.target = keptURI(&ct.Address)
		}
		early.routes = reversed(recordRoutes(res))
		l.localCSeq++
		prack = s.newRequest(&early, sip.PRACK, l.localCSeq)
		prack.AppendHeader(sip.NewHeader("RAck", fmt.Sprintf("%d %d INVITE", rseq, res.CSeq().SeqNo)))
		prack.SetBody(nil)
	})
	if prack == nil {
		return false
	}
	s.send(c, prack)
	return true
}

//go:build linux

package main

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"
)

// Packet layout: a 12-byte RTP header, then a 160-byte payload (20 ms of
// G.711) that starts with what the receiver needs to account for it.
const (
	rtpHeaderLen = 12
	payloadLen   = 160
	packetLen    = rtpHeaderLen + payloadLen
	magic        = 0x504C5952 // "PLYR"
	payloadPT    = 8          // PCMA
)

// Directions of a call's media.
const (
	dirAtoB = 0 // caller → relay → callee
	dirBtoA = 1 // callee → relay → caller
)

// payload offsets.
const (
	offMagic = rtpHeaderLen
	offCall  = offMagic + 4
	offDir   = offCall + 4
	offSeq   = offDir + 1
	offSent  = offSeq + 4
)

// epoch is the monotonic zero of the send timestamps.
var epoch = time.Now()

func nowNS() int64 { return int64(time.Since(epoch)) }

// fillPacket writes packet seq of call c in direction dir, stamped sentNS.
func fillPacket(b []byte, c, dir, seq int, sentNS int64) {
	b[0] = 0x80
	b[1] = payloadPT
	binary.BigEndian.PutUint16(b[2:4], uint16(seq))
	binary.BigEndian.PutUint32(b[4:8], uint32(seq*payloadLen))
	binary.BigEndian.PutUint32(b[8:12], uint32(c<<1|dir)+0x10000)
	binary.BigEndian.PutUint32(b[offMagic:], magic)
	binary.BigEndian.PutUint32(b[offCall:], uint32(c))
	b[offDir] = byte(dir)
	binary.BigEndian.PutUint32(b[offSeq:], uint32(seq))
	binary.BigEndian.PutUint64(b[offSent:], uint64(sentNS))
	for i := offSent + 8; i < packetLen; i++ {
		b[i] = 0xD5 // A-law silence
	}
}

// sender paces one side's packets for every call: call c sends its packet k
// at start + k*period + c*period/calls, so the load is spread evenly.
type sender struct {
	conn   *batchConn
	dir    int
	dsts   []netip.AddrPort // per call: the relay's port facing this side
	period time.Duration    // between two packets of one call
	count  int              // packets per call

	sent   atomic.Int64
	failed atomic.Int64
	// late is how far behind schedule the sender fell at worst (ns).
	late atomic.Int64
}

// run sends everything, starting at start; it returns early if stop closes.
func (s *sender) run(start time.Time, stop <-chan struct{}) error {
	calls := len(s.dsts)
	total := calls * s.count
	gap := s.period / time.Duration(calls)
	next := 0
	for next < total {
		select {
		case <-stop:
			return nil
		default:
		}
		elapsed := time.Since(start)
		due := min(int(elapsed/gap)+1, total)
		if due <= next {
			time.Sleep(start.Add(time.Duration(next) * gap).Sub(time.Now()))
			continue
		}
		if lag := int64(elapsed - time.Duration(next)*gap); lag > s.late.Load() {
			s.late.Store(lag)
		}
		for next < due {
			n := min(batchSize, due-next)
			stamp := nowNS()
			for i := range n {
				g := next + i
				c, k := g%calls, g/calls
				fillPacket(s.conn.sendBuf(i), c, s.dir, k, stamp)
				s.conn.setSend(i, packetLen, s.dsts[c])
			}
			sent, failed, err := s.conn.send(n)
			s.sent.Add(int64(sent))
			s.failed.Add(int64(failed))
			if err != nil {
				return err
			}
			next += n
		}
		// Sleep a little: batches of ~1 ms of traffic keep the system
		// calls few without bunching packets much.
		time.Sleep(500 * time.Microsecond)
	}
	return nil
}

// histBuckets covers 0-100 ms in 1 µs steps; later arrivals go in the last.
const histBuckets = 100_000

// receiver accounts for the packets one side receives.
type receiver struct {
	conn  *batchConn
	dir   int // the direction it expects
	calls int
	count int

	seen  []uint64 // bitmap: call*count + seq
	hist  []uint32 // one-way delay in µs
	got   atomic.Int64
	dups  atomic.Int64
	wrong atomic.Int64 // not ours, wrong direction or out of range
	maxNS atomic.Int64
	// lastNS is when the last packet arrived (nowNS).
	lastNS atomic.Int64
}

func newReceiver(conn *batchConn, dir, calls, count int) *receiver {
	return &receiver{
		conn: conn, dir: dir, calls: calls, count: count,
		seen: make([]uint64, (calls*count+63)/64),
		hist: make([]uint32, histBuckets),
	}
}

// run reads until the socket is closed.
func (r *receiver) run() error {
	for {
		n, err := r.conn.recv()
		if err != nil {
			if errClosed(err) {
				return nil
			}
			return err
		}
		now := nowNS()
		r.lastNS.Store(now)
		for i := range n {
			r.account(r.conn.recvd(i), now)
		}
	}
}

func (r *receiver) account(b []byte, now int64) {
	if len(b) != packetLen || binary.BigEndian.Uint32(b[offMagic:]) != magic || int(b[offDir]) != r.dir {
		r.wrong.Add(1)
		return
	}
	c := int(binary.BigEndian.Uint32(b[offCall:]))
	k := int(binary.BigEndian.Uint32(b[offSeq:]))
	if c >= r.calls || k >= r.count {
		r.wrong.Add(1)
		return
	}
	idx := c*r.count + k
	if r.seen[idx/64]&(1<<(idx%64)) != 0 {
		r.dups.Add(1)
		return
	}
	r.seen[idx/64] |= 1 << (idx % 64)
	r.got.Add(1)
	d := now - int64(binary.BigEndian.Uint64(b[offSent:]))
	if d > r.maxNS.Load() {
		r.maxNS.Store(d)
	}
	us := max(d/1000, 0)
	if us >= histBuckets {
		us = histBuckets - 1
	}
	r.hist[us]++
}

// percentile returns the q-quantile (0..1) of the delays of all receivers, in µs.
func percentile(q float64, rs ...*receiver) int {
	var total uint64
	for _, r := range rs {
		for _, v := range r.hist {
			total += uint64(v)
		}
	}
	if total == 0 {
		return -1
	}
	want := uint64(q*float64(total) + 0.5)
	if want == 0 {
		want = 1
	}
	var acc uint64
	for us := range histBuckets {
		for _, r := range rs {
			acc += uint64(r.hist[us])
		}
		if acc >= want {
			return us
		}
	}
	return histBuckets - 1
}

// perCallLoss counts calls with at least one lost packet in the receiver's
// direction.
func (r *receiver) callsWithLoss() int {
	n := 0
	for c := range r.calls {
		for k := range r.count {
			idx := c*r.count + k
			if r.seen[idx/64]&(1<<(idx%64)) == 0 {
				n++
				break
			}
		}
	}
	return n
}

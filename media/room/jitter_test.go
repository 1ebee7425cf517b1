package room

import (
	"testing"

	"github.com/pion/rtp"
)

// The jitter buffer starts playing once jitterStart frames wait, drops
// late and duplicated packets, and bounds itself at jitterMax frames.
func TestJitterBuffer(t *testing.T) {
	r := testRoom(t)
	m := newTestMember(t, r, "a", "PCMU", 0, 0).Member
	frame := func(v int16) []int16 {
		f := make([]int16, 160)
		for i := range f {
			f[i] = v
		}
		return f
	}
	out := make([]int16, 160)

	m.push(10, frame(1))
	if m.pull(out) {
		t.Fatal("plays with one frame waiting")
	}
	m.push(9, frame(9))   // late
	m.push(10, frame(10)) // duplicate
	m.push(11, frame(2))
	for want := int16(1); want <= 2; want++ {
		if !m.pull(out) || out[0] != want {
			t.Fatalf("frame %d: got %d", want, out[0])
		}
	}
	if m.pull(out) {
		t.Fatal("plays from an empty buffer")
	}

	// A flood keeps only the newest jitterMax frames.
	for i := range 100 {
		m.push(uint16(12+i), frame(int16(i)))
	}
	if got := len(m.fifo) / 160; got != jitterMax {
		t.Errorf("%d frames kept, want %d", got, jitterMax)
	}
	if !m.pull(out) || out[0] != int16(100-jitterMax) {
		t.Errorf("first frame after the flood: %d, want %d", out[0], 100-jitterMax)
	}
	// Sequence numbers wrap.
	m.lastSeq = 65534
	m.push(65535, frame(7))
	m.push(0, frame(8))
	if m.fifo[len(m.fifo)-1] != 8 {
		t.Error("the packet after the wrap was dropped")
	}
	// A stream that restarts far behind (a new SSRC, a rebooted phone) is
	// taken up again at once.
	m.push(30000, frame(11))
	if m.fifo[len(m.fifo)-1] != 11 {
		t.Error("a restarted sequence was dropped")
	}
}

// A flood of keys reaches the service at most maxKeysPerSecond a second.
func TestKeyFlood(t *testing.T) {
	n := 0
	r := testRoom(t, WithKeys(func(*Member, uint8) { n++ }))
	m := newTestMember(t, r, "a", "PCMU", 0, 0).Member
	for i := range 50 {
		m.key(&rtp.Packet{Header: rtp.Header{Timestamp: uint32(i) * 800}, Payload: []byte{10, 0x80, 0, 160}})
	}
	if n != maxKeysPerSecond {
		t.Errorf("%d keys reported, want %d", n, maxKeysPerSecond)
	}
}

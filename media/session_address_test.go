package media

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// The per-side addresses of a relay bound to every address (rtp.address
// ""): each side's SDP announces the local address facing its phone.

var (
	facingA = netip.MustParseAddr("10.1.2.3")     // the address facing the caller
	facingB = netip.MustParseAddr("192.168.50.1") // the one facing the callee
	facingC = netip.MustParseAddr("172.16.0.9")   // another branch's
)

// sdpAddrs returns the address on the o= line of sdp, its session-level
// c= address, and its o= version.
func sdpAddrs(t *testing.T, sdp []byte) (o, c, version string) {
	t.Helper()
	om := regexp.MustCompile(`(?m)^o=parley \d+ (\d+) IN IP[46] (\S+)\r$`).FindStringSubmatch(string(sdp))
	cm := regexp.MustCompile(`(?m)^c=IN IP[46] (\S+)\r$`).FindAllStringSubmatch(string(sdp), -1)
	if om == nil || len(cm) != 1 {
		t.Fatalf("SDP without one o= and one c= line:\n%s", sdp)
	}
	return om[2], cm[0][1], om[1]
}

func wantAddr(t *testing.T, what string, sdp []byte, addr netip.Addr, version string) {
	t.Helper()
	o, c, v := sdpAddrs(t, sdp)
	if o != addr.String() || c != addr.String() || (version != "" && v != version) {
		t.Errorf("%s: o= %s c= %s version %s, want %v (version %s):\n%s", what, o, c, v, addr, version, sdp)
	}
}

func TestSessionPerSideAddress(t *testing.T) {
	s, _ := newTestSession(t, netip.IPv4Unspecified(), defaultPrefs)
	if _, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp")); err == nil {
		t.Fatal("an SDP was written with no address to announce")
	}
	s.SetAddress(SideA, facingA)
	s.SetAddress(SideB, facingB)
	s.SetAddress(SideB, netip.IPv4Unspecified()) // ignored
	toB, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr(t, "offer to the callee", toB, facingB, "1")
	toA, err := s.Answer(SideB, readB2B(t, "sipp_uas_answer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr(t, "answer to the caller", toA, facingA, "1")

	// A re-offer from the callee: each side keeps its own address.
	toA, err = s.Offer(SideB, readB2B(t, "callee_hold_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr(t, "re-offer to the caller", toA, facingA, "2")
}

func TestSessionFixedAddressIgnoresSetAddress(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	s.SetAddress(SideA, facingA)
	s.SetAddress(SideB, facingB)
	runSteps(t, s, []step{offerFrom(SideA, "sipp_uac_offer.sdp"), answerFrom(SideB, "sipp_uas_answer.sdp")})
	wantAddr(t, "to the caller", s.Current(SideA), relayAddr, "1")
	wantAddr(t, "to the callee", s.Current(SideB), relayAddr, "1")
	if got := s.Addressed(SideB, facingC); string(got) != string(s.Current(SideB)) {
		t.Errorf("Addressed re-addressed with a fixed address:\n%s", got)
	}
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sides[SideA].Address != "" || st.Sides[SideB].Address != "" {
		t.Errorf("a fixed address went into the checkpoint: %+v", st.Sides)
	}
}

// TestSessionForkedBranchAddress is a forked call whose second branch faces
// another local address: it gets a re-addressed copy of the offer, and when
// it wins, parley's record of what the callee was sent is that copy.
func TestSessionForkedBranchAddress(t *testing.T) {
	s, _ := newTestSession(t, netip.IPv4Unspecified(), defaultPrefs)
	s.SetAddress(SideA, facingA)
	s.SetAddress(SideB, facingB)
	toB, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	branch := s.Addressed(SideB, facingC)
	wantAddr(t, "the other branch's copy", branch, facingC, "1")
	if string(s.Current(SideB)) != string(toB) {
		t.Fatal("Addressed changed Current")
	}
	if want := strings.ReplaceAll(string(toB), facingB.String(), facingC.String()); string(branch) != want {
		t.Errorf("the copy differs in more than the address:\n%s\nwant:\n%s", branch, want)
	}
	if got := s.Addressed(SideB, facingB); string(got) != string(toB) {
		t.Error("Addressed with the side's own address is not Current")
	}

	// The other branch wins.
	s.SetAddress(SideB, facingC)
	if string(s.Current(SideB)) != string(branch) {
		t.Errorf("Current after SetAddress:\n%s\nwant what the branch got:\n%s", s.Current(SideB), branch)
	}
	runSteps(t, s, []step{answerFrom(SideB, "sipp_uas_answer.sdp")})
	// A session refresh from the caller with the same SDP sends the callee
	// the same SDP: same address, same version.
	out, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(branch) {
		t.Errorf("the same offer again reads:\n%s\nwant, unchanged:\n%s", out, branch)
	}
}

func TestCheckpointKeepsSideAddresses(t *testing.T) {
	orig, _ := newTestSession(t, netip.IPv4Unspecified(), defaultPrefs)
	orig.SetAddress(SideA, facingA)
	orig.SetAddress(SideB, facingB)
	runSteps(t, orig, []step{offerFrom(SideA, "sipp_uac_offer.sdp"), answerFrom(SideB, "sipp_uas_answer.sdp")})
	data, err := orig.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	st, err := orig.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sides[SideA].Address != facingA.String() || st.Sides[SideB].Address != facingB.String() {
		t.Fatalf("checkpoint addresses %q %q", st.Sides[SideA].Address, st.Sides[SideB].Address)
	}

	// An old checkpoint has no addresses: each side's comes from the c=
	// line it was sent.
	var old map[string]any
	if err := json.Unmarshal(data, &old); err != nil {
		t.Fatal(err)
	}
	for _, side := range old["sides"].([]any) {
		delete(side.(map[string]any), "address")
	}
	oldData, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}

	for name, data := range map[string][]byte{"checkpoint": data, "old checkpoint": oldData} {
		t.Run(name, func(t *testing.T) {
			s, err := newFakeSessions(t, netip.IPv4Unspecified()).Restore(data)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, side := range []Side{SideA, SideB} {
				if string(s.Current(side)) != string(orig.Current(side)) {
					t.Errorf("Current(%v) changed", side)
				}
			}
			// The next exchange announces each side's address as before.
			toA, err := s.Offer(SideB, readB2B(t, "callee_hold_offer.sdp"))
			if err != nil {
				t.Fatal(err)
			}
			wantAddr(t, "re-offer to the caller", toA, facingA, "2")
			toB, err := s.Answer(SideA, readB2B(t, "caller_hold_answer.sdp"))
			if err != nil {
				t.Fatal(err)
			}
			wantAddr(t, "answer to the callee", toB, facingB, "")
			st, err := s.State()
			if err != nil {
				t.Fatal(err)
			}
			if st.Sides[SideA].Address != facingA.String() || st.Sides[SideB].Address != facingB.String() {
				t.Errorf("restored addresses %q %q", st.Sides[SideA].Address, st.Sides[SideB].Address)
			}
		})
	}

	// A node with a fixed address announces it, whatever the checkpoint.
	s, err := newFakeSessions(t, relayAddr).Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	toA, err := s.Offer(SideB, readB2B(t, "callee_hold_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr(t, "re-offer from a fixed-address node", toA, relayAddr, "2")
}

// TestMoveThenSetAddress moves a call to a node bound to every address:
// the re-INVITE's SDP, one version up, announces what that node's
// SetAddress says faces each phone.
func TestMoveThenSetAddress(t *testing.T) {
	orig, _ := newTestSession(t, netip.IPv4Unspecified(), defaultPrefs)
	orig.SetAddress(SideA, facingA)
	orig.SetAddress(SideB, facingB)
	runSteps(t, orig, []step{offerFrom(SideA, "sipp_uac_offer.sdp"), answerFrom(SideB, "sipp_uas_answer.sdp")})
	data, err := orig.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	s, err := newFakeSessions(t, netip.IPv4Unspecified()).Move(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantAddr(t, "moved, before SetAddress", s.Current(SideA), facingA, "2")
	s.SetAddress(SideA, facingC)
	wantAddr(t, "moved, after SetAddress", s.Current(SideA), facingC, "2")
	wantAddr(t, "moved, the callee", s.Current(SideB), facingB, "2")
}

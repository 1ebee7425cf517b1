// Package testcalls holds parley's end-to-end tests: each test builds a
// config, runs the parley binary as a process on 127.0.0.1 and talks to it
// with real peers, the way a user's phones and trunks would.
//
// The peers are real softphones — two baresip instances (interop_test.go:
// a tone recorded across a call and checked with sox, RFC 4733 DTMF, hold
// and resume) and linphone's command-line phone calling a baresip phone
// (linphone_test.go) — SIPp scenarios (also for RFC 4028 session timers,
// timers_test.go), and sipgo user agents written in the tests (a "phone" that
// registers with digest auth, places calls with an SDP offer, answers with
// 180 and 200, rejects with 486 and sends ACK, BYE and CANCEL) and SIPp
// (the built-in uac and uas scenarios and the XML scenarios under
// scenarios/). The tests cover registration and its refusals, user-to-user
// calls over UDP and TCP hung up from either side, calls to routes and to
// the echo service, CANCEL, busy, unregistered and unknown callees,
// malformed messages, config checking and the Prometheus metrics that
// should reflect all of that. The media tests (media_test.go,
// media_late_test.go) send real RTP both ways through parley's relay and
// check order and payload, codec negotiation and 488, symmetric latching
// for a phone behind NAT, the RTP inactivity hangup, late offer, bad SDP,
// port exhaustion (503) and that every port returns to the pool; one runs
// SIPp's uac_pcap against a SIPp -rtp_echo callee.
//
// The package has no non-test code. Run it from the repository root with
//
//	go test ./testcalls/ -count=1 -v
//
// TestMain builds ./cmd/parley once into a temporary directory; every test
// then starts its own parley process on free loopback ports, waits for
// /readyz and stops it with SIGTERM when done. A failing test logs the tail
// of parley's output. Tests that need SIPp are skipped when the sipp binary
// is not on PATH (Debian package sip-tester). Set PARLEY_BIN to test an
// already built binary instead of building one, and PARLEY_TEST_VERBOSE=1
// to log parley's output for passing tests too.
//
// The benchmarks are scripts, not tests: bench/cps.sh (call rate) and
// bench/media.sh (the relay against rtpengine, driven by bench/rtpload).
// Results are in bench/RESULTS.md.
package testcalls

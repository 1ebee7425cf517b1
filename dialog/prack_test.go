package dialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestParseRAck(t *testing.T) {
	for _, tt := range []struct {
		value      string
		rseq, cseq uint32
		method     string
		ok         bool
	}{
		{"776656 1 INVITE", 776656, 1, "INVITE", true},
		{"  5   3 invite ", 5, 3, "INVITE", true},
		{"0 1 INVITE", 0, 0, "", false},
		{"1 INVITE", 0, 0, "", false},
		{"x 1 INVITE", 0, 0, "", false},
		{"1 99999999999 INVITE", 0, 0, "", false},
	} {
		req := sip.NewRequest(sip.PRACK, sip.Uri{Scheme: "sip", Host: "h"})
		req.AppendHeader(sip.NewHeader("RAck", tt.value))
		rseq, cseq, method, ok := parseRAck(req)
		if ok != tt.ok || rseq != tt.rseq || cseq != tt.cseq || method != tt.method {
			t.Errorf("RAck %q: %d %d %q %v, want %d %d %q %v", tt.value, rseq, cseq, method, ok, tt.rseq, tt.cseq, tt.method, tt.ok)
		}
	}
}

func TestReliableRSeq(t *testing.T) {
	res := func(code int, hdrs ...string) *sip.Response {
		r := sip.NewResponse(code, "x")
		for i := 0; i+1 < len(hdrs); i += 2 {
			r.AppendHeader(sip.NewHeader(hdrs[i], hdrs[i+1]))
		}
		return r
	}
	for _, tt := range []struct {
		name string
		res  *sip.Response
		want uint32
	}{
		{"reliable 180", res(180, "Require", "100rel", "RSeq", "7"), 7},
		{"reliable 183, list", res(183, "Require", "timer, 100rel", "RSeq", "9"), 9},
		{"no Require", res(180, "RSeq", "7"), 0},
		{"no RSeq", res(180, "Require", "100rel"), 0},
		{"bad RSeq", res(180, "Require", "100rel", "RSeq", "x"), 0},
		{"100 Trying", res(100, "Require", "100rel", "RSeq", "7"), 0},
		{"200", res(200, "Require", "100rel", "RSeq", "7"), 0},
	} {
		if got := reliableRSeq(tt.res); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

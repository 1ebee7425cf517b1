package dialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

func TestParseReplaces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want replaces
		ok   bool
	}{
		{"abc@host;to-tag=12;from-tag=34", replaces{callID: "abc@host", toTag: "12", fromTag: "34"}, true},
		{" abc ; FROM-TAG=34 ; To-Tag=12 ;early-only", replaces{callID: "abc", toTag: "12", fromTag: "34", earlyOnly: true}, true},
		{"abc;to-tag=12", replaces{}, false},
		{";to-tag=12;from-tag=34", replaces{}, false},
		{"", replaces{}, false},
	} {
		got, err := parseReplaces(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseReplaces(%q) = %+v, %v; want %+v ok=%t", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestReferTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		referTo  []string
		user     string
		replaces *replaces
		code     int
	}{
		{name: "blind", referTo: []string{"<sip:1003@parley.lab>"}, user: "1003"},
		{name: "addr-spec", referTo: []string{"sip:1003@parley.lab"}, user: "1003"},
		{name: "with display name", referTo: []string{`"Carol" <sip:1003@parley.lab;user=phone>`}, user: "1003"},
		{name: "attended", referTo: []string{"<sip:1003@parley.lab?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>"}, user: "1003",
			replaces: &replaces{callID: "a@b", toTag: "1", fromTag: "2"}},
		{name: "method INVITE", referTo: []string{"<sip:1003@parley.lab?method=INVITE>"}, user: "1003"},
		{name: "none", code: 400},
		{name: "two", referTo: []string{"<sip:1@x>", "<sip:2@x>"}, code: 400},
		{name: "tel", referTo: []string{"<tel:+4930123>"}, code: 416},
		{name: "no user", referTo: []string{"<sip:parley.lab>"}, code: 400},
		{name: "method BYE", referTo: []string{"<sip:1003@parley.lab?method=BYE>"}, code: 501},
		{name: "bad Replaces", referTo: []string{"<sip:1003@parley.lab?Replaces=abc>"}, code: 400},
		{name: "unclosed", referTo: []string{"<sip:1003@parley.lab"}, code: 400},
	} {
		req := sip.NewRequest(sip.REFER, sip.Uri{Scheme: "sip", User: "parley", Host: "127.0.0.1"})
		for _, v := range tc.referTo {
			req.AppendHeader(sip.NewHeader("Refer-To", v))
		}
		u, rp, err := referTarget(req)
		if tc.code != 0 {
			if se := sipmsg.ErrorFor(err); err == nil || se.Code != tc.code {
				t.Errorf("%s: err %v, want %d", tc.name, err, tc.code)
			}
			continue
		}
		if err != nil || u.User != tc.user {
			t.Errorf("%s: %v %v, want user %s", tc.name, u, err, tc.user)
			continue
		}
		if (rp == nil) != (tc.replaces == nil) || rp != nil && *rp != *tc.replaces {
			t.Errorf("%s: replaces %+v, want %+v", tc.name, rp, tc.replaces)
		}
	}
}

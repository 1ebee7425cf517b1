package paging

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/dialog/service/servicetest"
)

func env(t *testing.T, yaml string) service.Env {
	t.Helper()
	return servicetest.Env(t, yaml, 31980, 31999)
}

// TestSetup: services.paging gives one group per number, each a
// dialog.Pager with its members, whose session makes members' offers.
func TestSetup(t *testing.T) {
	if b, err := setup(env(t, "services: {echo: \"\"}\n")); err != nil || len(b) != 0 {
		t.Fatalf("no groups: got %v, %v", b, err)
	}
	yaml := "users:\n  - {username: '1001', password: x}\n  - {username: '1002', password: y}\n" +
		"services:\n  paging: {'701': ['1002'], '700': ['1001', '1002']}\n"
	b, err := setup(env(t, yaml))
	if err != nil || len(b) != 2 || b[0].Number != "700" || b[1].Number != "701" {
		t.Fatalf("got %+v, %v; want groups 700 and 701", b, err)
	}
	pg, ok := b[0].Service.(dialog.Pager)
	if !ok || strings.Join(pg.Members(), ",") != "1001,1002" {
		t.Fatalf("group 700 is %T with members %v", b[0].Service, pg)
	}
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
	_, sess, err := pg.Start([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ps, ok := sess.(dialog.PageSession)
	if !ok {
		t.Fatalf("session %T cannot page", sess)
	}
	member, _, err := ps.Offer(netip.MustParseAddr("127.0.0.1"))
	if err != nil || !strings.Contains(string(member), "a=sendonly") {
		t.Fatalf("member offer %q, %v", member, err)
	}
	if !strings.Contains(strings.Join(service.Names(), ","), "paging") {
		t.Errorf("paging not registered: %v", service.Names())
	}
}

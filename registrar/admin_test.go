package registrar

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAll(t *testing.T) {
	e := newTestEnv(t, nil)
	e.registerAs(t, "register.sip", msgVars{User: "1002", Source: "198.51.100.2:6000"})
	e.registerAs(t, "register_multi.sip", msgVars{User: "1001", Expires: "120"})
	if got := e.r.All(); len(got) != 4 {
		t.Fatalf("All = %d bindings, want 4", len(got))
	}

	// contact21 expires at 120 s; contact22 is marked unreachable.
	e.clock.Advance(121 * time.Second)
	b22 := e.r.Lookup("1001")[0]
	if b22.Contact != contact22 {
		t.Fatalf("newest binding is %s", b22.Contact)
	}
	for range qualifyFailures {
		e.r.loc.qualified(&b22, 0, errors.New("no answer"), e.clock.Now())
	}

	type row struct{ user, contact, reachable string }
	var got []row
	for _, b := range e.r.All() {
		got = append(got, row{b.User, b.Contact, b.Reachable})
	}
	want := []row{
		{"1001", contact22, ReachableNo}, // newest first, unreachable included
		{"1001", contact20, ReachableUnknown},
		{"1002", "sip:1002@192.168.1.20:5062;transport=udp", ReachableUnknown},
	}
	if !slices.Equal(got, want) {
		t.Errorf("All\n got %v\nwant %v", got, want)
	}
	if got := contactsOf(e.r.Lookup("1001")); !slices.Equal(got, []string{contact20}) {
		t.Errorf("Lookup = %q, want only the reachable, unexpired one", got)
	}
}

func TestAllEmpty(t *testing.T) {
	e := newTestEnv(t, nil)
	if got := e.r.All(); got == nil || len(got) != 0 {
		t.Errorf("All = %#v, want an empty, non-nil slice", got)
	}
}

func TestRemoveUser(t *testing.T) {
	store := NewMemoryStore().(*memoryStore)
	e := newTestEnv(t, store)
	e.registerAs(t, "register_multi.sip", msgVars{User: "1001"})
	e.registerAs(t, "register.sip", msgVars{User: "1002", Source: "198.51.100.2:6000"})
	if err := e.r.flush(); err != nil {
		t.Fatal(err)
	}
	if len(store.users["1001"]) != 3 {
		t.Fatalf("store holds %d bindings of 1001 before", len(store.users["1001"]))
	}

	if n := e.r.RemoveUser("1001"); n != 3 {
		t.Errorf("RemoveUser = %d, want 3", n)
	}
	if bs := e.r.Lookup("1001"); len(bs) != 0 {
		t.Errorf("Lookup after RemoveUser = %+v", bs)
	}
	if got := e.r.All(); len(got) != 1 || got[0].User != "1002" {
		t.Errorf("All after RemoveUser = %+v", got)
	}
	if g := testutil.ToFloat64(e.r.gauge); g != 1 {
		t.Errorf("%s = %v, want 1", metricRegistrations, g)
	}
	if g := contactGauges(t, e.r); g != [3]int{0, 0, 1} {
		t.Errorf("contact gauges = %v", g)
	}
	for _, user := range []string{"1001", "nobody"} {
		if n := e.r.RemoveUser(user); n != 0 {
			t.Errorf("RemoveUser(%q) = %d, want 0", user, n)
		}
	}

	// Persisted like Contact: * with Expires: 0.
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.users["1001"]; ok {
		t.Error("the store still holds 1001")
	}
	if len(store.users["1002"]) != 1 {
		t.Error("the store lost 1002")
	}
}

func TestRemoveUserThenRegisterAgain(t *testing.T) {
	e := newTestEnv(t, nil)
	e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 1})
	e.r.RemoveUser("1001")
	// The phone's next refresh (same Call-ID, higher CSeq) is welcome.
	if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 2}); res.StatusCode != 200 {
		t.Fatalf("refresh after removal: %d", res.StatusCode)
	}
	if bs := e.r.Lookup("1001"); len(bs) != 1 || bs[0].Reachable != ReachableUnknown {
		t.Errorf("after the refresh: %+v", bs)
	}
}

// TestBindingJSON pins the field names the admin API shows.
func TestBindingJSON(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       Binding
		present []string
		absent  []string
	}{
		{
			name:    "not pinged yet",
			b:       Binding{User: "1001", Reachable: ReachableUnknown},
			present: []string{"user", "contact", "source", "transport", "expires", "reachable"},
			absent:  []string{"rtt_ns", "last_ping"},
		},
		{
			name:    "answered",
			b:       Binding{User: "1001", Reachable: ReachableYes, RTT: 12 * time.Millisecond, LastPing: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
			present: []string{"reachable", "rtt_ns", "last_ping"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.present {
				if _, ok := m[k]; !ok {
					t.Errorf("%s missing from %s", k, data)
				}
			}
			for _, k := range tc.absent {
				if _, ok := m[k]; ok {
					t.Errorf("%s present in %s", k, data)
				}
			}
			if m["reachable"] != tc.b.Reachable {
				t.Errorf("reachable = %v", m["reachable"])
			}
			if tc.b.RTT > 0 && m["rtt_ns"] != float64(tc.b.RTT) {
				t.Errorf("rtt_ns = %v, want %d", m["rtt_ns"], tc.b.RTT)
			}
		})
	}
}

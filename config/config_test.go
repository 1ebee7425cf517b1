package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.Realm != "parley.lab" || c.RTP.Timeout != 30*time.Second || c.Sessions.DrainGrace != time.Minute {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	// Defaults that just work (part 8): the relay binds every address and
	// announces the one facing each phone, on 10,000 ports.
	if c.RTP.Address != "" || c.RTP.PortMin != 10000 || c.RTP.PortMax != 19999 {
		t.Fatalf("rtp defaults = %+v, want address \"\" and ports 10000-19999", c.RTP)
	}
	ls := c.Listeners()
	if len(ls) != 2 || ls[0].Network != "udp" || ls[1].Network != "tcp" || ls[0].Addr != "0.0.0.0:5060" {
		t.Fatalf("listeners = %+v", ls)
	}
	for _, u := range c.Users {
		if u.Password != "" {
			t.Errorf("default user %s has a fixed password", u.Username)
		}
	}
}

func TestSpecFileIsAccepted(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].Target != "sip:$1@127.0.0.1:5070" {
		t.Fatalf("routes = %+v", c.Routes)
	}
	if c.Registrar.Qualify != 30*time.Second || c.Sessions.MaxDuration != 4*time.Hour {
		t.Fatalf("durations = %v %v", c.Registrar.Qualify, c.Sessions.MaxDuration)
	}
}

func TestBadConfigNamesKey(t *testing.T) {
	tests := []struct {
		name, yaml, key string
	}{
		{"unknown top key", "sipp: {}\n", "sipp"},
		{"unknown nested key", "sip:\n  listne: []\n", "sip.listne"},
		{"unknown user key", "users:\n  - username: a\n    pasword: x\n", "users[0].pasword"},
		{"bad listen scheme", "sip:\n  listen: [ws://0.0.0.0:5061]\n", "sip.listen[0]"},
		{"bad algorithm", "sip:\n  auth_algorithms: [SHA-512]\n", "sip.auth_algorithms[0]"},
		{"no algorithm", "sip:\n  auth_algorithms: []\n", "sip.auth_algorithms"},
		{"bad trusted", "sip:\n  trusted: [10.0.0.0/33]\n", "sip.trusted[0]"},
		{"odd port_min", "rtp:\n  port_min: 10001\n", "rtp.port_min"},
		{"port_max below", "rtp:\n  port_min: 20000\n  port_max: 10000\n", "rtp.port_max"},
		{"unknown codec", "rtp:\n  codecs: [PCMU, GSM]\n", "rtp.codecs[1]"},
		{"bad duration", "rtp:\n  timeout: soon\n", "rtp.timeout"},
		{"bad int", "sessions:\n  max_calls: many\n", "sessions.max_calls"},
		{"min_se too small", "sessions:\n  min_se: 30\n", "sessions.min_se"},
		{"expires below min_se", "sessions:\n  expires: 100\n  min_se: 120\n", "sessions.expires"},
		{"max_expires below min", "registrar:\n  min_expires: 600\n  max_expires: 60\n", "registrar.max_expires"},
		{"bad dtmf mode", "users:\n  - username: a\n    dtmf_mode: inband\n", "users[0].dtmf_mode"},
		{"duplicate user", "users:\n  - username: a\n  - username: a\n", "users[1].username"},
		{"bad route regex", "routes:\n  - match: '(('\n    target: sip:x@h\n", "routes[0].match"},
		{"bad route target", "routes:\n  - match: x\n    target: http://h\n", "routes[0].target"},
		{"echo clashes", "users:\n  - username: '600'\nservices:\n  echo: '600'\n", "services.echo"},
		{"paging member unknown", "users:\n  - {username: '1001', password: x}\nservices:\n  paging: {'700': ['1001', '1009']}\n", "services.paging.700[1]"},
		{"paging clashes with echo", "users:\n  - {username: '1001', password: x}\nservices:\n  echo: '700'\n  paging: {'700': ['1001']}\n", "services.paging.700"},
		{"paging clashes with a room", "users:\n  - {username: '1001', password: x}\nservices:\n  rooms: {'700': {mode: conference}}\n  paging: {'700': ['1001']}\n", "services.paging.700"},
		{"paging group empty", "users:\n  - {username: '1001', password: x}\nservices:\n  paging: {'700': []}\n", "services.paging.700"},
		{"bad log level", "log:\n  level: loud\n", "log.level"},
		{"cdr path a directory", "cdr:\n  path: ./data/\n", "cdr.path"},
		{"bad admin listen", "admin:\n  listen: nowhere\n", "admin.listen"},
		{"dns server a name", "sip:\n  dns: [ns.example]\n", "sip.dns[0]"},
		{"dns server bad port", "sip:\n  dns: ['127.0.0.53:53', '127.0.0.1:99999']\n", "sip.dns[1]"},
		{"tiny max message", "sip:\n  max_message_size: 100\n", "sip.max_message_size"},
		{"no tcp connections", "sip:\n  tcp: {max_connections: 0}\n", "sip.tcp.max_connections"},
		{"per source above total", "sip:\n  tcp: {max_connections: 10, max_per_source: 20}\n", "sip.tcp.max_per_source"},
		{"sub-second idle timeout", "sip:\n  tcp: {idle_timeout: 500ms}\n", "sip.tcp.idle_timeout"},
		{"sub-second first message timeout", "sip:\n  tcp: {first_message_timeout: 10ms}\n", "sip.tcp.first_message_timeout"},
		{"rtp address not an IP", "rtp:\n  address: lan\n", "rtp.address"},
		{"negative rtp timeout", "rtp:\n  timeout: -1s\n", "rtp.timeout"},
		{"bare number for a duration", "rtp:\n  timeout: 30\n", "rtp.timeout"},
		{"zero ban window", "security:\n  ban_window: 0\n", "security.ban_window"},
		{"zero ban time", "security:\n  ban_time: 0\n", "security.ban_time"},
		{"zero heartbeat", "node:\n  heartbeat: 0\n", "node.heartbeat"},
		{"zero max contacts", "registrar:\n  max_contacts: 0\n", "registrar.max_contacts"},
		{"short admin token", "admin:\n  token: abc\n", "admin.token"},
		{"negative ban_after", "security:\n  ban_after: -1\n", "security.ban_after"},
		{"rate without burst", "security:\n  rate: 5\n  burst: 0\n", "security.burst"},
		{"bad ha1", "users:\n  - username: a\n    ha1: xyz\n", "users[0].ha1"},
		{"address6 not IPv6", "rtp:\n  address6: 127.0.0.1\n", "rtp.address6"},
		{"redis not a URL", "store:\n  redis: localhost:6379\n", "store.redis"},
		{"redis wrong scheme", "store:\n  redis: http://127.0.0.1:6379\n", "store.redis"},
		{"node id with a colon", "node:\n  id: 'a:b'\n", "node.id"},
		{"heartbeat too short", "node:\n  heartbeat: 10ms\n", "node.heartbeat"},
		{"password and ha1", "users:\n  - username: a\n    password: p\n    ha1: 0123456789abcdef0123456789abcdef\n", "users[0].password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml")
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("error %q does not name %s", err, tt.key)
			}
			var ce *Error
			if errors.As(err, &ce) && ce.Key != tt.key {
				t.Fatalf("Error.Key = %q, want %q", ce.Key, tt.key)
			}
		})
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte("sip:\n  realm: example.test\nusers: []\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.Realm != "example.test" || len(c.Users) != 0 || len(c.SIP.Listen) != 2 {
		t.Fatalf("got %+v", c.SIP)
	}
}

func TestEmptyFileKeepsDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}

// TestDurationsAcceptZero gives each duration whose 0 means off or never a
// bare 0 (and 0s): the spec says durations accept 0.
func TestDurationsAcceptZero(t *testing.T) {
	tests := []struct {
		key, yaml string
		get       func(*Config) time.Duration
	}{
		{"sip.tcp.idle_timeout", "sip:\n  tcp:\n    idle_timeout: %s\n", func(c *Config) time.Duration { return c.SIP.TCP.IdleTimeout }},
		{"sip.tcp.first_message_timeout", "sip:\n  tcp:\n    first_message_timeout: %s\n", func(c *Config) time.Duration { return c.SIP.TCP.FirstMessageTimeout }},
		{"rtp.timeout", "rtp:\n  timeout: %s\n", func(c *Config) time.Duration { return c.RTP.Timeout }},
		{"sessions.max_duration", "sessions:\n  max_duration: %s\n", func(c *Config) time.Duration { return c.Sessions.MaxDuration }},
		{"sessions.drain_grace", "sessions:\n  drain_grace: %s\n", func(c *Config) time.Duration { return c.Sessions.DrainGrace }},
		{"registrar.qualify", "registrar:\n  qualify: %s\n", func(c *Config) time.Duration { return c.Registrar.Qualify }},
		{"security.ban_window (bans off)", "security:\n  ban_after: 0\n  ban_window: %s\n", func(c *Config) time.Duration { return c.Security.BanWindow }},
	}
	for _, tt := range tests {
		for _, zero := range []string{"0", "0s", `"0"`} {
			t.Run(tt.key+"="+zero, func(t *testing.T) {
				c, err := Parse([]byte(strings.Replace(tt.yaml, "%s", zero, 1)), "zero.yaml")
				if err != nil {
					t.Fatal(err)
				}
				if got := tt.get(c); got != 0 {
					t.Fatalf("%s = %v, want 0", tt.key, got)
				}
			})
		}
	}
}

// TestZeroKeepsOtherKeys checks that a bare 0 rewritten for the decoder
// leaves the rest of the file as it was.
func TestZeroKeepsOtherKeys(t *testing.T) {
	c, err := Parse([]byte("rtp:\n  timeout: 0\n  port_min: 20000\n  port_max: 20099\n  address: 10.0.0.5\nsessions:\n  max_calls: 0\n  max_duration: 0\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.RTP.Timeout != 0 || c.RTP.PortMin != 20000 || c.RTP.PortMax != 20099 || c.RTP.Address != "10.0.0.5" ||
		c.Sessions.MaxCalls != 0 || c.Sessions.MaxDuration != 0 || c.Sessions.DrainGrace != time.Minute {
		t.Fatalf("got rtp %+v sessions %+v", c.RTP, c.Sessions)
	}
}

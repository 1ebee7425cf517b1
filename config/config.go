package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole of parley's configuration. Its YAML keys are those of
// shared/spec/parley.yaml plus the few this build adds (log.*).
type Config struct {
	SIP       SIP       `yaml:"sip"`
	RTP       RTP       `yaml:"rtp"`
	Sessions  Sessions  `yaml:"sessions"`
	Registrar Registrar `yaml:"registrar"`
	Admin     Admin     `yaml:"admin"`
	Store     Store     `yaml:"store"`
	Users     []User    `yaml:"users"`
	Routes    []Route   `yaml:"routes"`
	Services  Services  `yaml:"services"`
	Security  Security  `yaml:"security"`
	Node      Node      `yaml:"node"`
	Log       Log       `yaml:"log"`
	// Capture copies SIP messages to a HEP collector (capture.go).
	Capture Capture `yaml:"capture"`
	// CDR is where call records go (issue 14).
	CDR CDR `yaml:"cdr"`
	// Trunks are the upstream providers parley registers with (trunks.go).
	Trunks []Trunk `yaml:"trunks"`
}

// SIP holds the signalling settings.
type SIP struct {
	// Listen lists the transports to serve, as scheme://host:port.
	Listen []string `yaml:"listen"`
	// Realm is the digest realm and the domain of local users.
	Realm string `yaml:"realm"`
	// PublicAddress is announced in Via, Contact and SDP when behind NAT.
	PublicAddress string `yaml:"public_address"`
	// Trusted lists networks (CIDR) whose requests are not challenged.
	Trusted []string `yaml:"trusted"`
	// AuthAlgorithms lists the digest algorithms challenged with, in order
	// (added by this build). MD5 leads by default because SIPp 3.6 and many
	// desk phones read only the first challenge.
	AuthAlgorithms []string `yaml:"auth_algorithms"`
	// MaxMessageSize is the largest SIP message taken over UDP or TCP, in
	// bytes; a larger one is refused (TCP: the connection is closed).
	MaxMessageSize int `yaml:"max_message_size"`
	// TCP bounds the TCP connections parley accepts (TLS ones too).
	TCP TCP `yaml:"tcp"`

	// DNS lists the DNS servers (IP, or IP:port) that host names in route
	// targets are resolved with (RFC 3263, dns.go); empty: those of
	// /etc/resolv.conf.
	DNS []string `yaml:"dns"`
	// TLS is the certificate of the tls:// listeners (part 10, tls.go).
	TLS TLS `yaml:"tls"`
}

// TCP holds the limits on SIP over TCP: reaching one refuses or closes the
// newest connection, and never stops the listener.
type TCP struct {
	// MaxConnections bounds the open connections in all, MaxPerSource
	// those from one IP address.
	MaxConnections int `yaml:"max_connections"`
	MaxPerSource   int `yaml:"max_per_source"`
	// IdleTimeout closes a connection that sent nothing this long;
	// FirstMessageTimeout one that has not sent a complete message this
	// long after it was accepted.
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	FirstMessageTimeout time.Duration `yaml:"first_message_timeout"`
}

// RTP holds the media relay settings.
type RTP struct {
	// Address is the IP the relay binds and announces in SDP. Empty binds
	// every (IPv4) address and announces to each phone, per call, the
	// local address facing it, as Via and Contact do (sip.public_address,
	// when set, wins).
	Address string `yaml:"address"`
	// Address6 is the IPv6 address the relay binds and announces to IPv6
	// phones. Empty: with Address empty, every IPv6 address (when this
	// host has IPv6), announced per phone like IPv4; with Address set,
	// no IPv6 relay. A call between an IPv4 and an IPv6 phone is bridged.
	Address6 string `yaml:"address6"`
	// PortMin and PortMax bound the relay's ports, inclusive.
	PortMin int      `yaml:"port_min"`
	PortMax int      `yaml:"port_max"`
	Codecs  []string `yaml:"codecs"`
	// Timeout ends a call whose media stopped this long; 0 never does.
	Timeout time.Duration `yaml:"timeout"`
	// SRTP is the SDES-SRTP policy (RFC 4568), per leg of a relayed call:
	// off, optional or mandatory (SRTPOff, ...).
	SRTP string `yaml:"srtp"`
}

// The values of rtp.srtp.
const (
	// SRTPOff refuses RTP/SAVP offers and answers a=crypto on RTP/AVP
	// with plain RTP (best effort declined, as RFC 4568 §6.2 allows).
	SRTPOff = "off"
	// SRTPOptional gives SRTP to a phone that offers it, plain RTP to one
	// that does not.
	SRTPOptional = "optional"
	// SRTPMandatory refuses a leg without SRTP with 488.
	SRTPMandatory = "mandatory"
)

// Sessions holds per-call limits and timers.
type Sessions struct {
	Expires         int           `yaml:"expires"`
	MinSE           int           `yaml:"min_se"`
	MaxDuration     time.Duration `yaml:"max_duration"`
	MaxCalls        int           `yaml:"max_calls"`
	MaxCallsPerUser int           `yaml:"max_calls_per_user"`
	DrainGrace      time.Duration `yaml:"drain_grace"`
	// Checkpoint writes each answered call's state to the store at its
	// sync points, so a restarted parley (or another node) resumes it.
	Checkpoint bool `yaml:"checkpoint"`
}

// Registrar holds the registration settings.
type Registrar struct {
	MinExpires int           `yaml:"min_expires"`
	MaxExpires int           `yaml:"max_expires"`
	Qualify    time.Duration `yaml:"qualify"`
	// MaxContacts bounds the bindings one user may hold.
	MaxContacts int `yaml:"max_contacts"`
}

// Admin holds the admin HTTP settings.
type Admin struct {
	Listen string `yaml:"listen"`
	// Token is the bearer token every state-changing admin request needs.
	// Empty: one is generated on first start and kept in the store
	// directory, where the CLI finds it.
	Token string `yaml:"token"`
	// PProf serves /debug/pprof/ when set.
	PProf bool `yaml:"pprof"`
}

// Store says where registrations and generated secrets are kept.
type Store struct {
	// Path is a directory; empty keeps everything in memory only.
	Path string `yaml:"path"`
	// Redis is a redis:// URL; when set, registrations, checkpoints and
	// bans live there, shared by every node that names it.
	Redis string `yaml:"redis"`
}

// Node names this process in a cluster of parley nodes sharing one Redis.
type Node struct {
	// ID is this node's name; empty means the host name.
	ID string `yaml:"id"`
	// Heartbeat is how often the node says it is alive; a node silent for
	// three heartbeats is dead and its calls are adopted.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// User is a local account.
type User struct {
	Username string `yaml:"username"`
	// Password is the digest password. Empty asks parley to generate one on
	// first start and keep it in the store directory.
	Password string `yaml:"password"`
	// HA1 and HA1SHA256 are digest hashes, H(user:realm:password) in hex
	// with MD5 and SHA-256, that may stand in for a plain password.
	HA1         string `yaml:"ha1"`
	HA1SHA256   string `yaml:"ha1_sha256"`
	DisplayName string `yaml:"display_name"`
	// DTMFMode is how the user's phone sends and receives keys, as
	// Asterisk's dtmf_mode: DTMFAuto (the default, also for ""), DTMFRFC4733
	// or DTMFInfo. parley converts between the two legs' modes.
	DTMFMode string `yaml:"dtmf_mode"`
	// SRTP is the user's phone's SDES-SRTP policy, as Asterisk's
	// media_encryption per endpoint: off, optional or mandatory (SRTPOff,
	// ...); "" is rtp.srtp's.
	SRTP string `yaml:"srtp"`
}

// The values of users[].dtmf_mode.
const (
	// DTMFAuto sends RFC 4733 events to a phone whose SDP has
	// telephone-event, and SIP INFO to one whose SDP has not.
	DTMFAuto = "auto"
	// DTMFRFC4733 always negotiates telephone-event with the phone, even
	// when the other phone lacks it.
	DTMFRFC4733 = "rfc4733"
	// DTMFInfo strips telephone-event from the SDP to and from the phone,
	// so that it sends and receives keys as SIP INFO.
	DTMFInfo = "info"
)

// Route sends calls for non-local users somewhere else.
type Route struct {
	// Match is a regular expression on the dialled user part.
	Match string `yaml:"match"`
	// Target is a SIP URI; $1.. expand to the match's groups.
	Target string `yaml:"target"`
	// Trunk sends matching calls through that trunk (trunks[].name): to
	// its registrar, from its user, answering its challenges.
	Trunk string `yaml:"trunk"`
}

// Services names the numbers of built-in services.
type Services struct {
	// Echo is the user part that reaches the echo service; empty disables it.
	Echo string `yaml:"echo"`
	// Paging maps a number to the users it pages (simplex: the caller is
	// heard by every member, nothing flows back).
	Paging map[string][]string `yaml:"paging"`

	// Rooms maps numbers to conference and push-to-talk rooms
	// (rooms.go).
	Rooms map[string]Room `yaml:"rooms"`
	// Playback maps numbers to a WAV file or tone:HZ to play.
	Playback map[string]string `yaml:"playback"`
}

// Security holds the defences against scanners, password guessing and
// floods. Trusted networks (sip.trusted) are never banned, limited or
// dropped.
type Security struct {
	// BanAfter failed authentications, or challenges left unanswered,
	// within BanWindow ban a source for BanTime. 0 turns bans off.
	BanAfter  int           `yaml:"ban_after"`
	BanWindow time.Duration `yaml:"ban_window"`
	BanTime   time.Duration `yaml:"ban_time"`
	// Rate is the requests per second one source may send without valid
	// credentials (a token bucket of Burst); 0: no limit.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// DropUserAgents lists User-Agent substrings (compared without regard
	// to case) whose requests are dropped silently: scanners.
	DropUserAgents []string `yaml:"drop_user_agents"`
}

// CDR holds the call detail records' settings.
type CDR struct {
	// Path is the CSV file records are appended to, in Asterisk's
	// cdr_csv column order with parley's columns after; "" turns the file
	// off. It is reopened on SIGHUP, for log rotation.
	Path string `yaml:"path"`
}

// Log holds logging settings (added by this build).
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Default returns the embedded default configuration, validated.
func Default() (*Config, error) {
	return parse(defaultYAML, "default config")
}

// Load reads the file at path over the built-in defaults and validates it.
// Keys the file leaves out keep their default value; lists it sets replace
// the default list.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes data (named name in errors) over the defaults and validates it.
func Parse(data []byte, name string) (*Config, error) {
	return parse(data, name)
}

func parse(data []byte, name string) (*Config, error) {
	c := &Config{}
	if err := decodeStrict(defaultYAML, c); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	if err := decodeStrict(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// decodeStrict decodes YAML into c, naming the first unknown or mistyped key
// by its full path (sip.listen, users[2].password).
func decodeStrict(data []byte, c *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if len(root.Content) == 0 {
		return nil // empty file: defaults stand
	}
	doc := root.Content[0]
	if err := checkKeys(doc, reflect.TypeOf(*c), ""); err != nil {
		return err
	}
	if zeroDurations(doc, reflect.TypeOf(*c)) {
		// The YAML decoder takes no bare number for a duration; the
		// document goes to it again with each bare 0 written as 0s.
		var err error
		if data, err = yaml.Marshal(&root); err != nil {
			return err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return explainTypeError(err)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// isZero reports whether n is a bare zero: 0 written without a unit.
func isZero(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!int" && strings.Trim(n.Value, "+-0") == "" && n.Value != ""
}

// zeroDurations rewrites every bare 0 given for a duration key of t as
// "0s", since "durations accept 0" (the spec) and the YAML decoder takes
// only strings for durations. It reports whether it rewrote one. Keys
// were checked before, so the walk follows checkKeys's.
func zeroDurations(n *yaml.Node, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	changed := false
	switch {
	case t == durationType:
		if isZero(n) {
			n.Tag, n.Value, n.Style = "!!str", "0s", 0
			changed = true
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fields[tag] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if ft, ok := fields[n.Content[i].Value]; ok && zeroDurations(n.Content[i+1], ft) {
				changed = true
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, e := range n.Content {
			if zeroDurations(e, t.Elem()) {
				changed = true
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if zeroDurations(n.Content[i], t.Elem()) {
				changed = true
			}
		}
	}
	return changed
}

// checkKeys walks a mapping node against a struct type and reports the first
// key the struct has no field for.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("%s: line %d: want a mapping of keys", orRoot(path), n.Line)
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("%s: line %d: unknown key", join(path, k), n.Content[i].Line)
			}
			if err := checkKeys(n.Content[i+1], ft, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Map:
		// A map keyed by number (services.rooms): its values are named
		// services.rooms.800.mode.
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, e := range n.Content {
				if err := checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	default:
		// A scalar: decode it alone so a mistyped value is named by its key.
		if n.Tag == "!!null" || (t == durationType && isZero(n)) {
			return nil
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return fmt.Errorf("%s: line %d: %q is not a valid %s", orRoot(path), n.Line, n.Value, typeName(t))
		}
	}
	return nil
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration (like 30s or 4h)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "whole number"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.String:
		return "string"
	}
	return t.String()
}

func explainTypeError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s", strings.Join(te.Errors, "; "))
	}
	return err
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/registrar"
)

// defaultAdminAddr is where the operator commands look for the admin API
// when neither -admin nor -config says otherwise; it is admin.listen's
// default.
const defaultAdminAddr = "127.0.0.1:9060"

// runCommand runs one operator command (calls, hangup, registrations)
// against a running parley's admin API, for operators who live in a
// terminal. It returns the exit code: 1 when the API is unreachable or
// refuses, 2 for a usage error.
func runCommand(name string, args []string, stdout, stderr io.Writer) int {
	var err error
	switch name {
	case "calls":
		err = cmdCalls(args, stdout, stderr)
	case "hangup":
		err = cmdHangup(args, stdout, stderr)
	case "registrations":
		err = cmdRegistrations(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q; the commands are calls, hangup and registrations\n", name)
		return 2
	}
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		if u.msg != "" {
			fmt.Fprintf(stderr, "parley %s: %s\n", name, u.msg)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "parley %s: %v\n", name, err)
		return 1
	}
}

// usageError is a command line the command cannot run (exit 2). Its
// message is empty when the flag package already printed one.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// commandFlags is the flag set every operator command shares.
type commandFlags struct {
	fs         *flag.FlagSet
	admin      string
	configPath string
	json       bool
}

func newCommandFlags(name, synopsis string, withJSON bool, stderr io.Writer) *commandFlags {
	c := &commandFlags{fs: flag.NewFlagSet("parley "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.admin, "admin", "", "admin API address (host:port); default: admin.listen of -config, else "+defaultAdminAddr)
	c.fs.StringVar(&c.configPath, "config", "", "configuration file whose admin.listen to use")
	if withJSON {
		c.fs.BoolVar(&c.json, "json", false, "print the API's JSON as it is")
	}
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: parley %s %s\n", name, synopsis)
		c.fs.PrintDefaults()
	}
	return c
}

// parse parses args, allowing flags after the positional arguments too
// (parley hangup ID -admin ADDR), and returns the positional ones.
func (c *commandFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, usageError{}
		}
		if c.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
}

// client returns the API client the flags point at.
func (c *commandFlags) client() (*apiClient, error) {
	addr := c.admin
	if addr == "" && c.configPath != "" {
		cfg, err := config.Load(c.configPath)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cfg.Admin.Listen == "" {
			return nil, fmt.Errorf("admin.listen is empty in %s, so that parley has no admin API", c.configPath)
		}
		addr = cfg.Admin.Listen
	}
	if addr == "" {
		addr = defaultAdminAddr
	}
	base, err := apiBase(addr)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: base, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// apiBase turns an admin address into the API's base URL. A listener on
// every interface (0.0.0.0:9060, :9060) is reached on loopback.
func apiBase(addr string) (string, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q: want host:port", addr)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.To4() != nil && ip.IsUnspecified()):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// apiClient calls a running parley's admin API.
type apiClient struct {
	base string
	http *http.Client
}

// do sends one request and returns the response body of a 2xx. Any other
// status becomes an error carrying the API's message.
func (a *apiClient) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s: %w\n(is parley running, with admin.listen set? -admin ADDR or -config FILE points elsewhere)", a.base, errors.Unwrap(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w", a.base, err)
	}
	if res.StatusCode/100 != 2 {
		var e admin.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("admin API at %s: %s %s: %s", a.base, method, path, res.Status)
	}
	return body, nil
}

// cmdCalls lists the calls in progress, like who lists logins.
func cmdCalls(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "calls", "/api/calls", printCalls)
}

// cmdHangup ends one call, like kill ends a process: silent on success.
func cmdHangup(args []string, _, stderr io.Writer) error {
	f := newCommandFlags("hangup", "[-admin ADDR | -config FILE] ID", false, stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		f.fs.Usage()
		return usageError{"want exactly one call ID (see parley calls)"}
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	_, err = api.do(http.MethodDelete, "/api/calls/"+url.PathEscape(pos[0]))
	return err
}

// cmdRegistrations lists the registered contacts.
func cmdRegistrations(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "registrations", "/api/registrations",
		func(w io.Writer, bs []registrar.Binding) error { return printRegistrations(w, bs, time.Now()) })
}

// listCommand is a command that GETs a JSON list from the admin API and
// prints it as columns, or as the API's JSON with -json.
func listCommand[T any](args []string, stdout, stderr io.Writer, name, path string, print func(io.Writer, []T) error) error {
	f := newCommandFlags(name, "[-admin ADDR | -config FILE] [-json]", true, stderr)
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	body, err := api.do(http.MethodGet, path)
	if err != nil {
		return err
	}
	if f.json {
		_, err = stdout.Write(body)
		return err
	}
	var list []T
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("admin API sent %s I cannot read: %w", name, err)
	}
	return print(stdout, list)
}

// timeLayout is how the commands print times: local, to the second.
const timeLayout = time.DateTime

func printCalls(w io.Writer, calls []dialog.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFROM\tTO\tSTATE\tSTARTED\tANSWERED\tCODEC\tLOSS\tJITTER")
	for _, c := range calls {
		answered := "-"
		if !c.Answer.IsZero() {
			answered = c.Answer.Local().Format(timeLayout)
		}
		codec, loss, jitter := "-", "-", "-"
		if m := c.Media; m != nil {
			if m.Codec != "" {
				codec = m.Codec
			}
			if total := m.Packets + m.Lost; total > 0 {
				loss = fmt.Sprintf("%.1f%%", 100*float64(m.Lost)/float64(total))
				jitter = fmt.Sprintf("%.1fms", float64(m.Jitter)/float64(time.Millisecond))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.From), orDash(c.To), c.State,
			c.Start.Local().Format(timeLayout), answered, codec, loss, jitter)
	}
	return tw.Flush()
}

func printRegistrations(w io.Writer, bs []registrar.Binding, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tCONTACT\tSOURCE\tTRANSPORT\tEXPIRES-IN\tREACHABLE\tRTT")
	for _, b := range bs {
		left := max(b.Expires.Sub(now), 0).Truncate(time.Second)
		reachable := b.Reachable
		if reachable == "" {
			reachable = "unknown"
		}
		rtt := "-"
		if b.RTT > 0 {
			rtt = fmt.Sprintf("%.1fms", float64(b.RTT)/float64(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.User, b.Contact, orDash(b.Source), b.Transport,
			left, reachable, rtt)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

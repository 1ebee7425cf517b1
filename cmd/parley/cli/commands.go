package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/parley-sip/parley/dialog/store"
	"github.com/parley-sip/parley/registrar"
)

// cmdCalls lists the calls in progress, like who lists logins.
func cmdCalls(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "calls", "/api/calls", printCalls)
}

// cmdHangup ends one call, like kill ends a process: silent on success.
func cmdHangup(args []string, _, stderr io.Writer) error {
	f := newCommandFlags("hangup", "[-admin ADDR | -config FILE] [-token TOKEN] ID", false, stderr)
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

// cmdBans lists the banned source addresses, like fail2ban-client status
// lists a jail's.
func cmdBans(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "bans", "/api/bans", printBans)
}

// cmdNodes lists the nodes of a cluster sharing one Redis: each node's
// SIP address, whether its heartbeat is fresh, and the calls it owns.
func cmdNodes(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "nodes", "/api/nodes",
		func(w io.Writer, ns []store.NodeInfo) error { return printNodes(w, ns, time.Now()) })
}

// cmdUnban lifts the ban on one source address: silent on success, like
// hangup.
func cmdUnban(args []string, _, stderr io.Writer) error {
	f := newCommandFlags("unban", "[-admin ADDR | -config FILE] [-token TOKEN] ADDR", false, stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		f.fs.Usage()
		return usageError{"want exactly one address (see parley bans)"}
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	_, err = api.do(http.MethodDelete, "/api/bans/"+url.PathEscape(pos[0]))
	return err
}

// listCommand is a command that GETs a JSON list from the admin API and
// prints it as columns, or as the API's JSON with -json.
func listCommand[T any](args []string, stdout, stderr io.Writer, name, path string, print func(io.Writer, []T) error) error {
	f := newCommandFlags(name, "[-admin ADDR | -config FILE] [-token TOKEN] [-json]", true, stderr)
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

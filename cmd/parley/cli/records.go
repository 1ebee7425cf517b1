package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/cdr"
	"github.com/parley-sip/parley/registrar"
)

// defaultLast is how many calls parley last lists without -n.
const defaultLast = 20

// cmdLast lists the newest calls from the call records, newest first, as
// last lists logins: all of them, or one user's.
func cmdLast(args []string, stdout, stderr io.Writer) error {
	f := newCommandFlags("last", "[-admin ADDR | -config FILE] [-json] [-n N] [USER]", true, stderr)
	n := f.fs.Int("n", defaultLast, fmt.Sprintf("how many calls to list (at most %d)", cdr.MaxRecent))
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		f.fs.Usage()
		return usageError{"want at most one user"}
	}
	if *n < 1 || *n > cdr.MaxRecent {
		return usageError{fmt.Sprintf("-n %d: want 1 to %d", *n, cdr.MaxRecent)}
	}
	q := url.Values{"n": {strconv.Itoa(*n)}}
	if len(pos) == 1 {
		q.Set("user", pos[0])
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	body, err := api.do(http.MethodGet, "/api/cdr?"+q.Encode())
	if err != nil {
		return err
	}
	if f.json {
		_, err = stdout.Write(body)
		return err
	}
	var list []cdr.Record
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("admin API sent call records I cannot read: %w", err)
	}
	return printLast(stdout, list)
}

// printLast writes one line per call, as last does per login: who called
// whom, when, for how long, and how it ended.
func printLast(w io.Writer, list []cdr.Record) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tSTART\tEND\tTALK\tDISPOSITION\tAPP\tCODEC\tLOSS\tREASON")
	for _, r := range list {
		end := "-"
		if !r.End.IsZero() {
			end = r.End.Local().Format(time.TimeOnly)
		}
		talk := "-"
		if !r.Answer.IsZero() {
			talk = (time.Duration(r.BillSec) * time.Second).String()
		}
		loss := "-"
		if total := r.Packets + r.Loss; total > 0 {
			loss = fmt.Sprintf("%.1f%%", 100*float64(r.Loss)/float64(total))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(r.Src), orDash(r.Dst),
			r.Start.Local().Format(timeLayout), end, talk, r.Disposition, r.LastApp, orDash(r.Codec), loss, orDash(r.Reason))
	}
	return tw.Flush()
}

// cmdWho lists who is registered (user, contact, transport) and who is on
// a call now, as who lists who is logged in.
func cmdWho(args []string, stdout, stderr io.Writer) error {
	f := newCommandFlags("who", "[-admin ADDR | -config FILE]", false, stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	var regs []registrar.Binding
	var calls []dialog.Snapshot
	for path, into := range map[string]any{"/api/registrations": &regs, "/api/calls": &calls} {
		body, err := api.do(http.MethodGet, path)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, into); err != nil {
			return fmt.Errorf("admin API sent %s I cannot read: %w", path, err)
		}
	}
	return printWho(stdout, regs, calls, time.Now())
}

// printWho writes one line per registered contact, with the user's call
// if it is on one, then the callers on a call that are not registered
// (trusted peers, callers from outside).
func printWho(w io.Writer, regs []registrar.Binding, calls []dialog.Snapshot, now time.Time) error {
	onCall := map[string][]string{}
	for _, c := range calls {
		since := c.Start
		if !c.Answer.IsZero() {
			since = c.Answer
		}
		desc := func(peer string) string {
			return fmt.Sprintf("%s %s, %s", c.State, orDash(peer), now.Sub(since).Truncate(time.Second))
		}
		if c.From != "" {
			onCall[c.From] = append(onCall[c.From], "with "+desc(c.To))
		}
		if c.To != "" && c.To != c.From {
			onCall[c.To] = append(onCall[c.To], "from "+desc(c.From))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tCONTACT\tTRANSPORT\tREACHABLE\tCALL")
	seen := map[string]bool{}
	for _, b := range regs {
		seen[b.User] = true
		reachable := b.Reachable
		if reachable == "" {
			reachable = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.User, b.Contact, b.Transport, reachable, callsOf(onCall[b.User]))
	}
	var others []string
	for u := range onCall {
		if !seen[u] {
			others = append(others, u)
		}
	}
	sort.Strings(others)
	for _, u := range others {
		fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", u, callsOf(onCall[u]))
	}
	return tw.Flush()
}

func callsOf(calls []string) string {
	switch len(calls) {
	case 0:
		return "-"
	case 1:
		return calls[0]
	}
	return fmt.Sprintf("%s (+%d more)", calls[0], len(calls)-1)
}

// cmdKick removes a user's registrations and hangs up the user's calls,
// as an operator would kick a user off a system.
func cmdKick(args []string, stdout, stderr io.Writer) error {
	f := newCommandFlags("kick", "[-admin ADDR | -config FILE] [-token TOKEN] USER", false, stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		f.fs.Usage()
		return usageError{"want exactly one user (see parley who)"}
	}
	api, err := f.client()
	if err != nil {
		return err
	}
	body, err := api.do(http.MethodPost, "/api/users/"+url.PathEscape(pos[0])+"/kick")
	if err != nil {
		return err
	}
	var k admin.KickBody
	if err := json.Unmarshal(body, &k); err != nil {
		return fmt.Errorf("admin API sent an answer I cannot read: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s: %d registration%s removed, %d call%s ended\n", pos[0],
		k.RegistrationsRemoved, plural(k.RegistrationsRemoved), k.CallsEnded, plural(k.CallsEnded))
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

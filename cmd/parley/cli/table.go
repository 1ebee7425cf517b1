package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/guard"
	"github.com/parley-sip/parley/dialog/store"
	"github.com/parley-sip/parley/registrar"
)

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

func printBans(w io.Writer, bans []guard.Ban) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tUNTIL\tREASON")
	for _, b := range bans {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", b.Address, b.Until.Local().Format(timeLayout), orDash(b.Reason))
	}
	return tw.Flush()
}

// printNodes writes the cluster's nodes as columns; a dead node (no
// heartbeat for three of them) says since when.
func printNodes(w io.Writer, ns []store.NodeInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tSIP\tCALLS\tHEARTBEAT\tSTARTED")
	for _, n := range ns {
		state := "alive"
		if !n.Alive {
			state = "dead"
		}
		beat := "-"
		if !n.Seen.IsZero() {
			beat = now.Sub(n.Seen).Round(100*time.Millisecond).String() + " ago"
		}
		started := "-"
		if !n.Started.IsZero() {
			started = n.Started.Local().Format(timeLayout)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, state, orDash(n.SIP), n.Calls, beat, started)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

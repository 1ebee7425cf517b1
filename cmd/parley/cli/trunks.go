package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/parley-sip/parley/dialog/trunk"
)

// cmdTrunks lists the upstream providers and whether parley is
// registered with each.
func cmdTrunks(args []string, stdout, stderr io.Writer) error {
	return listCommand(args, stdout, stderr, "trunks", "/api/trunks",
		func(w io.Writer, ts []trunk.Status) error { return printTrunks(w, ts, time.Now()) })
}

func printTrunks(w io.Writer, ts []trunk.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TRUNK\tREGISTRAR\tUSER\tSTATE\tEXPIRES-IN\tNEXT-IN\tFAILURES\tLAST-ERROR")
	in := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return max(t.Sub(now), 0).Truncate(time.Second).String()
	}
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Name, t.Registrar, t.Username, t.State,
			in(t.Expires), in(t.Next), t.Failures, orDash(t.LastError))
	}
	return tw.Flush()
}

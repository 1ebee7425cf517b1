package cli

import (
	"errors"
	"fmt"
	"io"
)

// Run runs the operator command name (calls, hangup, registrations, bans,
// unban, nodes, last, who, kick, trunks) with args against a running parley's
// admin API, writing what it prints to stdout and its complaints to
// stderr. It returns the exit code:
// 0 on success, 1 when the API is unreachable or refuses, 2 for a usage
// error (including an unknown command).
func Run(name string, args []string, stdout, stderr io.Writer) int {
	var err error
	switch name {
	case "calls":
		err = cmdCalls(args, stdout, stderr)
	case "hangup":
		err = cmdHangup(args, stdout, stderr)
	case "registrations":
		err = cmdRegistrations(args, stdout, stderr)
	case "bans":
		err = cmdBans(args, stdout, stderr)
	case "unban":
		err = cmdUnban(args, stdout, stderr)
	case "nodes":
		err = cmdNodes(args, stdout, stderr)
	case "last": // records.go
		err = cmdLast(args, stdout, stderr)
	case "who":
		err = cmdWho(args, stdout, stderr)
	case "kick":
		err = cmdKick(args, stdout, stderr)
	case "trunks": // trunks.go
		err = cmdTrunks(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q; the commands are calls, hangup, registrations, bans, unban, nodes, last, who, kick and trunks\n", name)
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

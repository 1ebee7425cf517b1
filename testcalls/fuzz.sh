#!/usr/bin/env bash
# fuzz.sh: runs every fuzz target of the module for FUZZTIME each (default
# 10m), two at a time (one worker each, on this project's 2 cores), and
# prints one line per target: how long it ran, how many inputs it tried,
# and whether it found a failure. A failing input is kept under the
# package's testdata/fuzz/ by go test, so it becomes a regular test case.
#
# Not part of the README's test command (CI replays the seeds only).
#
# Usage: testcalls/fuzz.sh                 # every target, 10 minutes each
#        FUZZTIME=2m testcalls/fuzz.sh
#        testcalls/fuzz.sh FuzzDatagram    # some targets only
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10m}
out=$(mktemp -d)
# dialog's FuzzDatagram drives a real Server as fast as it answers, from
# one address, and every request it makes keeps its transaction for 64*T1
# (32 s): at 30,000 inputs a second that is a million transactions, and
# the fuzzing worker stalls in garbage collection. With T1 = 50 ms
# (dialog's tests read this variable) they last 3.2 s; what is fuzzed,
# the reading, parsing and handling of each datagram, is the same.
export PARLEY_TEST_SMALL_T1=1

targets=()
while IFS=: read -r file _ rest; do
	name=${rest#func }
	name=${name%%(*}
	if (($#)) && [[ " $* " != *" $name "* ]]; then
		continue
	fi
	targets+=("./$(dirname "$file") $name")
done < <(git grep -n '^func Fuzz' -- '*_test.go')

run() {
	local pkg=$1 name=$2 log="$out/$2.log"
	local start=$SECONDS
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel 1 "$pkg" >"$log" 2>&1
	local rc=$?
	local execs
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	if ((rc == 0)); then
		printf '%-28s %-22s ran %4ds, %s inputs, no failure\n' "$name" "$pkg" $((SECONDS - start)) "${execs:-?}"
	else
		printf '%-28s %-22s FAILED after %ds (log: %s)\n' "$name" "$pkg" $((SECONDS - start)) "$log"
		grep -m5 -E 'Failing input|--- FAIL|panic' "$log" | sed 's/^/    /'
	fi
	return $rc
}

failed=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	pids=()
	for t in "${targets[@]:i:2}"; do
		# shellcheck disable=SC2086
		run $t &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || failed=1
	done
done
verdict="no failure"
if ((failed)); then verdict="FAILURES, see above"; fi
echo "SUMMARY fuzz: ${#targets[@]} targets, $FUZZTIME each, $verdict, commit $(git rev-parse --short HEAD)"
exit $failed

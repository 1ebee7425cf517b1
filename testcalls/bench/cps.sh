#!/usr/bin/env bash
# cps.sh: calls-per-second benchmark of parley.
#
# Builds parley, starts it with a config that trusts 127.0.0.1 and routes
# 9+digits to a SIPp UAS, then ramps SIPp's built-in UAC (-d 0, so each call
# is INVITE/100/180/200/ACK/BYE/200 through the B2BUA) over a list of rates.
# For each rate it prints SIPp's successful and failed calls, the rate SIPp
# achieved, parley's RSS and CPU time, and the kernel's UDP receive-buffer
# drops; at the end one summary line gives the highest rate without a failed
# call.
#
# Usage (from anywhere in the repository):
#   testcalls/bench/cps.sh
#   DURATION=10 RATES="200 500 1000" testcalls/bench/cps.sh
#
# Columns: asked rate, seconds, calls asked, successful, failed, rate SIPp
# achieved, SIPp exit code, parley RSS before->after (kB), parley CPU time
# (ms), kernel UDP RcvbufErrors during the run, SIPp retransmissions, and
# from parley's /metrics after the run: open calls, goroutines, heap in use.
#
# Environment:
#   DURATION      seconds per rate (default 30)
#   RATES         space-separated calls/s (default "200 500 1000 1500 2000")
#   STOP_ON_FAIL  1 (default) stops the ramp at the first rate with failures
#   PAUSE         seconds between rates, to let calls drain (default 3)
#   SETTLE        seconds to idle before a last memory reading (default 40)
#   SIP_PORT ADMIN_PORT UAS_PORT UAC_PORT   loopback ports (25060 29060 25070 25080)
#   PARLEY_BIN    benchmark this binary instead of building ./cmd/parley
#   BASELINE=1    no parley: SIPp UAC calls the SIPp UAS directly, to see
#                 what the SIPp pair alone manages on this machine
#   OUT           directory for configs, logs and SIPp statistics
#                 (default testcalls/bench/out/<timestamp>)
#
# SIPp flags follow shared/TESTING.md: -default_behaviors all,-abortunexp
# (a 180 overtaken by its 200 must not abort the call) and -recv_timeout 5000
# (a call that really stalls still counts as failed). One SIPp pair manages
# about 3,000 calls/s on a 2-core machine; rates above that measure SIPp.
set -euo pipefail

DURATION=${DURATION:-30}
RATES=${RATES:-"200 500 1000 1500 2000"}
STOP_ON_FAIL=${STOP_ON_FAIL:-1}
PAUSE=${PAUSE:-3}
SIP_PORT=${SIP_PORT:-25060}
ADMIN_PORT=${ADMIN_PORT:-29060}
UAS_PORT=${UAS_PORT:-25070}
UAC_PORT=${UAC_PORT:-25080}
BASELINE=${BASELINE:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# shellcheck source=lib.sh
. "$here/lib.sh"

# --- tools ---------------------------------------------------------------
need_pkg sipp sip-tester
command -v curl >/dev/null || die "curl is needed to read parley's admin endpoints"
for p in "$SIP_PORT" "$UAS_PORT" "$UAC_PORT"; do
	port_busy udp "$p" && die "udp port $p is in use (set SIP_PORT/UAS_PORT/UAC_PORT)"
done
port_busy tcp "$ADMIN_PORT" && die "tcp port $ADMIN_PORT is in use (set ADMIN_PORT)"

# --- parley ----------------------------------------------------------------
target_port=$SIP_PORT
parley_pid=""
if [ "$BASELINE" = 1 ]; then
	log "BASELINE=1: no parley, UAC calls the UAS directly"
	target_port=$UAS_PORT
else
	bin=${PARLEY_BIN:-}
	if [ -z "$bin" ]; then
		bin=$OUT/parley
		log "building parley"
		(cd "$root" && timeout 300 go build -o "$bin" ./cmd/parley) || die "go build ./cmd/parley failed"
	fi
	cat >"$OUT/parley.yaml" <<EOF
sip:
  listen: [udp://127.0.0.1:$SIP_PORT, tcp://127.0.0.1:$SIP_PORT]
  realm: parley.lab
  trusted: [127.0.0.1/32]
admin: {listen: 127.0.0.1:$ADMIN_PORT, pprof: true}
store: {path: ""}
users: [{username: "1001", password: "pw1001"}]
routes: [{match: '^9(\d+)\$', target: 'sip:\$1@127.0.0.1:$UAS_PORT'}]
sessions: {max_calls: 0, max_calls_per_user: 0}
registrar: {qualify: 0s}
log: {level: warn}
EOF
	timeout 10 "$bin" -check-config -config "$OUT/parley.yaml" >/dev/null || die "parley rejects $OUT/parley.yaml"
	"$bin" -config "$OUT/parley.yaml" >"$OUT/parley.log" 2>&1 &
	parley_pid=$!
	pids+=("$parley_pid")
	ready=0
	for _ in $(seq 100); do
		if curl -fsS -m 1 "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then
			ready=1
			break
		fi
		kill -0 "$parley_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ "$ready" = 1 ] || { tail -20 "$OUT/parley.log" >&2; die "parley not ready within 10s"; }
	log "parley pid $parley_pid ready on 127.0.0.1:$SIP_PORT"
fi

# --- SIPp callee -----------------------------------------------------------
# SIPp's own sockets get 4 MB buffers (-buff_size): with the kernel
# default, SIPp drops datagrams above ~1,000 calls/s and the failures would
# be charged to parley.
(cd "$OUT" && exec sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -mp 46000 -nostdin -buff_size 4194304 \
	-default_behaviors all,-abortunexp >"$OUT/uas.log" 2>&1) &
uas_pid=$!
pids+=("$uas_pid")
sleep 0.5
kill -0 "$uas_pid" 2>/dev/null || { tail -20 "$OUT/uas.log" >&2; die "sipp uas did not start"; }

# --- ramp ------------------------------------------------------------------
best=0
fmt='%-6s %-5s %-7s %-7s %-7s %-9s %-4s %-17s %-7s %-7s %-7s %-6s %-6s %-7s\n'
# shellcheck disable=SC2059
printf "$fmt" rate secs calls ok failed cps rc rss_kb cpu_ms rcvbuf retrans calls gorout heap_mb
for rate in $RATES; do
	calls=$((rate * DURATION))
	csv=$OUT/uac-$rate.csv
	rcv0=$(udp_counter RcvbufErrors)
	rss0=0 cpu0=0
	if [ -n "$parley_pid" ]; then
		rss0=$(rss_kb "$parley_pid")
		cpu0=$(cpu_ticks "$parley_pid")
	fi
	rc=0
	(cd "$OUT" && timeout -k 5 $((DURATION + 30)) sipp "127.0.0.1:$target_port" -sn uac -s 9001 \
		-i 127.0.0.1 -p "$UAC_PORT" -mp 47000 -nostdin \
		-r "$rate" -m "$calls" -d 0 -buff_size 4194304 \
		-default_behaviors all,-abortunexp -recv_timeout 5000 \
		-trace_stat -stf "$csv" -fd 1 >"$OUT/uac-$rate.log" 2>&1) || rc=$?
	rcv1=$(udp_counter RcvbufErrors)
	rss1=0 cpu1=0
	if [ -n "$parley_pid" ]; then
		kill -0 "$parley_pid" 2>/dev/null || { tail -20 "$OUT/parley.log" >&2; die "parley died at $rate calls/s"; }
		rss1=$(rss_kb "$parley_pid")
		cpu1=$(cpu_ticks "$parley_pid")
	fi
	ok=$(csv_stat "$csv" 'SuccessfulCall(C)' 2>/dev/null || true)
	failed=$(csv_stat "$csv" 'FailedCall(C)' 2>/dev/null || true)
	cps=$(csv_stat "$csv" 'CallRate(C)' 2>/dev/null || true)
	retrans=$(csv_stat "$csv" 'Retransmissions(C)' 2>/dev/null || true)
	ok=${ok:-0} failed=${failed:-?} cps=${cps:-0} retrans=${retrans:-?}
	# Calls still open in parley after SIPp finished, and its goroutines:
	# both should come back down between rates.
	open_calls=$(metric parley_calls)
	goroutines=$(metric go_goroutines)
	heap=$(metric go_memstats_heap_inuse_bytes)
	[ "$heap" = - ] || heap=$((${heap%.*} / 1048576))
	# shellcheck disable=SC2059
	printf "$fmt" "$rate" "$DURATION" "$calls" "$ok" "$failed" "$cps" "$rc" "$rss0->$rss1" \
		$(((cpu1 - cpu0) * 10)) $((rcv1 - rcv0)) "$retrans" "$open_calls" "$goroutines" "$heap"
	# Clean: SIPp exited 0, every call succeeded, and SIPp kept up at least
	# 90% of the asked rate (otherwise the rate was not really offered).
	kept_up=$(awk -v a="$cps" -v r="$rate" 'BEGIN { print (a + 0 >= 0.9 * r) ? 1 : 0 }')
	if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$ok" = "$calls" ] && [ "$kept_up" = 1 ]; then
		best=$rate
	elif [ "$STOP_ON_FAIL" = 1 ]; then
		log "failures at $rate calls/s: stopping the ramp (see $OUT/uac-$rate.log)"
		break
	fi
	sleep "$PAUSE"
done

if [ -n "$parley_pid" ] && [ "${SETTLE:-40}" -gt 0 ]; then
	# sipgo keeps finished transactions for up to 64*T1 (32 s) on UDP, so
	# memory measured right after a run includes them; measure again later.
	sleep "${SETTLE:-40}"
	heap=$(metric go_memstats_heap_inuse_bytes)
	[ "$heap" = - ] || heap=$((${heap%.*} / 1048576))
	echo "after ${SETTLE:-40}s idle: parley rss $(rss_kb "$parley_pid") kB, heap in use $heap MB, goroutines $(metric go_goroutines), open calls $(metric parley_calls)"
fi

what=parley
[ "$BASELINE" = 1 ] && what="sipp-only baseline"
echo "SUMMARY $what: highest rate with zero failed calls: $best calls/s (duration ${DURATION}s per rate, results in $OUT)"

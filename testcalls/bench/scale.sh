#!/usr/bin/env bash
# scale.sh: parley's memory and goroutines per established call.
#
# A SIPp UAS registers as 2000 (digest) and answers; a SIPp UAC (user 1001,
# 407 answered) sets up CALLS calls at RATE calls/s and holds each for
# HOLD_MS without media (-d), then hangs up. parley's RSS, Go heap in use
# (spans holding live objects) and the live objects' bytes within it (both
# after a forced GC, through /debug/pprof/heap?gc=1), goroutines and relay
# ports are read from /metrics and /proc:
#   idle     before the first call;
#   plateau  PLATEAU_WAIT seconds after the last call was set up (sipgo keeps
#            each finished transaction for 64*T1 = 32 s, so waiting longer
#            leaves only what the established calls hold);
#   after    SETTLE seconds after the last BYE.
# The per-call figures are (plateau - idle) / established calls; "after -
# idle" must come back to about zero.
#
# There is no Kamailio column here: a proxy without the dialog module keeps
# nothing per established call, so there is nothing like-for-like to divide.
#
# Ports: parley relays media by default and allocates two even/odd port
# pairs per call (4 ports, 4 sockets), SDP or not, so 10,000 calls need
# 40,000 ports: RTP_MIN..RTP_MAX defaults to 20000-63999 (44,000: other
# programs' UDP sockets in the range, e.g. ephemeral ports up to 60999, are
# skipped by parley's pool), and the SIP and SIPp ports are kept below it.
# The 40,000 sockets also need a file descriptor limit above 40,000: the
# script raises it, which takes CAP_SYS_RESOURCE; without it (a container
# with a hard limit of 20,000) CALLS is cut to what the limit allows.
# With SDP=late the INVITEs carry no SDP (late offer,
# scenarios/uac_auth_late.xml); parley still opens the relay ports when the
# INVITE arrives, so that does not save ports or descriptors.
#
# Usage (from anywhere in the repository):
#   testcalls/bench/scale.sh
#   CALLS=2000 RATE=500 HOLD_MS=60000 testcalls/bench/scale.sh
#
# Environment:
#   CALLS         calls held at once (default 10000)
#   RATE          set-up rate, calls/s (default 500)
#   HOLD_MS       how long each call lasts (default: set-up time + 75 s)
#   PLATEAU_WAIT  seconds after the last set-up before the plateau reading (40)
#   SETTLE        seconds after the last call ended before the last reading (40)
#   SDP           early (default: SDP in the INVITE) or late (none; offer in the 200)
#   RTP_MIN RTP_MAX  parley's relay ports (20000 63999)
#   SIP_PORT ADMIN_PORT UAS_PORT UAC_PORT  (13060 13090 13070 13080)
#   CHECKPOINT    1: parley checkpoints every answered call to a bbolt store in
#                 OUT (sessions.checkpoint, part 7); the plateau line then also
#                 shows parley's CPU while only holding calls (the checkpoints'
#                 5 s rewrites with the media counters) and the store's size
#   PARLEY_BIN    benchmark this binary instead of building ./cmd/parley
#   OUT           default testcalls/bench/out/scale-<timestamp>
set -euo pipefail

CALLS=${CALLS:-10000}
RATE=${RATE:-500}
PLATEAU_WAIT=${PLATEAU_WAIT:-40}
SETTLE=${SETTLE:-40}
SDP=${SDP:-early}
CHECKPOINT=${CHECKPOINT:-0}
RTP_MIN=${RTP_MIN:-20000}
RTP_MAX=${RTP_MAX:-63999}
SIP_PORT=${SIP_PORT:-13060}
ADMIN_PORT=${ADMIN_PORT:-13090}
UAS_PORT=${UAS_PORT:-13070}
UAC_PORT=${UAC_PORT:-13080}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/scale-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# shellcheck source=lib.sh
. "$here/lib.sh"

need_pkg sipp sip-tester
need_pkg curl curl
case $SDP in
early) uac_scen=$scen_dir/uac_auth.xml ;;
late) uac_scen=$scen_dir/uac_auth_late.xml ;;
*) die "SDP=$SDP: want early or late" ;;
esac
for p in "$SIP_PORT" "$UAS_PORT" "$UAC_PORT"; do
	port_busy udp "$p" && die "udp port $p is in use"
done
port_busy tcp "$ADMIN_PORT" && die "tcp port $ADMIN_PORT is in use (set ADMIN_PORT)"

ports_needed=$((CALLS * 4))
ports_have=$((RTP_MAX - RTP_MIN + 1))
[ "$ports_have" -ge "$ports_needed" ] || log "warning: $ports_have relay ports for $CALLS calls (4 each = $ports_needed): expect 503s"
# Each relay port is a socket: raise the descriptor limit for parley.
# Without CAP_SYS_RESOURCE the hard limit cannot be raised: then CALLS is
# cut to what the limit allows (4 sockets per call, 1,000 descriptors kept
# for SIP, admin and the runtime), and the summary says so.
want_fds=$((ports_needed + 4096))
asked_calls=$CALLS
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
	ulimit -Hn "$want_fds" 2>/dev/null || true
	ulimit -n "$want_fds" 2>/dev/null || true
	fd_calls=$((($(ulimit -n) - 1000) / 4))
	if [ "$fd_calls" -lt "$CALLS" ]; then
		log "warning: the fd limit is $(ulimit -n) and cannot be raised to $want_fds (CAP_SYS_RESOURCE): holding $fd_calls calls instead of $CALLS"
		CALLS=$fd_calls
	fi
fi

HOLD_MS=${HOLD_MS:-$(((CALLS / RATE + 75) * 1000))}
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')
build_parley
if [ "$CHECKPOINT" = 1 ]; then
	mkdir -p "$OUT/store"
	write_parley_config "$OUT/parley.yaml" "$RTP_MIN" "$RTP_MAX" "$OUT/store" true
else
	write_parley_config "$OUT/parley.yaml" "$RTP_MIN" "$RTP_MAX"
fi
start_parley "$OUT/parley.yaml"
sipp_register "127.0.0.1:$SIP_PORT" "$UAS_PORT" 2000
# The UAS waits HOLD_MS for each BYE: its receive timeout must be longer.
start_uas "$UAS_PORT" 13100 uas -recv_timeout $((HOLD_MS + 60000))

# sample NAME: one row of readings, also kept as NAME_rss/heap/gor/ports.
fmt='%-10s %-6s %-7s %-8s %-8s %-8s %-8s %-7s %-7s\n'
# shellcheck disable=SC2059
printf "$fmt" reading t_s calls active rss_kb heap_kb live_kb gorout ports
t0=$(date +%s)
declare -A r
sample() {
	local name=$1 heap
	[ "${2:-}" = gc ] && force_gc
	r[${name}_rss]=$(rss_kb "$parley_pid")
	heap=$(metric go_memstats_heap_inuse_bytes)
	[ "$heap" = - ] || heap=$((heap / 1024))
	r[${name}_heap]=$heap
	heap=$(metric go_memstats_heap_alloc_bytes)
	[ "$heap" = - ] || heap=$((heap / 1024))
	r[${name}_live]=$heap
	r[${name}_gor]=$(metric go_goroutines)
	r[${name}_ports]=$(metric parley_rtp_ports_in_use)
	r[${name}_calls]=$(metric parley_calls)
	r[${name}_active]=$(metric parley_calls 'state="active"')
	# shellcheck disable=SC2059
	printf "$fmt" "$name" $(($(date +%s) - t0)) "${r[${name}_calls]}" "${r[${name}_active]}" "${r[${name}_rss]}" \
		"${r[${name}_heap]}" "${r[${name}_live]}" "${r[${name}_gor]}" "${r[${name}_ports]}"
}

# save_heap NAME: parley's heap profile (in-use, after a GC) as
# heap-NAME.pb.gz, and its biggest in-use entries in heap-NAME.txt, to see
# what a call's memory is made of.
save_heap() {
	curl -fsS -m 30 -o "$OUT/heap-$1.pb.gz" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap?gc=1" 2>/dev/null || return 0
	command -v go >/dev/null && timeout 60 go tool pprof -top -nodecount=25 -sample_index=inuse_space \
		"$parley_bin" "$OUT/heap-$1.pb.gz" >"$OUT/heap-$1.txt" 2>/dev/null || true
}

sleep 2
sample idle gc
rcv0=$(udp_counter RcvbufErrors)
ramp=$(((CALLS + RATE - 1) / RATE))
(cd "$OUT" && exec timeout -k 5 $((ramp + HOLD_MS / 1000 + 120)) sipp "127.0.0.1:$SIP_PORT" -sf "$uac_scen" \
	"${SIPP_COMMON[@]}" -p "$UAC_PORT" -mp 13200 \
	-key caller 1001 -au 1001 -ap pw1001 -s 2000 \
	-r "$RATE" -l "$CALLS" -m "$CALLS" -d "$HOLD_MS" -recv_timeout 10000 \
	-trace_err -error_file "$OUT/uac.err" \
	-trace_stat -stf "$OUT/uac.csv" -fd 5 >"$OUT/uac.log" 2>&1) &
uac_pid=$!
pids+=("$uac_pid")

# Set-up: until every call is active (or set-up time + 30 s).
deadline=$((SECONDS + ramp + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
	sleep 5
	sample setup
	[ "${r[setup_active]}" != - ] && [ "${r[setup_active]}" -ge "$CALLS" ] && break
	kill -0 "$uac_pid" 2>/dev/null || break
done
hold_cpu0=$(tree_cpu_ticks "$parley_pid")
hold_t0=$SECONDS
sleep "$PLATEAU_WAIT"
hold_cpu1=$(tree_cpu_ticks "$parley_pid")
hold_s=$((SECONDS - hold_t0))
sample plateau gc
save_heap plateau
established=${r[plateau_active]}
for k in idle plateau; do
	for m in rss heap gor ports; do
		[ "${r[${k}_$m]}" != - ] || die "no $m reading at $k: parley's /metrics did not answer (see $OUT/parley.log)"
	done
done
[ "$established" != - ] && [ "$established" -gt 0 ] || die "no established calls at the plateau (see $OUT)"

# The calls end HOLD_MS after their set-up; SIPp exits after the last BYE.
rc=0
wait "$uac_pid" || rc=$?
sample ended
sleep "$SETTLE"
sample after gc
save_heap after
rcv1=$(udp_counter RcvbufErrors)
for m in rss heap gor ports calls; do
	[ "${r[after_$m]}" != - ] || die "no $m reading after the calls: parley's /metrics did not answer"
done

ok=$(csv_stat "$OUT/uac.csv" 'SuccessfulCall(C)')
failed=$(csv_stat "$OUT/uac.csv" 'FailedCall(C)')
unexp=$(unexpected_count "$OUT/uac.err" "$OUT/uas.err")
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (a - b) / n }'; }
rss_pc=$(per "${r[plateau_rss]}" "${r[idle_rss]}" "$established")
heap_pc=$(per "${r[plateau_heap]}" "${r[idle_heap]}" "$established")
live_pc=$(per "${r[plateau_live]}" "${r[idle_live]}" "$established")
gor_pc=$(per "${r[plateau_gor]}" "${r[idle_gor]}" "$established")
ports_pc=$(per "${r[plateau_ports]}" "${r[idle_ports]}" "$established")
echo "per established call ($established): rss ${rss_pc} KB, heap ${heap_pc} KB in use (${live_pc} KB of live objects), goroutines ${gor_pc}, relay ports ${ports_pc}"
echo "after the end vs idle: rss $((r[after_rss] - r[idle_rss])) KB, heap $((r[after_heap] - r[idle_heap])) KB, goroutines $((r[after_gor] - r[idle_gor])), relay ports $((r[after_ports] - r[idle_ports])), calls ${r[after_calls]}"
echo "sipp: ok $ok failed $failed unexpected $unexp rc $rc; kernel RcvbufErrors +$((rcv1 - rcv0))"
hold_pct=$(awk -v t=$((hold_cpu1 - hold_cpu0)) -v s="$hold_s" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * t / hz / s }')
store_kb=-
[ "$CHECKPOINT" = 1 ] && store_kb=$(du -k "$OUT/store/calls.db" 2>/dev/null | cut -f1)
echo "holding $established calls for ${hold_s}s (checkpoints: $CHECKPOINT): parley CPU ${hold_pct}% of one core; calls.db ${store_kb} KB"
echo "heap profiles: $OUT/heap-plateau.txt, $OUT/heap-after.txt (go tool pprof)"

verdict=$(awk -v rss="$rss_pc" -v heap="$heap_pc" -v g="$gor_pc" -v n="$established" -v c="$CALLS" \
	-v dg=$((r[after_gor] - r[idle_gor])) -v dp=$((r[after_ports] - r[idle_ports])) -v f="${failed:-1}" \
	'BEGIN { ok = (n >= c && rss < 10 && heap < 10 && g <= 1 && dg <= 0 && dp == 0 && f == 0); print (ok ? "met" : "not met") }')
limit=""
[ "$CALLS" = "$asked_calls" ] || limit=" (cut from $asked_calls by the fd limit $(ulimit -n))"
echo "SUMMARY scale: $established of $CALLS calls held$limit (SDP $SDP, checkpoints $CHECKPOINT, holding CPU ${hold_pct}%), per call rss ${rss_pc} KB heap ${heap_pc} KB (live ${live_pc} KB) goroutines ${gor_pc}; after end goroutines $((r[after_gor] - r[idle_gor])) heap $((r[after_heap] - r[idle_heap])) KB ports $((r[after_ports] - r[idle_ports])); failed ${failed:-?}; target <10 KB and <=1 goroutine per call, all back: $verdict (commit $commit, results in $OUT)"

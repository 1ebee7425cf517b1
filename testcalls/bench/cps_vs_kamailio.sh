#!/usr/bin/env bash
# cps_vs_kamailio.sh: call rate of parley and of Kamailio 5.6, in the same run.
#
# The job, as with real phones: a SIPp UAS first REGISTERs (digest) as user
# 2000 from the port it then answers on; a SIPp UAC (user 1001) calls
# sip:2000@server, is challenged with 407, answers it, and the call is found
# through the registration (INVITE 407 ACK INVITE 100 180 200 ACK BYE 200,
# -d 0). parley does it as a B2BUA (two dialogs, media relay ports
# allocated for the SDP); Kamailio does it as a stateful proxy with
# Record-Route (kamailio/kamailio.cfg: registrar, auth, location lookup, tm).
# Above TWO_PAIRS_FROM calls/s the load is split over two SIPp pairs (1001
# calls 2000, 1002 calls 2001): one pair tops out near 3,000 calls/s here.
#
# Both systems run side by side and the rates alternate between them
# (parley at R, Kamailio at R, then the next R), so that whatever else runs
# on the machine weighs on both alike. Each (system, rate) runs DURATION
# seconds and prints a row. A rate is held when SIPp exited 0, every call
# succeeded and SIPp reached 90% of the asked rate; held strictly when, in
# addition, no message was unexpected. Provisional responses overtaken by
# their 200 (a multi-worker server may send a 180 after its 200; see
# shared/TESTING.md) are counted apart, in late1, and harm no call. The
# summary line gives both highest rates per system and parley/Kamailio.
#
# Usage (from anywhere in the repository; root or sudo installs sip-tester,
# kamailio and gnuplot-nox when they are missing):
#   testcalls/bench/cps_vs_kamailio.sh
#   DURATION=10 RATES="500 1000" testcalls/bench/cps_vs_kamailio.sh
#
# Columns: system, asked rate, SIPp pairs, calls asked, successful, failed,
# unexpected messages and late provisional responses (SIPp's error logs),
# rate SIPp achieved (sum over pairs), worst SIPp exit code, server CPU time
# per successful call (µs; Kamailio: all its processes), server memory
# after the rate (parley RSS, Kamailio PSS of all processes, MB), kernel UDP
# RcvbufErrors during the rate (whole host) and drops on the server's own
# SIP socket (/proc/net/udp), SIPp retransmissions, and how busy the whole
# host was (% of both cores; SIPp and the server included).
#
# Environment:
#   DURATION        seconds per rate (default 30)
#   RATES           space-separated calls/s (default "500 1000 1500 2000 2500 3000 3500")
#   SYSTEMS         default "parley kamailio"; parley-ckpt adds a parley that
#                   checkpoints every answered call to its embedded store (on
#                   CKPT_PORT, default 27060, admin on ADMIN_PORT+1); parley-redis
#                   one checkpointing to a Redis the script starts (REDIS_PORT,
#                   default 28379; SIP on REDIS_SIP_PORT, 28060; admin ADMIN_PORT+2)
#   TWO_PAIRS_FROM  rates from this one up use two SIPp pairs (default 3500: one pair
#                   completes every call up to about 3,000/s, TESTING.md)
#   STOP_ON_FAIL    1 (default) stops a system's ramp at its first failed rate
#   PAUSE           seconds between rates (default 5)
#   PLOT            1 (default) writes cps_vs_kamailio.png in OUT
#   SIP_PORT KAM_PORT ADMIN_PORT UAS_PORT UAC_PORT  (25060 26060 29060 25070 25080;
#                   callees on UAS_PORT..UAS_PORT+3, callers on UAC_PORT, UAC_PORT+1)
#   PARLEY_BIN      benchmark this binary instead of building ./cmd/parley
#   PROFILE         1 writes a CPU profile of parley at each rate
#                   (OUT/parley-RATE.cpu, from /debug/pprof, the middle of the run)
#                   and keeps its allocations since start (OUT/parley-RATE.allocs)
#                   and its heap as the load ends (OUT/parley-RATE.heap)
#   OUT             directory for configs, logs and SIPp statistics
#                   (default testcalls/bench/out/cps-kam-<timestamp>)
set -euo pipefail

DURATION=${DURATION:-30}
RATES=${RATES:-"500 1000 1500 2000 2500 3000 3500"}
SYSTEMS=${SYSTEMS:-"parley kamailio"}
TWO_PAIRS_FROM=${TWO_PAIRS_FROM:-3500}
STOP_ON_FAIL=${STOP_ON_FAIL:-1}
PAUSE=${PAUSE:-5}
PLOT=${PLOT:-1}
PROFILE=${PROFILE:-0}
SIP_PORT=${SIP_PORT:-25060}
KAM_PORT=${KAM_PORT:-26060}
CKPT_PORT=${CKPT_PORT:-27060}
REDIS_SIP_PORT=${REDIS_SIP_PORT:-28060}
REDIS_PORT=${REDIS_PORT:-28379}
ADMIN_PORT=${ADMIN_PORT:-29060}
UAS_PORT=${UAS_PORT:-25070}
UAC_PORT=${UAC_PORT:-25080}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/cps-kam-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# shellcheck source=lib.sh
. "$here/lib.sh"

need_pkg sipp sip-tester
need_pkg curl curl
[ "$PLOT" = 1 ] && need_pkg gnuplot gnuplot-nox
for p in "$SIP_PORT" "$KAM_PORT" "$UAC_PORT" $((UAC_PORT + 1)); do
	port_busy udp "$p" && die "udp port $p is in use"
done
port_busy tcp "$ADMIN_PORT" && die "tcp port $ADMIN_PORT is in use (set ADMIN_PORT)"

commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')
# host_busy: busy and total jiffies of the whole host so far (/proc/stat),
# to show how much CPU other programs took during a rate.
host_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# Both systems run side by side, each with its own two callees, and the
# rates alternate between them (parley at R, Kamailio at R, then the next
# R), so that whatever else this machine does hits both alike.
declare -A best nofail target srv_pid srv_port stopped
k=0
for sys in $SYSTEMS; do
	best[$sys]=0 nofail[$sys]=0 stopped[$sys]=0
	case $sys in
	parley)
		build_parley
		write_parley_config "$OUT/parley.yaml" 30000 39999
		start_parley "$OUT/parley.yaml"
		target[$sys]=127.0.0.1:$SIP_PORT srv_pid[$sys]=$parley_pid srv_port[$sys]=$SIP_PORT
		;;
	parley-ckpt)
		# A second parley beside the first, checkpointing every answered
		# call to its embedded store (sessions.checkpoint, part 7).
		mkdir -p "$OUT/ckpt-store"
		SIP_PORT=$CKPT_PORT ADMIN_PORT=$((ADMIN_PORT + 1)) write_parley_config "$OUT/parley-ckpt.yaml" 10000 19999 "$OUT/ckpt-store" true
		SIP_PORT=$CKPT_PORT ADMIN_PORT=$((ADMIN_PORT + 1)) start_parley "$OUT/parley-ckpt.yaml"
		target[$sys]=127.0.0.1:$CKPT_PORT srv_pid[$sys]=$parley_pid srv_port[$sys]=$CKPT_PORT
		;;
	parley-redis)
		# The same with the checkpoints (and registrations) in a Redis
		# started here, no persistence.
		need_pkg redis-server redis-server
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
		pids+=("$!")
		for _ in $(seq 50); do
			redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
			sleep 0.1
		done
		SIP_PORT=$REDIS_SIP_PORT ADMIN_PORT=$((ADMIN_PORT + 2)) write_parley_config "$OUT/parley-redis.yaml" 50000 59999 "" true "redis://127.0.0.1:$REDIS_PORT/0"
		SIP_PORT=$REDIS_SIP_PORT ADMIN_PORT=$((ADMIN_PORT + 2)) start_parley "$OUT/parley-redis.yaml"
		target[$sys]=127.0.0.1:$REDIS_SIP_PORT srv_pid[$sys]=$parley_pid srv_port[$sys]=$REDIS_SIP_PORT
		;;
	kamailio)
		start_kamailio "$KAM_PORT"
		target[$sys]=127.0.0.1:$KAM_PORT srv_pid[$sys]=$kam_pid srv_port[$sys]=$KAM_PORT
		;;
	*) die "unknown system $sys (want parley or kamailio)" ;;
	esac
	# Callees: register, then answer on the registered port.
	for i in 0 1; do
		port=$((UAS_PORT + 2 * k + i))
		port_busy udp "$port" && die "udp port $port is in use"
		sipp_register "${target[$sys]}" "$port" $((2000 + i))
		start_uas "$port" $((46000 + 200 * k + 100 * i)) "$sys-uas$i" -recv_timeout 5000
	done
	: >"$OUT/$sys.dat"
	k=$((k + 1))
done

fmt='%-8s %-6s %-5s %-7s %-7s %-6s %-5s %-5s %-8s %-3s %-7s %-7s %-8s %-8s %-7s %-5s\n'
# shellcheck disable=SC2059
printf "$fmt" system rate pairs calls ok failed unexp late1 cps rc cpu_us mem_mb rcvbuf srvdrop retrans host%

# run_rate SYSTEM RATE: one row; clears stopped[SYSTEM] no more.
run_rate() {
	local sys=$1 rate=$2 pairs=1 per calls i p r rc=0 uac_pids=() pid=${srv_pid[$1]}
	[ "$rate" -ge "$TWO_PAIRS_FROM" ] && pairs=2
	per=$((rate / pairs))
	calls=$((per * pairs * DURATION))
	local rcv0 cpu0 unexp0 late0 drop0 busy0 tot0
	rcv0=$(udp_counter RcvbufErrors)
	cpu0=$(tree_cpu_ticks "$pid")
	unexp0=$(unexpected_count "$OUT/$sys-uas0.err" "$OUT/$sys-uas1.err")
	late0=$(late_1xx_count "$OUT/$sys-uas0.err" "$OUT/$sys-uas1.err")
	drop0=$(udp_sock_drops "${srv_port[$sys]}")
	read -r busy0 tot0 < <(host_busy)
	for ((i = 0; i < pairs; i++)); do
		(cd "$OUT" && exec timeout -k 5 $((DURATION + 30)) sipp "${target[$sys]}" -sf "$scen_dir/uac_auth.xml" \
			"${SIPP_COMMON[@]}" -p $((UAC_PORT + i)) -mp $((47000 + 100 * i)) \
			-key caller $((1001 + i)) -au $((1001 + i)) -ap "pw$((1001 + i))" -s $((2000 + i)) \
			-r "$per" -m $((per * DURATION)) -d 0 -recv_timeout 5000 \
			-trace_err -error_file "$OUT/$sys-uac-$rate-$i.err" \
			-trace_stat -stf "$OUT/$sys-uac-$rate-$i.csv" -fd 1 >"$OUT/$sys-uac-$rate-$i.log" 2>&1) &
		uac_pids+=($!)
	done
	local prof_pid=""
	if [ "$PROFILE" = 1 ] && [ "$sys" = parley ] && [ "$DURATION" -gt 6 ]; then
		(sleep 3 && curl -fsS -m $((DURATION + 10)) -o "$OUT/parley-$rate.cpu" \
			"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$((DURATION - 5))" 2>/dev/null) &
		prof_pid=$!
	fi
	for p in "${uac_pids[@]}"; do
		wait "$p" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }
	done
	if [ -n "$prof_pid" ]; then
		wait "$prof_pid" || true
		curl -fsS -m 30 -o "$OUT/parley-$rate.allocs" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/allocs" 2>/dev/null || true
		curl -fsS -m 30 -o "$OUT/parley-$rate.heap" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap" 2>/dev/null || true
	fi
	kill -0 "$pid" 2>/dev/null || die "$sys died at $rate calls/s (see $OUT)"
	local rcv1 cpu1 busy1 tot1 ok=0 failed=0 cps=0 retrans=0 csv unexp late drops mem cpu_us=- hostpct kept_up
	rcv1=$(udp_counter RcvbufErrors)
	cpu1=$(tree_cpu_ticks "$pid")
	read -r busy1 tot1 < <(host_busy)
	for ((i = 0; i < pairs; i++)); do
		csv=$OUT/$sys-uac-$rate-$i.csv
		ok=$((ok + $(csv_stat "$csv" 'SuccessfulCall(C)' || echo 0)))
		failed=$((failed + $(csv_stat "$csv" 'FailedCall(C)' || echo 0)))
		retrans=$((retrans + $(csv_stat "$csv" 'Retransmissions(C)' || echo 0)))
		cps=$(awk -v a="$cps" -v b="$(csv_stat "$csv" 'CallRate(C)')" 'BEGIN { printf "%.1f", a + b }')
	done
	sleep 1 # let the UAS log what arrived late
	unexp=$(($(unexpected_count "$OUT/$sys-uac-$rate"-*.err) + $(unexpected_count "$OUT/$sys-uas0.err" "$OUT/$sys-uas1.err") - unexp0))
	late=$(($(late_1xx_count "$OUT/$sys-uac-$rate"-*.err) + $(late_1xx_count "$OUT/$sys-uas0.err" "$OUT/$sys-uas1.err") - late0))
	drops=$(($(udp_sock_drops "${srv_port[$sys]}") - drop0))
	if [ "$sys" = parley ]; then
		mem=$(($(rss_kb "$pid") / 1024))
	else
		mem=$(($(tree_pss_kb "$pid") / 1024))
	fi
	[ "$ok" -gt 0 ] && cpu_us=$(((cpu1 - cpu0) * 10000 / ok))
	hostpct=$(awk -v b=$((busy1 - busy0)) -v t=$((tot1 - tot0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }')
	# shellcheck disable=SC2059
	printf "$fmt" "$sys" "$rate" "$pairs" "$calls" "$ok" "$failed" "$unexp" "$late" "$cps" "$rc" "$cpu_us" "$mem" \
		$((rcv1 - rcv0)) "$drops" "$retrans" "$hostpct"
	echo "$rate $cps $failed $unexp" >>"$OUT/$sys.dat"
	# Held: SIPp exited 0, every call succeeded, SIPp reached 90% of the
	# asked rate or more, and (strictly) no message was unexpected.
	kept_up=$(awk -v a="$cps" -v r="$rate" 'BEGIN { print (a + 0 >= 0.9 * r) ? 1 : 0 }')
	if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$ok" = "$calls" ] && [ "$kept_up" = 1 ]; then
		nofail[$sys]=$rate
		if [ "$unexp" = 0 ]; then best[$sys]=$rate; fi
	elif [ "$STOP_ON_FAIL" = 1 ]; then
		log "$sys: failures at $rate calls/s, stopping its ramp (see $OUT/$sys-uac-$rate-*.log)"
		stopped[$sys]=1
	fi
}

for rate in $RATES; do
	left=0
	for sys in $SYSTEMS; do
		[ "${stopped[$sys]}" = 1 ] && continue
		run_rate "$sys" "$rate"
		left=1
		sleep "$PAUSE"
	done
	[ "$left" = 1 ] || break
done

if [ "$PLOT" = 1 ]; then
	plots=()
	for sys in $SYSTEMS; do
		[ -s "$OUT/$sys.dat" ] && plots+=("'$OUT/$sys.dat' using 1:2 with linespoints title '$sys: calls/s reached'" \
			"'$OUT/$sys.dat' using 1:3 axes x1y2 with impulses lw 3 title '$sys: failed calls'")
	done
	if [ "${#plots[@]}" -gt 0 ]; then
		gnuplot <<EOF 2>"$OUT/gnuplot.log" || log "gnuplot failed (see $OUT/gnuplot.log)"
set terminal pngcairo size 900,500
set output '$OUT/cps_vs_kamailio.png'
set title 'Call rate with digest auth and location lookup ($commit, ${DURATION}s per rate)'
set xlabel 'calls/s asked'
set ylabel 'calls/s reached'
set y2label 'failed calls'
set y2tics
set key left top
set grid
plot $(IFS=,; echo "${plots[*]}")
EOF
	fi
fi

ratio() { awk -v p="$1" -v k="$2" 'BEGIN { if (k > 0) printf "%.2f", p / k; else print "n/a" }'; }
p=${best[parley]:-0} k=${best[kamailio]:-0} pn=${nofail[parley]:-0} kn=${nofail[kamailio]:-0}
echo "SUMMARY cps: held ${DURATION}s with 0 failed and 0 unexpected: parley $p calls/s, kamailio $k, parley/kamailio $(ratio "$p" "$k"); with 0 failed: parley $pn, kamailio $kn, ratio $(ratio "$pn" "$kn") (commit $commit, results in $OUT)"
if [ -n "${best[parley-redis]:-}" ]; then
	c=${best[parley-redis]} cn=${nofail[parley-redis]:-0}
	echo "SUMMARY checkpoints in Redis: parley $c calls/s, off $p, on/off $(ratio "$c" "$p"); with 0 failed: on $cn, off $pn, ratio $(ratio "$cn" "$pn")"
fi
if [ -n "${best[parley-ckpt]:-}" ]; then
	c=${best[parley-ckpt]} cn=${nofail[parley-ckpt]:-0}
	echo "SUMMARY checkpoints: parley with sessions.checkpoint on (embedded store) $c calls/s, off $p, on/off $(ratio "$c" "$p"); with 0 failed: on $cn, off $pn, ratio $(ratio "$cn" "$pn")"
fi

#!/usr/bin/env bash
# register.sh: registrations per second of parley and of Kamailio 5.6's
# registrar (auth module, usrloc in memory), in the same run.
#
# Each registration is REGISTER, 401 with a digest challenge (qop=auth),
# REGISTER with credentials, 200 (scenarios/register.xml). SIPp 3.6.1 takes
# one set of credentials per process, so each SIPp process refreshes one
# user's binding over and over (user 1001, a second process 1002 from
# TWO_PROCS_FROM registrations/s up); every REGISTER has a new Call-ID.
#
# Both systems run side by side and the rates alternate between them
# (parley at R, Kamailio at R, then the next R), so that whatever else runs
# on the machine weighs on both alike. Each (system, rate) runs DURATION
# seconds and prints a row. A rate is held when SIPp exited 0, every
# registration succeeded and SIPp reached 90% of the asked rate; held
# strictly when, in addition, no message was unexpected.
#
# Usage (from anywhere in the repository; root or sudo installs sip-tester,
# kamailio and gnuplot-nox when they are missing):
#   testcalls/bench/register.sh
#   DURATION=10 RATES="1000 2000" testcalls/bench/register.sh
#
# Columns: system, asked rate, SIPp processes, registrations asked,
# successful, failed, unexpected messages, rate SIPp achieved, worst SIPp
# exit code, server CPU time per successful registration (µs; Kamailio: all
# its processes), server memory after the rate (parley RSS, Kamailio PSS,
# MB), kernel UDP RcvbufErrors during the rate (whole host) and drops on
# the server's own SIP socket (/proc/net/udp), SIPp retransmissions, how
# busy the whole host was (% of both cores, SIPp and the server included). The
# summary gives the highest rate held strictly (also no unexpected message)
# and the highest with no failed registration, each with parley/Kamailio.
#
# Environment:
#   DURATION        seconds per rate (default 30)
#   RATES           registrations/s (default "1000 2000 3000 4000 6000 8000 10000 12000")
#   SYSTEMS         default "parley kamailio"
#   TWO_PROCS_FROM  rates from this one up use two SIPp processes (default 3000)
#   STOP_ON_FAIL    1 (default) stops a system's ramp at its first failed rate
#   PAUSE           seconds between rates (default 5)
#   PLOT            1 (default) writes register.png in OUT
#   SIP_PORT KAM_PORT ADMIN_PORT UAC_PORT  (25060 26060 29060 25080, +1 for the second process)
#   PARLEY_BIN      benchmark this binary instead of building ./cmd/parley
#   OUT             default testcalls/bench/out/register-<timestamp>
set -euo pipefail

DURATION=${DURATION:-30}
RATES=${RATES:-"1000 2000 3000 4000 6000 8000 10000 12000"}
SYSTEMS=${SYSTEMS:-"parley kamailio"}
TWO_PROCS_FROM=${TWO_PROCS_FROM:-3000}
STOP_ON_FAIL=${STOP_ON_FAIL:-1}
PAUSE=${PAUSE:-5}
PLOT=${PLOT:-1}
SIP_PORT=${SIP_PORT:-25060}
KAM_PORT=${KAM_PORT:-26060}
ADMIN_PORT=${ADMIN_PORT:-29060}
UAC_PORT=${UAC_PORT:-25080}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/register-$(date +%Y%m%d-%H%M%S)}
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

# Both systems run side by side and the rates alternate between them.
declare -A best nofail target srv_pid srv_port stopped
for sys in $SYSTEMS; do
	best[$sys]=0 nofail[$sys]=0 stopped[$sys]=0
	case $sys in
	parley)
		build_parley
		write_parley_config "$OUT/parley.yaml" 40000 40999
		start_parley "$OUT/parley.yaml"
		target[$sys]=127.0.0.1:$SIP_PORT srv_pid[$sys]=$parley_pid srv_port[$sys]=$SIP_PORT
		;;
	kamailio)
		start_kamailio "$KAM_PORT"
		target[$sys]=127.0.0.1:$KAM_PORT srv_pid[$sys]=$kam_pid srv_port[$sys]=$KAM_PORT
		;;
	*) die "unknown system $sys (want parley or kamailio)" ;;
	esac
	: >"$OUT/$sys.dat"
done

fmt='%-8s %-6s %-5s %-7s %-7s %-6s %-5s %-8s %-3s %-7s %-7s %-8s %-8s %-7s %-5s\n'
# shellcheck disable=SC2059
printf "$fmt" system rate procs regs ok failed unexp reg_s rc cpu_us mem_mb rcvbuf srvdrop retrans host%

# run_rate SYSTEM RATE: one row.
run_rate() {
	local sys=$1 rate=$2 procs=1 per regs i p r user rc=0 reg_pids=() pid=${srv_pid[$1]}
	[ "$rate" -ge "$TWO_PROCS_FROM" ] && procs=2
	per=$((rate / procs))
	regs=$((per * procs * DURATION))
	local rcv0 cpu0 drop0 busy0 tot0
	rcv0=$(udp_counter RcvbufErrors)
	cpu0=$(tree_cpu_ticks "$pid")
	drop0=$(udp_sock_drops "${srv_port[$sys]}")
	read -r busy0 tot0 < <(host_busy)
	for ((i = 0; i < procs; i++)); do
		user=$((1001 + i))
		(cd "$OUT" && exec timeout -k 5 $((DURATION + 30)) sipp "${target[$sys]}" -sf "$scen_dir/register.xml" \
			"${SIPP_COMMON[@]}" -p $((UAC_PORT + i)) \
			-key user "$user" -key expires 3600 -au "$user" -ap "pw$user" \
			-r "$per" -m $((per * DURATION)) -recv_timeout 5000 \
			-trace_err -error_file "$OUT/$sys-reg-$rate-$i.err" \
			-trace_stat -stf "$OUT/$sys-reg-$rate-$i.csv" -fd 1 >"$OUT/$sys-reg-$rate-$i.log" 2>&1) &
		reg_pids+=($!)
	done
	for p in "${reg_pids[@]}"; do
		wait "$p" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }
	done
	kill -0 "$pid" 2>/dev/null || die "$sys died at $rate registrations/s (see $OUT)"
	local rcv1 cpu1 busy1 tot1 ok=0 failed=0 rps=0 retrans=0 csv unexp drops mem cpu_us=- hostpct kept_up
	rcv1=$(udp_counter RcvbufErrors)
	cpu1=$(tree_cpu_ticks "$pid")
	read -r busy1 tot1 < <(host_busy)
	for ((i = 0; i < procs; i++)); do
		csv=$OUT/$sys-reg-$rate-$i.csv
		ok=$((ok + $(csv_stat "$csv" 'SuccessfulCall(C)' || echo 0)))
		failed=$((failed + $(csv_stat "$csv" 'FailedCall(C)' || echo 0)))
		retrans=$((retrans + $(csv_stat "$csv" 'Retransmissions(C)' || echo 0)))
		rps=$(awk -v a="$rps" -v b="$(csv_stat "$csv" 'CallRate(C)')" 'BEGIN { printf "%.1f", a + b }')
	done
	unexp=$(unexpected_count "$OUT/$sys-reg-$rate"-*.err)
	drops=$(($(udp_sock_drops "${srv_port[$sys]}") - drop0))
	if [ "$sys" = parley ]; then
		mem=$(($(rss_kb "$pid") / 1024))
	else
		mem=$(($(tree_pss_kb "$pid") / 1024))
	fi
	[ "$ok" -gt 0 ] && cpu_us=$(((cpu1 - cpu0) * 10000 / ok))
	hostpct=$(awk -v b=$((busy1 - busy0)) -v t=$((tot1 - tot0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }')
	# shellcheck disable=SC2059
	printf "$fmt" "$sys" "$rate" "$procs" "$regs" "$ok" "$failed" "$unexp" "$rps" "$rc" "$cpu_us" "$mem" \
		$((rcv1 - rcv0)) "$drops" "$retrans" "$hostpct"
	echo "$rate $rps $failed $unexp" >>"$OUT/$sys.dat"
	# Held: SIPp exited 0, every registration succeeded, SIPp reached 90%
	# of the asked rate or more, and (strictly) no message was unexpected.
	kept_up=$(awk -v a="$rps" -v r="$rate" 'BEGIN { print (a + 0 >= 0.9 * r) ? 1 : 0 }')
	if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$ok" = "$regs" ] && [ "$kept_up" = 1 ]; then
		nofail[$sys]=$rate
		if [ "$unexp" = 0 ]; then best[$sys]=$rate; fi
	elif [ "$STOP_ON_FAIL" = 1 ]; then
		log "$sys: failures at $rate registrations/s, stopping its ramp (see $OUT/$sys-reg-$rate-*.log)"
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
		[ -s "$OUT/$sys.dat" ] && plots+=("'$OUT/$sys.dat' using 1:2 with linespoints title '$sys: registrations/s reached'" \
			"'$OUT/$sys.dat' using 1:3 axes x1y2 with impulses lw 3 title '$sys: failed'")
	done
	if [ "${#plots[@]}" -gt 0 ]; then
		gnuplot <<EOF 2>"$OUT/gnuplot.log" || log "gnuplot failed (see $OUT/gnuplot.log)"
set terminal pngcairo size 900,500
set output '$OUT/register.png'
set title 'REGISTER with digest ($commit, ${DURATION}s per rate)'
set xlabel 'registrations/s asked'
set ylabel 'registrations/s reached'
set y2label 'failed registrations'
set y2tics
set key left top
set grid
plot $(IFS=,; echo "${plots[*]}")
EOF
	fi
fi

ratio() { awk -v p="$1" -v k="$2" 'BEGIN { if (k > 0) printf "%.2f", p / k; else print "n/a" }'; }
p=${best[parley]:-0} k=${best[kamailio]:-0} pn=${nofail[parley]:-0} kn=${nofail[kamailio]:-0}
echo "SUMMARY register: held ${DURATION}s with 0 failed and 0 unexpected: parley $p registrations/s, kamailio $k, parley/kamailio $(ratio "$p" "$k"); with 0 failed: parley $pn, kamailio $kn, ratio $(ratio "$pn" "$kn") (commit $commit, results in $OUT)"

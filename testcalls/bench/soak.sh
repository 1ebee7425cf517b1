#!/usr/bin/env bash
# soak.sh: parley under a steady call load for a long time, memory and
# goroutines sampled every 10 s and plotted; nothing may grow and no call
# may fail.
#
# A SIPp UAS registers as 2000 (digest) and answers, echoing RTP (-rtp_echo).
# Two SIPp UACs (user 1001 and 1002, 407 answered) call it through parley at
# CPS calls/s in all: MEDIA_SHARE percent of the calls play Debian
# sip-tester's g711a.pcap (7 s of PCMA) through parley's relay and back
# (scenarios/uac_auth_media.xml, MEDIA_HOLD_MS), the others hold HOLD_MS
# without media (scenarios/uac_auth.xml). Every SAMPLE seconds one row:
# parley's RSS, Go heap in use (after a forced GC, /debug/pprof/heap?gc=1),
# goroutines, calls open, relay ports in use, RTP packets relayed so far.
#
# Growth is judged on the load after WARMUP seconds, between its second
# quarter and its last quarter (the mean of each), and as a least-squares
# slope over its second half, per hour. SETTLE seconds after the load, every
# goroutine and port must be back to the idle reading.
#
# Usage (from anywhere in the repository):
#   testcalls/bench/soak.sh                      # 30 minutes
#   DURATION=120 testcalls/bench/soak.sh         # a quick check
#
# Environment:
#   DURATION      seconds of load (default 1800)
#   CPS           calls/s in all (default 200)
#   MEDIA_SHARE   percent of the calls with media (default 10)
#   HOLD_MS       duration of the calls without media (default 5000)
#   MEDIA_HOLD_MS duration of the calls with media (default 8000: the pcap lasts 7 s)
#   SAMPLE        seconds between samples (default 10)
#   WARMUP        seconds of load left out of the growth check (default 60:
#                 sipgo keeps each finished transaction 32 s, so memory
#                 climbs for that long before it levels)
#   SETTLE        seconds after the load before the last reading (default 40)
#   PLOT          1 (default) writes soak.png in OUT
#   SIP_PORT ADMIN_PORT UAS_PORT UAC_PORT  (27060 27090 27070 27080, the media caller UAC_PORT+1)
#   RTP_MIN RTP_MAX  parley's relay ports (30000 39999)
#   PARLEY_BIN    benchmark this binary instead of building ./cmd/parley
#   OUT           default testcalls/bench/out/soak-<timestamp>
set -euo pipefail

DURATION=${DURATION:-1800}
CPS=${CPS:-200}
MEDIA_SHARE=${MEDIA_SHARE:-10}
HOLD_MS=${HOLD_MS:-5000}
MEDIA_HOLD_MS=${MEDIA_HOLD_MS:-8000}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-60}
SETTLE=${SETTLE:-40}
PLOT=${PLOT:-1}
SIP_PORT=${SIP_PORT:-27060}
ADMIN_PORT=${ADMIN_PORT:-27090}
UAS_PORT=${UAS_PORT:-27070}
UAC_PORT=${UAC_PORT:-27080}
RTP_MIN=${RTP_MIN:-30000}
RTP_MAX=${RTP_MAX:-39999}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# shellcheck source=lib.sh
. "$here/lib.sh"

need_pkg sipp sip-tester
need_pkg curl curl
[ "$PLOT" = 1 ] && need_pkg gnuplot gnuplot-nox
pcap=/usr/share/sip-tester/g711a.pcap
[ -r "$pcap" ] || die "$pcap missing (Debian sip-tester ships it)"
for p in "$SIP_PORT" "$UAS_PORT" "$UAC_PORT" $((UAC_PORT + 1)); do
	port_busy udp "$p" && die "udp port $p is in use"
done
port_busy tcp "$ADMIN_PORT" && die "tcp port $ADMIN_PORT is in use (set ADMIN_PORT)"

media_cps=$(((CPS * MEDIA_SHARE + 50) / 100))
plain_cps=$((CPS - media_cps))
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')
build_parley
write_parley_config "$OUT/parley.yaml" "$RTP_MIN" "$RTP_MAX"
start_parley "$OUT/parley.yaml"
sipp_register "127.0.0.1:$SIP_PORT" "$UAS_PORT" 2000
start_uas "$UAS_PORT" 27100 uas -rtp_echo -recv_timeout $((MEDIA_HOLD_MS + HOLD_MS + 10000))

fmt='%-6s %-8s %-8s %-7s %-6s %-6s %-10s\n'
# shellcheck disable=SC2059
printf "$fmt" t_s rss_kb heap_kb gorout calls ports rtp_pkts
t0=$(date +%s)
samples=$OUT/soak.dat
echo "# t_s rss_kb heap_kb goroutines calls ports rtp_packets" >"$samples"
sample() { # prints a row and appends it to soak.dat; sets s_gor s_ports s_calls
	local t rss heap
	force_gc
	t=$(($(date +%s) - t0))
	rss=$(rss_kb "$parley_pid")
	heap=$(($(metric go_memstats_heap_inuse_bytes) / 1024))
	s_gor=$(metric go_goroutines)
	s_calls=$(metric parley_calls)
	s_ports=$(metric parley_rtp_ports_in_use)
	local pk d
	pk=$(metric parley_rtp_packets_total)
	# The media caller plays RTP but never reads the echo coming back, so
	# the kernel drops it on that socket: keep its count apart.
	d=$(udp_sock_drops 27300)
	[ "$d" -gt 0 ] && uac_media_drops=$d
	# shellcheck disable=SC2059
	printf "$fmt" "$t" "$rss" "$heap" "$s_gor" "$s_calls" "$s_ports" "$pk"
	echo "$t $rss $heap $s_gor $s_calls $s_ports $pk" >>"$samples"
}

uac_media_drops=0
sleep 2
sample
idle_gor=$s_gor idle_ports=$s_ports
rcv0=$(udp_counter RcvbufErrors)
pdrop0=$(metric parley_rtp_packets_dropped_total)
[ "$pdrop0" = - ] && pdrop0=0
load_start=$(($(date +%s) - t0))
uac_pids=()
run_uac() { # NAME SCENARIO PORT MEDIA_PORT USER RATE HOLD_MS
	[ "$6" -gt 0 ] || return 0
	(cd "$OUT" && exec timeout -k 5 $((DURATION + 120)) sipp "127.0.0.1:$SIP_PORT" -sf "$2" \
		"${SIPP_COMMON[@]}" -p "$3" -mp "$4" \
		-key caller "$5" -au "$5" -ap "pw$5" -s 2000 \
		-r "$6" -m $(($6 * DURATION)) -d "$7" -recv_timeout 5000 \
		-trace_err -error_file "$OUT/$1.err" \
		-trace_stat -stf "$OUT/$1.csv" -fd 10 >"$OUT/$1.log" 2>&1) &
	uac_pids+=($!)
}
run_uac uac-plain "$scen_dir/uac_auth.xml" "$UAC_PORT" 27200 1001 "$plain_cps" "$HOLD_MS"
run_uac uac-media "$scen_dir/uac_auth_media.xml" $((UAC_PORT + 1)) 27300 1002 "$media_cps" "$MEDIA_HOLD_MS"

# Sample while any caller runs.
running=1
while [ "$running" = 1 ]; do
	sleep "$SAMPLE"
	kill -0 "$parley_pid" 2>/dev/null || die "parley died during the soak (see $OUT/parley.log)"
	sample
	running=0
	for p in "${uac_pids[@]}"; do
		kill -0 "$p" 2>/dev/null && running=1
	done
done
load_end=$(($(date +%s) - t0))
rc=0
for p in "${uac_pids[@]}"; do
	wait "$p" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }
done
rcv1=$(udp_counter RcvbufErrors)
pdrop1=$(metric parley_rtp_packets_dropped_total)
[ "$pdrop1" = - ] && pdrop1=0
sleep "$SETTLE"
sample
# One more look if a goroutine is still there: an admin HTTP connection of
# our own may be closing.
if [ "$s_gor" -gt "$idle_gor" ]; then
	sleep 5
	sample
fi
after_gor=$s_gor after_ports=$s_ports after_calls=$s_calls

ok=0 failed=0
for n in uac-plain uac-media; do
	[ -f "$OUT/$n.csv" ] || continue
	ok=$((ok + $(csv_stat "$OUT/$n.csv" 'SuccessfulCall(C)' || echo 0)))
	failed=$((failed + $(csv_stat "$OUT/$n.csv" 'FailedCall(C)' || echo 0)))
done
unexp=$(unexpected_count "$OUT"/uac-*.err "$OUT/uas.err")

# Growth between the second and the last quarter of the steady load (rows
# from WARMUP after the start to DURATION after it: the callers' last calls
# end after that), and the slope over its second half, per hour.
read -r rss_q2 rss_q4 heap_q2 heap_q4 gor_q2 gor_q4 rss_slope heap_slope gor_slope < <(awk -v a=$((load_start + WARMUP)) -v b=$((load_start + DURATION)) '
	!/^#/ && $1 > a && $1 <= b { n++; t[n] = $1; r[n] = $2; h[n] = $3; g[n] = $4 }
	function mean(x, from, to,   i, s) { s = 0; for (i = from; i <= to; i++) s += x[i]; return s / (to - from + 1) }
	function slope(x, from, to,   i, st, sx, stt, stx, m) {
		m = to - from + 1; if (m < 2) return 0
		for (i = from; i <= to; i++) { st += t[i]; sx += x[i]; stt += t[i] * t[i]; stx += t[i] * x[i] }
		return (m * stx - st * sx) / (m * stt - st * st) * 3600
	}
	END {
		if (n < 4) { print "0 0 0 0 0 0 0 0 0"; exit }
		q = int(n / 4); h2 = int(n / 2) + 1
		printf "%.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.1f\n",
			mean(r, q + 1, 2 * q), mean(r, n - q + 1, n), mean(h, q + 1, 2 * q), mean(h, n - q + 1, n),
			mean(g, q + 1, 2 * q), mean(g, n - q + 1, n), slope(r, h2, n), slope(h, h2, n), slope(g, h2, n)
	}' "$samples")
echo "load ${load_start}s..${load_end}s (growth checked over $((load_start + WARMUP))s..$((load_start + DURATION))s): $plain_cps calls/s without media (${HOLD_MS} ms) + $media_cps with media (${MEDIA_HOLD_MS} ms)"
echo "2nd quarter -> last quarter means: rss ${rss_q2} -> ${rss_q4} kB, heap ${heap_q2} -> ${heap_q4} kB, goroutines ${gor_q2} -> ${gor_q4}"
echo "slope over the second half, per hour: rss ${rss_slope} kB, heap ${heap_slope} kB, goroutines ${gor_slope}"
echo "after ${SETTLE}s idle vs before: goroutines ${idle_gor} -> ${after_gor}, relay ports ${idle_ports} -> ${after_ports}, calls open ${after_calls}"
echo "sipp: ok $ok failed $failed unexpected $unexp rc $rc; kernel RcvbufErrors +$((rcv1 - rcv0)), of which $uac_media_drops on the media caller's RTP socket (it does not read the echo); parley_rtp_packets_dropped_total +$((pdrop1 - pdrop0))"

if [ "$PLOT" = 1 ]; then
	gnuplot <<EOF 2>"$OUT/gnuplot.log" || log "gnuplot failed (see $OUT/gnuplot.log)"
set terminal pngcairo size 1000,550
set output '$OUT/soak.png'
set title 'parley soak: $CPS calls/s, ${MEDIA_SHARE}% with media, ${DURATION}s ($commit)'
set xlabel 'seconds'
set ylabel 'MB'
set y2label 'goroutines, open calls'
set y2tics
set ytics nomirror
set key left top
set grid
set arrow from $load_end, graph 0 to $load_end, graph 1 nohead dt 2
plot '$samples' using 1:(\$2/1024) with lines lw 2 title 'RSS (MB)', \
     '$samples' using 1:(\$3/1024) with lines lw 2 title 'Go heap in use (MB)', \
     '$samples' using 1:4 axes x1y2 with lines title 'goroutines', \
     '$samples' using 1:5 axes x1y2 with lines title 'open calls'
EOF
fi

# No growth: last-quarter means within 5% (+1 MB, +5 goroutines) of the
# second quarter's; everything back after the load; no failed call.
verdict=$(awk -v r2="$rss_q2" -v r4="$rss_q4" -v h2="$heap_q2" -v h4="$heap_q4" -v g2="$gor_q2" -v g4="$gor_q4" \
	-v f="$failed" -v ig="$idle_gor" -v ag="$after_gor" -v ap="$after_ports" -v ip="$idle_ports" -v ac="$after_calls" \
	'BEGIN { ok = (r4 <= r2 * 1.05 + 1024 && h4 <= h2 * 1.05 + 1024 && g4 <= g2 * 1.05 + 5 && f == 0 && ag <= ig && ap == ip && ac == 0); print (ok ? "met" : "not met") }')
echo "SUMMARY soak: ${DURATION}s at $CPS calls/s (${MEDIA_SHARE}% media): ok $ok failed $failed; heap ${heap_q2} -> ${heap_q4} kB, rss ${rss_q2} -> ${rss_q4} kB, goroutines ${gor_q2} -> ${gor_q4}; after: goroutines ${idle_gor} -> ${after_gor}, ports ${after_ports}; no growth and no failed call: $verdict (commit $commit, plot $OUT/soak.png)"

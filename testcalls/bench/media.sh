#!/usr/bin/env bash
# media.sh: media relay benchmark of parley, side by side with rtpengine.
#
# For each number of calls N it sets up N calls through parley (SIP through
# parley's B2BUA, RTP through its relay) and pushes 50 packets/s each way
# per call (PCMA, 172-byte RTP packets) for DURATION seconds; then the same
# load through rtpengine (Debian rtpengine-daemon, userspace: --table=-1),
# set up over its ng protocol. The load generator is rtpload (Go, same
# directory): one socket per side, sendmmsg/recvmmsg batches, a paced
# sender, and a timestamp, call and sequence number in every payload.
#
# Per N it prints one line per system and a ratio line; at the end a
# summary line says at which N parley met its targets (loss < 0.01%,
# <= 5 µs of parley's CPU per relayed packet, p99 one-way latency < 2 ms).
#
# Usage (from anywhere in the repository; needs root or sudo to install
# rtpengine-daemon the first time):
#   testcalls/bench/media.sh
#   CALLS="400 800" DURATION=10 testcalls/bench/media.sh
#
# Columns: calls, system, packets sent and received (both directions),
# lost and loss %, calls that lost any packet, one-way latency p50/p99/max
# in µs (receive time − send time; both ends on this host), the relay's CPU
# time during the media phase (utime+stime from /proc/PID/stat) and per
# relayed packet, the rate the generator really sent and received, its own
# CPU per packet, the kernel drops it saw on its own sockets and on the
# relay's sockets (/proc/net/udp), and the host's UDP RcvbufErrors delta
# (/proc/net/snmp). "direct" (BASELINE=1) is the generator talking to itself
# without a relay: the floor of the latency figures.
#
# Environment:
#   CALLS        space-separated numbers of concurrent calls (default "200 400 800")
#   DURATION     seconds of media per run (default 20)
#   SYSTEMS      which relays to run (default "parley rtpengine")
#   BASELINE=1   also run the generator without a relay ("direct")
#   PAUSE        seconds between runs (default 3)
#   SETUP_RATE   calls set up per second through parley (default 200)
#   SIP_PORT ADMIN_PORT LOAD_SIP_PORT NG_PORT   loopback ports (25060 29060 25090 2223)
#   PARLEY_RTP_MIN PARLEY_RTP_MAX   parley's relay ports (20000 29999)
#   PARLEY_BIN   benchmark this binary instead of building ./cmd/parley
#   OUT          directory for configs, logs and results
#                (default testcalls/bench/out/media-<timestamp>)
set -euo pipefail

CALLS=${CALLS:-"200 400 800"}
DURATION=${DURATION:-20}
SYSTEMS=${SYSTEMS:-"parley rtpengine"}
BASELINE=${BASELINE:-0}
PAUSE=${PAUSE:-3}
SETUP_RATE=${SETUP_RATE:-200}
SIP_PORT=${SIP_PORT:-25060}
ADMIN_PORT=${ADMIN_PORT:-29060}
LOAD_SIP_PORT=${LOAD_SIP_PORT:-25090}
NG_PORT=${NG_PORT:-2223}
PARLEY_RTP_MIN=${PARLEY_RTP_MIN:-20000}
PARLEY_RTP_MAX=${PARLEY_RTP_MAX:-29999}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$root/testcalls/bench/out/media-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# shellcheck source=lib.sh
. "$here/lib.sh"

want() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# --- tools ---------------------------------------------------------------
command -v curl >/dev/null || die "curl is needed to read parley's admin endpoints"
# The package ships a systemd unit and an init script that would start a
# daemon from /etc/rtpengine/rtpengine.conf (kernel table 0, every
# interface); this script runs its own process with --config-file=none, so a
# packaged daemon, if one started, is left alone but must not hold the ng
# port (checked below).
if want rtpengine; then need_pkg rtpengine rtpengine-daemon; fi

if want parley; then
	for p in "$SIP_PORT" "$LOAD_SIP_PORT"; do
		port_busy udp "$p" && die "udp port $p is in use (set SIP_PORT/LOAD_SIP_PORT)"
	done
	port_busy tcp "$ADMIN_PORT" && die "tcp port $ADMIN_PORT is in use (set ADMIN_PORT)"
fi
if want rtpengine && port_busy udp "$NG_PORT"; then
	die "udp port $NG_PORT is in use (a packaged rtpengine? stop it: service rtpengine-daemon stop; or set NG_PORT)"
fi

log "building rtpload"
(cd "$root" && timeout 300 go build -o "$OUT/rtpload" ./testcalls/bench/rtpload) || die "go build rtpload failed"

# --- parley ----------------------------------------------------------------
parley_pid=""
if want parley; then
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
rtp:
  address: 127.0.0.1
  port_min: $PARLEY_RTP_MIN
  port_max: $PARLEY_RTP_MAX
  codecs: [PCMA, PCMU, telephone-event]
  timeout: 60s
admin: {listen: 127.0.0.1:$ADMIN_PORT, pprof: true}
store: {path: ""}
users: [{username: "1001", password: "pw1001"}]
routes: [{match: '^9(\d+)\$', target: 'sip:\$1@127.0.0.1:$LOAD_SIP_PORT'}]
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
	log "parley pid $parley_pid ready on 127.0.0.1:$SIP_PORT (relay ports $PARLEY_RTP_MIN-$PARLEY_RTP_MAX)"
fi

# --- rtpengine -------------------------------------------------------------
rtpengine_pid=""
if want rtpengine; then
	# As shared/TESTING.md runs it, plus: no config file (Debian's asks for
	# the kernel table), and ports freed at delete (no 30 s delete delay),
	# so one daemon serves every run.
	rtpengine --config-file=none --interface=127.0.0.1 --listen-ng="127.0.0.1:$NG_PORT" --table=-1 \
		--foreground --port-min=30000 --port-max=39999 --num-threads=2 --delete-delay=0 \
		--log-stderr --log-level=5 >"$OUT/rtpengine.log" 2>&1 &
	rtpengine_pid=$!
	pids+=("$rtpengine_pid")
	for _ in $(seq 50); do
		port_busy udp "$NG_PORT" && break
		kill -0 "$rtpengine_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$rtpengine_pid" 2>/dev/null || { tail -20 "$OUT/rtpengine.log" >&2; die "rtpengine did not start"; }
	log "rtpengine pid $rtpengine_pid, $(rtpengine --version 2>&1 | head -1), ng on 127.0.0.1:$NG_PORT"
fi

# --- runs ------------------------------------------------------------------
# field LINE KEY: the value of KEY=... in an rtpload RESULT line.
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

fmt='%-6s %-10s %-9s %-9s %-7s %-8s %-6s %-6s %-7s %-8s %-7s %-8s %-8s %-7s %-7s %-7s %-7s %-7s\n'
# shellcheck disable=SC2059
printf "$fmt" calls system sent received lost loss% c_loss p50us p99us maxus cpu_ms us/pkt gen_pps gen_us gen_dr relay_dr rcvbuf note
declare -A result
run() { # SYSTEM N
	local sys=$1 n=$2 pid=0 line rc=0 note=""
	case $sys in
	parley) pid=$parley_pid ;;
	rtpengine) pid=$rtpengine_pid ;;
	esac
	local args=(-relay "$sys" -calls "$n" -duration "${DURATION}s" -pid "$pid"
		-sip "127.0.0.1:$SIP_PORT" -sip-listen "127.0.0.1:$LOAD_SIP_PORT" -setup-rate "$SETUP_RATE"
		-ng "127.0.0.1:$NG_PORT" -timeout "$((DURATION + 150))s")
	line=$(timeout -k 5 $((DURATION + 180)) "$OUT/rtpload" "${args[@]}" 2>"$OUT/rtpload-$sys-$n.err" | grep '^RESULT' || true)
	echo "$line" >"$OUT/rtpload-$sys-$n.txt"
	if [ -z "$line" ]; then
		# shellcheck disable=SC2059
		printf "$fmt" "$n" "$sys" - - - - - - - - - - - - - - - "FAILED: $(tail -1 "$OUT/rtpload-$sys-$n.err")"
		result[$sys,$n]=""
		return
	fi
	if [ "$sys" = parley ]; then
		kill -0 "$parley_pid" 2>/dev/null || { tail -20 "$OUT/parley.log" >&2; die "parley died at $n calls"; }
		sleep 1
		note="ports_in_use=$(metric parley_rtp_ports_in_use),calls=$(metric parley_calls)"
	fi
	result[$sys,$n]=$line
	# shellcheck disable=SC2059
	printf "$fmt" "$n" "$sys" "$(field "$line" sent)" "$(field "$line" received)" "$(field "$line" lost)" \
		"$(field "$line" loss_pct)" "$(field "$line" calls_with_loss)" "$(field "$line" p50_us)" "$(field "$line" p99_us)" \
		"$(field "$line" max_us)" "$(field "$line" relay_cpu_ms)" "$(field "$line" relay_us_per_pkt)" \
		"$(field "$line" gen_recv_pps)" "$(field "$line" gen_us_per_pkt)" "$(field "$line" gen_sock_drops)" \
		"$(field "$line" relay_sock_drops)" "$(field "$line" rcvbuf_errors)" "$note"
}

ratio() { # A B: A/B to 2 decimals, or -
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

best_parley=0
best_rtpengine=0
for n in $CALLS; do
	[ "$BASELINE" = 1 ] && run direct "$n" && sleep "$PAUSE"
	for sys in $SYSTEMS; do
		run "$sys" "$n"
		sleep "$PAUSE"
	done
	p=${result[parley,$n]:-}
	r=${result[rtpengine,$n]:-}
	if [ -n "$p" ] && [ -n "$r" ]; then
		echo "ratio  parley/rtpengine at $n calls: cpu per packet $(ratio "$(field "$p" relay_us_per_pkt)" "$(field "$r" relay_us_per_pkt)")x," \
			"p99 $(ratio "$(field "$p" p99_us)" "$(field "$r" p99_us)")x, lost $(field "$p" lost) vs $(field "$r" lost)"
	fi
	if [ -n "$p" ]; then
		ok=$(awk -v l="$(field "$p" loss_pct)" -v u="$(field "$p" relay_us_per_pkt)" -v q="$(field "$p" p99_us)" \
			'BEGIN { print (l + 0 < 0.01 && u != "-" && u + 0 <= 5 && q + 0 < 2000) ? 1 : 0 }')
		[ "$ok" = 1 ] && best_parley=$n
	fi
	if [ -n "$r" ] && [ "$(field "$r" lost)" = 0 ]; then
		best_rtpengine=$n
	fi
done

echo "SUMMARY media relay, ${DURATION}s per run, 50 pps each way per call:" \
	"parley met its targets (loss<0.01%, <=5us CPU/packet, p99<2ms) up to $best_parley calls;" \
	"rtpengine lost nothing up to $best_rtpengine calls (of: $CALLS; results in $OUT)"

# shellcheck shell=bash
# lib.sh: helpers shared by the benchmark scripts that compare parley with
# Kamailio (cps_vs_kamailio.sh, register.sh) and by scale.sh and soak.sh.
# Source it after setting OUT; it is not a script of its own.
#
# The helpers follow cps.sh: one process list killed by an EXIT trap, tools
# installed with apt-get only when missing, counters read from /proc and
# from parley's /metrics, SIPp statistics read from its -trace_stat CSV.
#
# Every user in the benchmark configs has the password "pw" + user name
# (1001 → pw1001), in parley's users list and in kamailio.cfg alike.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scen_dir=$bench_dir/scenarios

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes -------------------------------------------------------------
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: stop one process this script started, and forget it.
stop_pid() {
	local pid=$1 keep=() p
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${pids[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# --- tools -----------------------------------------------------------------
# need_pkg COMMAND PACKAGE: install PACKAGE with apt-get when COMMAND is missing.
apt_updated=0
need_pkg() {
	command -v "$1" >/dev/null && return 0
	log "$1 missing: installing $2"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	if [ "$apt_updated" = 0 ]; then
		$sudo apt-get update >/dev/null || die "apt-get update failed"
		apt_updated=1
	fi
	# The Debian kamailio package starts no service here (no systemd), and
	# if it did, stop_packaged_kamailio stops it.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "$2" >/dev/null || die "apt-get install $2 failed"
	command -v "$1" >/dev/null || die "$2 installed but $1 is still missing"
}

port_busy() { # $1 = udp|tcp, $2 = port
	local flag=-lun
	[ "$1" = tcp ] && flag=-ltn
	command -v ss >/dev/null || return 1
	ss $flag "sport = :$2" | grep -q ":$2"
}

# --- kernel and process counters -------------------------------------------
udp_counter() { # $1 = column name in the Udp: rows of /proc/net/snmp
	awk -v col="$1" '$1 == "Udp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == col) c = i; n = 1 } else print $c }' /proc/net/snmp
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# tree_cpu_ticks PID: CPU ticks of PID and its direct children (Kamailio's
# workers are children of the main process).
tree_cpu_ticks() {
	local t=0 c
	t=$(cpu_ticks "$1")
	for c in $(pgrep -P "$1" 2>/dev/null); do
		t=$((t + $(cpu_ticks "$c")))
	done
	echo "$t"
}

# tree_pss_kb PID: proportional set size of PID and its children, in kB: for
# Kamailio, whose shared memory every worker maps, the sum of RSS would count
# it once per process.
tree_pss_kb() {
	local t=0 c v
	for c in "$1" $(pgrep -P "$1" 2>/dev/null); do
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$c/smaps_rollup" 2>/dev/null || echo 0)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# metric NAME [LABEL_FILTER]: sum of the series of NAME on parley's /metrics
# whose labels contain LABEL_FILTER ("-" when parley does not answer).
metric() {
	curl -fsS -m 5 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null |
		awk -v n="$1" -v f="${2:-}" '($1 == n || index($1, n "{") == 1) && index($1, f) { s += $NF; ok = 1 } END { if (ok) printf "%.0f\n", s; else print "-" }'
}

# force_gc: ask parley's pprof handler for a heap profile after a GC, so that
# go_memstats_heap_inuse_bytes counts live objects rather than garbage.
force_gc() {
	curl -fsS -m 30 -o /dev/null "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap?gc=1" 2>/dev/null || true
}

# csv_stat FILE COLUMN: the last row's value of COLUMN in SIPp's -trace_stat CSV.
csv_stat() {
	awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } { v = $c } END { print (c ? v : "") }' "$1" 2>/dev/null
}

# unexpected_count ERRFILE...: messages SIPp called unexpected (it logs each
# in its -trace_err file; with -abortunexp off the call goes on), except
# provisional responses overtaken by their final one, which late_1xx_count
# counts: a multi-worker server may send a 180 after its 200 (see
# shared/TESTING.md), which harms no call.
unexpected_count() {
	cat "$@" 2>/dev/null | grep -i 'unexpected message' | grep -vc "received 'SIP/2.0 1[0-9][0-9] " || true
}
late_1xx_count() {
	cat "$@" 2>/dev/null | grep -i 'unexpected message' | grep -c "received 'SIP/2.0 1[0-9][0-9] " || true
}

# udp_sock_drops PORT: datagrams the kernel dropped on the UDP sockets bound
# to local PORT (the drops column of /proc/net/udp), so that RcvbufErrors
# can be charged to the server or to SIPp.
udp_sock_drops() {
	awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, a, ":"); if (a[2] == p) d += $NF } END { print d + 0 }' /proc/net/udp
}

# --- parley ----------------------------------------------------------------
parley_pid=""
# build_parley: sets parley_bin (PARLEY_BIN, else a fresh build of ./cmd/parley).
build_parley() {
	parley_bin=${PARLEY_BIN:-}
	if [ -z "$parley_bin" ]; then
		parley_bin=$OUT/parley
		log "building parley ($(cd "$bench_dir" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
		(cd "$bench_dir/../.." && timeout 300 go build -o "$parley_bin" ./cmd/parley) || die "go build ./cmd/parley failed"
	fi
}

# write_parley_config FILE RTP_MIN RTP_MAX: parley as a lab PBX for benchmarks:
# users 1001..1100 and 2000..2009 with digest (no trusted network), no call
# limits, no qualify, memory store, no RTP timeout (benchmark calls may
# carry no media), warnings only.
# write_parley_config FILE PORT_MIN PORT_MAX [STORE_DIR [CHECKPOINT [REDIS_URL]]]:
# a config on $SIP_PORT and $ADMIN_PORT; with STORE_DIR and CHECKPOINT
# true, answered calls are checkpointed to STORE_DIR/calls.db, or with
# REDIS_URL to that Redis (registrations too).
write_parley_config() {
	local u
	{
		cat <<EOF
sip:
  listen: [udp://127.0.0.1:$SIP_PORT]
  realm: parley.lab
  trusted: []
rtp: {address: 127.0.0.1, port_min: $2, port_max: $3, timeout: 0s}
admin: {listen: 127.0.0.1:$ADMIN_PORT, pprof: true}
store: {path: "${4:-}", redis: "${6:-}"}
sessions: {max_calls: 0, max_calls_per_user: 0, checkpoint: ${5:-false}}
registrar: {qualify: 0s}
log: {level: warn}
services: {echo: ""}
users:
EOF
		for u in $(seq 1001 1100) $(seq 2000 2009); do
			printf '  - {username: "%s", password: "pw%s"}\n' "$u" "$u"
		done
	} >"$1"
}

# start_parley CONFIG: start parley and wait for /readyz.
start_parley() {
	timeout 10 "$parley_bin" -check-config -config "$1" >/dev/null || die "parley rejects $1"
	"$parley_bin" -config "$1" >"$OUT/$(basename "$1" .yaml).log" 2>&1 &
	parley_pid=$!
	pids+=("$parley_pid")
	for _ in $(seq 100); do
		curl -fsS -m 1 "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && {
			log "parley pid $parley_pid ready on 127.0.0.1:$SIP_PORT"
			return 0
		}
		kill -0 "$parley_pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$OUT/$(basename "$1" .yaml).log" >&2
	die "parley not ready within 10s"
}

# --- Kamailio --------------------------------------------------------------
kam_pid=""
# stop_packaged_kamailio: the Debian package's own service would hold 5060
# and compete for the CPU; stop it if it runs.
stop_packaged_kamailio() {
	local p
	if [ -r /run/kamailio/kamailio.pid ] && p=$(cat /run/kamailio/kamailio.pid) && kill -0 "$p" 2>/dev/null; then
		log "stopping the packaged kamailio service (pid $p)"
		if command -v service >/dev/null; then
			service kamailio stop >/dev/null 2>&1 || true
		fi
		kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
	fi
}

# start_kamailio PORT: our own Kamailio with kamailio/kamailio.cfg, in the
# foreground (-DD), logging to stderr (-E), 2 workers for 2 cores, and the
# memory TESTING.md asks for (-m 2048 -M 32).
start_kamailio() {
	need_pkg kamailio kamailio
	stop_packaged_kamailio
	local cfg=$bench_dir/kamailio/kamailio.cfg
	mkdir -p "$OUT/kamailio-run"
	kamailio -c -f "$cfg" >"$OUT/kamailio-check.log" 2>&1 || { tail -20 "$OUT/kamailio-check.log" >&2; die "kamailio rejects $cfg"; }
	kamailio -f "$cfg" -DD -E -m "${KAM_SHM_MB:-2048}" -M "${KAM_PKG_MB:-32}" -n "${KAM_WORKERS:-2}" \
		-l "udp:127.0.0.1:$1" -Y "$OUT/kamailio-run" -P "$OUT/kamailio-run/kamailio.pid" \
		>"$OUT/kamailio.log" 2>&1 &
	kam_pid=$!
	pids+=("$kam_pid")
	for _ in $(seq 50); do
		port_busy udp "$1" && {
			log "kamailio pid $kam_pid ready on 127.0.0.1:$1"
			return 0
		}
		kill -0 "$kam_pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$OUT/kamailio.log" >&2
	die "kamailio not listening on udp $1 within 5s"
}

# --- SIPp ------------------------------------------------------------------
# SIPp's sockets get 4 MB buffers (-buff_size): with the kernel default SIPp
# drops datagrams above ~1,000 calls/s and the failures would be charged to
# the server. -default_behaviors all,-abortunexp: a 180 overtaken by its 200
# must not abort the call; -recv_timeout: a call that stalls still fails.
# shellcheck disable=SC2054 # all,-abortunexp is one argument
SIPP_COMMON=(-i 127.0.0.1 -nostdin -buff_size 4194304 -default_behaviors all,-abortunexp)

# sipp_register TARGET LOCAL_PORT USER: one authenticated REGISTER from
# LOCAL_PORT, so that a SIPp UAS started afterwards on that port is USER's
# registered contact (parley sends calls to the address a REGISTER came
# from, Kamailio to the Contact; both are LOCAL_PORT here).
sipp_register() {
	local rc=0
	(cd "$OUT" && timeout -k 5 20 sipp "$1" -sf "$scen_dir/register.xml" "${SIPP_COMMON[@]}" -p "$2" \
		-key user "$3" -key expires 3600 -au "$3" -ap "pw$3" -m 1 -recv_timeout 5000 \
		-trace_stat -stf "$OUT/reg-uas-$3.csv" >"$OUT/reg-uas-$3.log" 2>&1) || rc=$?
	[ "$rc" = 0 ] || { tail -5 "$OUT/reg-uas-$3.log" >&2; die "registering user $3 from port $2 at $1 failed (sipp rc $rc)"; }
}

# start_uas PORT MEDIA_PORT NAME [extra sipp args...]: the callee (echoes
# Record-Route, answers with SDP); sets uas_pid.
start_uas() {
	local port=$1 mport=$2 name=$3
	shift 3
	(cd "$OUT" && exec sipp -sf "$scen_dir/uas.xml" "${SIPP_COMMON[@]}" -p "$port" -mp "$mport" \
		-trace_err -error_file "$OUT/$name.err" "$@" >"$OUT/$name.log" 2>&1) &
	uas_pid=$!
	pids+=("$uas_pid")
	sleep 0.5
	kill -0 "$uas_pid" 2>/dev/null || { tail -20 "$OUT/$name.log" >&2; die "sipp $name did not start"; }
}

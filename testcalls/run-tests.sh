#!/usr/bin/env bash
# Runs every parley test on a fresh machine: installs the real peers the
# end-to-end tests drive (SIPp, baresip, linphone's command-line phone,
# sox for the audio checks, Chromium for the dashboard, tshark and sngrep
# as HEP receivers, Prometheus for the Grafana dashboard's queries) when
# they are missing, then checks formatting, vets, and runs all unit and
# end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v baresip >/dev/null 2>&1 || missing+=(baresip-core)
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v linphonec >/dev/null 2>&1 || missing+=(linphone-cli)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium) # the dashboard test's browser
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
command -v sngrep >/dev/null 2>&1 || missing+=(sngrep)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# linphone-cli is in Debian 12 but not in every release; install only
	# what apt knows (the linphone test skips itself when it cannot be had).
	pkgs=()
	for p in "${missing[@]}"; do
		cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
		if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
			pkgs+=("$p")
		else
			echo "not installable here: $p"
		fi
	done
	if ((${#pkgs[@]})); then
		echo "installing: ${pkgs[*]}"
		$sudo apt-get install -y -qq "${pkgs[@]}"
	fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m ./...

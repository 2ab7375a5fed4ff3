#!/usr/bin/env bash
# Installs the tools the integration tests use when they are missing.
# Idempotent: prints nothing and returns quickly when everything is present.
# Tests that need a tool which could not be installed skip themselves.
set -euo pipefail

cd "$(dirname "$0")/.."

# binary -> Debian package providing it
declare -A pkg_of=(
	[promtool]=prometheus
	[prometheus]=prometheus
	[socat]=socat
	[iperf3]=iperf3
	[sockperf]=sockperf
	[redis-server]=redis-server
	[redis-cli]=redis-tools
	[ip]=iproute2
	# uringsend plot's page is rendered by headless Chromium in its test
	# (a large package: a few hundred MB with its libraries).
	[chromium]=chromium
)
order=(promtool prometheus socat iperf3 sockperf redis-server redis-cli ip chromium)

missing_bins=()
missing_pkgs=()
for bin in "${order[@]}"; do
	if ! command -v "$bin" >/dev/null 2>&1; then
		missing_bins+=("$bin")
		p=${pkg_of[$bin]}
		case " ${missing_pkgs[*]-} " in
		*" $p "*) ;;
		*) missing_pkgs+=("$p") ;;
		esac
	fi
done

log() { echo "install-test-deps: $*" >&2; }

# PIDs of running prometheus processes (no dependency on procps).
prom_pids() {
	local f c
	for f in /proc/[0-9]*/comm; do
		c=$(cat "$f" 2>/dev/null) || continue
		if [ "$c" = prometheus ]; then
			f=${f#/proc/}
			echo "${f%/comm}"
		fi
	done
}

install_pkgs() {
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			log "not root and no usable sudo; missing: ${missing_bins[*]} (packages: ${missing_pkgs[*]}); the tests that need them will skip"
			return 0
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		log "apt-get not found; missing: ${missing_bins[*]} (packages: ${missing_pkgs[*]}); the tests that need them will skip"
		return 0
	fi

	# Keep package maintainer scripts from starting services (the prometheus
	# package's postinst would start a daemon on :9090). Only installed when the
	# system has no policy of its own, and removed again afterwards.
	local policy=/usr/sbin/policy-rc.d own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		own_policy=1
		# shellcheck disable=SC2064 # expand now: sudo is local
		trap "${sudo[*]} rm -f $policy" EXIT
	fi
	local installing_prometheus=0
	case " ${missing_pkgs[*]} " in *" prometheus "*) installing_prometheus=1 ;; esac

	# Prometheus daemons running before the install are not ours to stop.
	local before
	before=" $(prom_pids | tr '\n' ' ') "

	log "installing ${missing_pkgs[*]} (missing: ${missing_bins[*]})"
	local rc=0
	{
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends -o Dpkg::Use-Pty=0 "${missing_pkgs[@]}" >/dev/null
	} || rc=$?

	if [ "$own_policy" = 1 ]; then
		"${sudo[@]}" rm -f "$policy"
		trap - EXIT
	fi

	# If the prometheus postinst started a daemon anyway (e.g. systemd ignored
	# the policy), stop it so that nothing we installed listens on :9090.
	if [ "$installing_prometheus" = 1 ]; then
		if [ -z "$(echo $before)" ] && command -v systemctl >/dev/null 2>&1 &&
			[ -d /run/systemd/system ]; then
			"${sudo[@]}" systemctl stop prometheus.service >/dev/null 2>&1 || true
			"${sudo[@]}" systemctl disable prometheus.service >/dev/null 2>&1 || true
		fi
		local pid
		for pid in $(prom_pids); do
			case "$before" in
			*" $pid "*) ;;
			*) "${sudo[@]}" kill "$pid" 2>/dev/null || true ;;
			esac
		done
	fi

	if [ "$rc" -ne 0 ]; then
		log "apt-get failed (exit $rc); the tests that need ${missing_bins[*]} will skip"
	fi
	local bin still=()
	for bin in "${missing_bins[@]}"; do
		command -v "$bin" >/dev/null 2>&1 || still+=("$bin")
	done
	if [ "${#still[@]}" -gt 0 ]; then
		log "still missing: ${still[*]}"
	fi
}

if [ "${#missing_bins[@]}" -gt 0 ]; then
	install_pkgs
fi

go mod download

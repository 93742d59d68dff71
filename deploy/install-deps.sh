#!/usr/bin/env bash
# Install the Debian 12 packages Shoal needs to build and test, only those
# that are missing. Idempotent; needs root (or sudo) when something is missing.
set -euo pipefail

PKGS=(
	build-essential pkg-config clang
	liblmdb-dev lmdb-utils libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
	libc-ares-dev libssl-dev libevent-dev libconfig-dev check libsystemd-dev
	postfix swaks dnsmasq-base python3 python3-aiosmtpd python3-dkim
	python3-dnspython python3-yaml python3-prometheus-client
	libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev  # HTTP API, webhooks
	zlib1g-dev  # TLS reports: gzip (RFC 8460 5.2)
	prometheus  # promtool: deploy/prometheus rules are checked and tested
	iproute2 procps openssl haproxy
	curl time strace valgrind apache2-utils  # bench/: scale.sh, profile.sh, http.sh (ab)
)

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix is only used for smtp-sink/smtp-source and the benchmark; do not let
# its installer configure or start a system mail service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package may start a system Postfix; we never want it listening.
if command -v postfix >/dev/null 2>&1; then
	$SUDO postfix stop >/dev/null 2>&1 || true
fi
# Only promtool is wanted from the prometheus package, not its server.
if [ -x /etc/init.d/prometheus ]; then
	$SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

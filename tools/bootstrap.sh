#!/bin/sh
# Installs what `make check` / `make run` need on a fresh Debian 12 machine.
# Idempotent: asks apt only for packages that are missing, and says what it does.
# Usage: tools/bootstrap.sh [run|check|dev]   (default: check)
set -eu

profile=${1:-check}

# Needed to build and run the service.
RUN_PKGS="build-essential pkg-config libcivetweb-dev libcjson-dev libcurl4-openssl-dev libssl-dev curl ca-certificates"
# Needed by the test suites: unit (check), memory checking, coverage,
# end-to-end (Debian's /usr/bin/python3) and fuzzing (clang's libFuzzer).
CHECK_PKGS="check valgrind lcov python3 clang libclang-rt-14-dev"
# Nice to have while developing: load generation and debugging.
DEV_PKGS="wrk gdb"

case "$profile" in
run) want="$RUN_PKGS" ;;
check) want="$RUN_PKGS $CHECK_PKGS" ;;
dev) want="$RUN_PKGS $CHECK_PKGS $DEV_PKGS" ;;
*) echo "bootstrap: unknown profile '$profile' (run|check|dev)" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "bootstrap: all $profile packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "bootstrap: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
echo "bootstrap: done"

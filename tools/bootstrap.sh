#!/bin/sh
# Installs what `make check` / `make run` need on a fresh Debian 12 machine.
# Idempotent: asks apt only for packages that are missing, and says what it does.
# Usage: tools/bootstrap.sh [run|check|dev]   (default: check)
set -eu

profile=${1:-check}
cd "$(dirname "$0")/.."

# Needed to build and run the service (libhiredis-dev: the Redis rate
# limiter; it pulls the runtime library libhiredis0.14.  libjemalloc-dev:
# the service's allocator, ADR 17; it pulls libjemalloc2).
RUN_PKGS="build-essential pkg-config libcivetweb-dev libcjson-dev libcurl4-openssl-dev libssl-dev libhiredis-dev libjemalloc-dev zlib1g-dev curl ca-certificates"
# Needed by the test suites: unit (check), memory checking, coverage,
# end-to-end (Debian's /usr/bin/python3), fuzzing (clang's libFuzzer), and
# the AWS stand-ins: botocore verifies every SigV4 signature independently,
# the AWS CLI reads what the service wrote, redis-server (with redis-cli)
# for the Redis limiter's tests. dynalite (DynamoDB) comes from npm, pinned
# in tests/aws/package-lock.json. prometheus: its promtool checks /metrics
# (tests/e2e/test_metrics.py); --no-install-recommends keeps it at ~100 MB
# and no server is started by the tests.  gdb: tools/bounded.sh prints the
# stacks of a valgrind run that hung before it kills it.
CHECK_PKGS="check valgrind gdb lcov python3 clang libclang-rt-14-dev python3-botocore python3-jsonschema python3-cryptography awscli redis-server prometheus"
# Nice to have while developing: load generation.
DEV_PKGS="wrk"

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

# Node.js runs dynalite, newman and the contract tools (these need >= 20.19,
# checked below; the machines come with 20.x).
if [ "$profile" != run ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if [ -n "$missing" ]; then
	echo "bootstrap: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing
else
	echo "bootstrap: all $profile packages present"
fi

# npm tools of the test suites, project-local and pinned by each folder's
# package-lock.json; installed only when the file named is missing.  The
# installs run side by side (they wait on the registry); npm_wait fails
# if any of them failed.
npm_pids=""
npm_ci() { # folder, a file the install makes, what it is
	if [ ! -e "$1/node_modules/$2" ]; then
		echo "bootstrap: npm ci in $1 ($3)"
		(cd "$1" && npm ci --no-audit --no-fund --loglevel=error) &
		npm_pids="$npm_pids $!"
	fi
}
npm_wait() {
	failed=0
	for p in $npm_pids; do
		wait "$p" || failed=1
	done
	if [ "$failed" != 0 ]; then
		echo "bootstrap: an npm ci failed (its output is above)" >&2
		exit 1
	fi
}
if [ "$profile" != run ]; then
	# @redocly/cli 2 (tests/contract) needs Node.js >= 20.19; Debian 12's
	# own nodejs is 18.
	if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
		process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
		echo "bootstrap: Node.js >= 20.19 is needed by tests/contract (@redocly/cli); found $(node --version)" >&2
		exit 1
	fi
	npm_ci tests/aws dynalite/cli.js dynalite
	npm_ci tests/postman newman/bin/newman.js "newman, runs docs/postman.json"
	npm_ci tests/contract @stoplight/prism-http/package.json \
		"@redocly/cli lints docs/swagger.yaml, @stoplight/prism-http validates live traffic"
	# the Dockerfile lint of make deploy-check
	npm_ci tools/deploy .bin/dockerfile-utils dockerfile-utils
	npm_wait
fi
echo "bootstrap: done"

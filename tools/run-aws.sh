#!/bin/sh
# make run-aws: the service on its production code path against the local
# AWS stand-ins, the docker-compose of this repository. One command starts
# dynalite behind the SigV4-checking proxy and the EventBridge PutEvents
# stand-in behind its own (tests/aws/stack.py run --eventbridge), creates
# the table with `cart-service migrate`, then serves with
# STORAGE_BACKEND=dynamodb and EVENTS_PUBLISHER=eventbridge on APP_PORT.
# RUN_AWS_REDIS=1 also starts a throwaway redis-server
# (tests/redis/run.sh) and uses it for the rate limits.
#
# Ctrl-C (or SIGTERM) stops the service (it drains as in production),
# then every server by PID: stack.py forwards the signal to the service
# and stops the stand-ins when it has exited; run.sh kills redis-server.
# Nothing persists: dynalite and Redis keep their data in memory.
set -eu
cd "$(dirname "$0")/.."

: "${DYNAMODB_TABLE:=cart-service-carts}"
: "${EVENTBRIDGE_BUS_NAME:=cart-service-events}"
STORAGE_BACKEND=dynamodb
EVENTS_PUBLISHER=eventbridge
export DYNAMODB_TABLE EVENTBRIDGE_BUS_NAME STORAGE_BACKEND EVENTS_PUBLISHER

# shellcheck disable=SC2016 # expanded by the inner shell
set -- /usr/bin/python3 tests/aws/stack.py run --eventbridge --bus "$EVENTBRIDGE_BUS_NAME" -- \
	sh -c 'bin/cart-service migrate >&2 || exit $?
echo "run-aws: table $DYNAMODB_TABLE at $DYNAMODB_ENDPOINT, bus $EVENTBRIDGE_BUS_NAME at $EVENTBRIDGE_ENDPOINT${REDIS_URL:+, rate limits in $REDIS_URL}; serving on port ${APP_PORT:-8080}; Ctrl-C stops everything" >&2
exec bin/cart-service'

if [ "${RUN_AWS_REDIS:-0}" = 1 ]; then
	# shellcheck disable=SC2016
	exec tests/redis/run.sh sh -c 'RATE_LIMIT_STORE=redis REDIS_URL="$CART_REDIS_URL" exec "$@"' run-aws "$@"
fi
exec "$@"

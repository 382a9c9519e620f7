#!/bin/sh
# tests/e2e_aws in two processes (tools/run-split.sh): the modules that
# wait on the clock most (EventBridge faults, the breaker, retries with
# timeouts) in one, the rest in the other.
exec "$(dirname "$0")/run-split.sh" "$(dirname "$0")/../tests/e2e_aws" \
	"test_eventbridge test_breaker test_unknown_outcome test_wrong_credentials"

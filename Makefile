# cart-service: libcart (core), adapters, the civetweb server, and tests.
#
#   make            build bin/cart-service, build/libcart.a and the example
#   make run        install what is missing, build, start on APP_PORT
#   make check      install what is missing, build, run every test
#   make postman    docs/postman.json with newman against the service (in check)
#   make contract   docs/swagger.yaml: redocly lint, then live traffic checked by Prism's
#                   validator (in check, ~20 s; docs/adr/0018)
#   make coverage   lcov report of lib/, adapters/ and app/ in build/coverage
#   make fuzz       run each fuzz target for FUZZ_SECONDS (libFuzzer, clang)
#   make bench      the scenario table, soak and memory (tools/bench/scenarios.py all),
#                   then request logs, observability and events (tools/bench.sh)
#   make bench-table   only the table: get, mixed, add, patch, add_delete, each
#                   auth off and on, ceiling/service alternated (BENCH_SCENARIOS=get,mixed
#                   to choose; BENCH_SECONDS 8, BENCH_PAIRS 3, BENCH_CPUS to pin servers)
#                   targets, service/ceiling req/s: get >= 0.85, mixed >= 0.75,
#                   add >= 0.70, patch >= 0.70, add_delete >= 0.65; p99 < 5 ms;
#                   no errors; ratio with auth on / ratio with auth off >= 0.90 on get
#   make bench-soak    mixed for BENCH_SOAK_SECONDS (60) twice on one process, after one run
#                   of the ceiling (its drift printed beside the service's); targets:
#                   last 10 s within 10 % of the first, RSS <= 64 MB, growth < 2 MB
#   make bench-scaling the table with the servers pinned to 1 core, then 2 (wrk unpinned)
#   make bench-events  event relay throughput and delay under sustained adds
#   make bench-dynamo  DynamoDB requests per mutation and idle polling
#   make bench-dynamo-raw  service on DynamoDB against dynalite's own raw rate
#   make bench-logs    GET with LOG_LEVEL=info against warn (request logs' cost)
#   make bench-observe metrics + X-Ray on against off
#   make run-aws       the service on DynamoDB + EventBridge stand-ins (tools/run-aws.sh;
#                   RUN_AWS_REDIS=1 adds Redis for the rate limits); Ctrl-C stops all
#   make deploy-check  the runbook, ECS task definition, CloudFormation and
#                   Dockerfile checks (tests/deploy), part of make check
#   make bench-locks   lock sleeps per 1,000 writes, jemalloc against glibc malloc (root, perf)

CC      ?= cc
O       ?= build
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wno-unused-parameter
# -O3, direct calls to shared libraries (-fno-plt) and link-time
# optimisation of the service: 6-8 % fewer instructions per request and
# 4-6 % less user CPU than -O2 (docs/performance.md, eleventh session;
# PGO measured worse and is not used).  The objects are fat (GIMPLE
# and machine code): bin/cart-service links them with LTO, while libcart.a,
# the example and the test binaries link the machine code as usual, with
# any linker, and no test link pays for a whole-program optimisation.
OPT     ?= -O3 -g -fno-plt
LTO     ?= -flto=auto -ffat-lto-objects
CFLAGS  ?=
CFLAGS  += $(CSTD) $(WARN) $(OPT) -fno-strict-aliasing -pthread
LDFLAGS ?=
SAN     ?=

# lib/ sees only its own headers: a stray third-party include fails here.
LIB_CPPFLAGS := -Iinclude -Ilib
AD_CPPFLAGS  := -Iinclude -Iadapters
APP_CPPFLAGS := -Iinclude -Iadapters -Iapp
APP_LIBS     := -lcivetweb -lcjson -lcurl -lcrypto -lhiredis -lz -ldl -lpthread -lm

LIB_SRC  := $(wildcard lib/*.c)
AD_SRC   := $(wildcard adapters/*/*.c)
APP_SRC  := $(filter-out app/main.c,$(wildcard app/*.c))
UT_SRC   := $(wildcard tests/unit/*.c) $(wildcard tests/fakes/*.c)
# The DynamoDB binary runs the same repository contract (test_repo_contract.c).
DT_SRC   := $(wildcard tests/dynamo/*.c) tests/unit/test_repo_contract.c \
	    tests/fakes/fake_clock.c
# The Redis limiter against real redis-server processes.
RT_SRC   := $(wildcard tests/redis/*.c) tests/fakes/fake_clock.c
# The real server's per-request path, allocations and sends counted
# (a binary of its own: it interposes malloc and send).
HT_SRC   := $(wildcard tests/hotpath/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
AD_OBJ   := $(AD_SRC:%.c=$(O)/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(O)/%.o)
UT_OBJ   := $(UT_SRC:%.c=$(O)/%.o)
DT_OBJ   := $(DT_SRC:%.c=$(O)/%.o)
RT_OBJ   := $(RT_SRC:%.c=$(O)/%.o)
HT_OBJ   := $(HT_SRC:%.c=$(O)/%.o)

LIBCART  := $(O)/libcart.a
LIBAD    := $(O)/libcart-adapters.a
LIBAPP   := $(O)/libcart-app.a
BIN      := bin/cart-service
UNIT     := $(O)/tests/unit-tests
DYNAMO_T := $(O)/tests/dynamo-tests
REDIS_T  := $(O)/tests/redis-tests
HOTPATH_T := $(O)/tests/hotpath-tests
# Starts a throwaway redis-server, runs the command, stops it by PID.
REDIS_RUN := tests/redis/run.sh
# Starts dynalite behind the SigV4-verifying proxy, runs the command, stops both.
STACK    := /usr/bin/python3 tests/aws/stack.py run --
# Compares the actions seen on the wire with an IAM policy file.
IAM      := /usr/bin/python3 tests/aws/check_iam.py
EXAMPLE  := $(O)/example

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
JOBS         := $(shell nproc 2>/dev/null || echo 2)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

.PHONY: all run check test unit e2e contract dynamo dynamo-valgrind dynamo-live redis postman valgrind coverage fuzz fuzz-build bench bench-events bench-dynamo bench-dynamo-raw bench-observe bench-logs \
        bench-table bench-soak bench-scaling bench-locks \
        bootstrap clean layering example run-aws deploy-check

all: $(BIN) $(LIBCART) $(LIBAD) $(EXAMPLE)

$(O)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CPPFLAGS) $(CFLAGS) $(LTO) $(SAN) -MMD -MP -c $< -o $@

$(O)/adapters/%.o: adapters/%.c
	@mkdir -p $(@D)
	$(CC) $(AD_CPPFLAGS) $(CFLAGS) $(LTO) $(SAN) -MMD -MP -c $< -o $@

$(O)/app/%.o: app/%.c
	@mkdir -p $(@D)
	$(CC) $(APP_CPPFLAGS) $(CFLAGS) $(LTO) $(SAN) -MMD -MP -c $< -o $@

# What /metrics says runs (cart_service_build_info): VERSION and the commit,
# "unknown" outside a git checkout.
CART_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
CART_COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(O)/app/metrics_render.o: VERSION
$(O)/app/metrics_render.o: CFLAGS += -DCART_VERSION='"$(CART_VERSION)"' -DCART_COMMIT='"$(CART_COMMIT)"'

$(O)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(APP_CPPFLAGS) -Ilib -Itests $(CHECK_CFLAGS) $(CFLAGS) $(SAN) -MMD -MP -c $< -o $@

$(LIBCART): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBAD): $(AD_OBJ)
	rm -f $@ && ar rcs $@ $^
$(LIBAPP): $(APP_OBJ)
	rm -f $@ && ar rcs $@ $^

# The service's allocator: jemalloc (ADR 17; its settings are in
# app/main.c).  Only the executable links it: libcart and the test
# binaries keep the C library's malloc (valgrind, the malloc-counting
# hot-path test).  MALLOC_LIBS= builds with glibc's malloc.  --no-as-needed:
# linked with LTO, ld dropped it as unneeded and the service ran on glibc's.
MALLOC_LIBS ?= -Wl,--push-state,--no-as-needed -ljemalloc -Wl,--pop-state

$(BIN): $(O)/app/main.o $(LIBAPP) $(LIBAD) $(LIBCART)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LTO) $(SAN) $(LDFLAGS) -o $@ $^ $(APP_LIBS) $(MALLOC_LIBS)

$(UNIT): $(UT_OBJ) $(LIBAPP) $(LIBAD) $(LIBCART)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(APP_LIBS)

$(HOTPATH_T): $(HT_OBJ) $(LIBAPP) $(LIBAD) $(LIBCART)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(APP_LIBS)

$(DYNAMO_T): $(DT_OBJ) $(LIBAPP) $(LIBAD) $(LIBCART)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(APP_LIBS)

$(REDIS_T): $(RT_OBJ) $(LIBAPP) $(LIBAD) $(LIBCART)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(APP_LIBS)

# The example a C developer would write: libcart + the memory adapter only.
$(EXAMPLE): docs/example/example.c $(LIBAD) $(LIBCART)
	$(CC) $(AD_CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBAD) $(LIBCART) -lz -lpthread

bootstrap:
	@tools/bootstrap.sh check

run:
	@tools/bootstrap.sh run
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN)

# The service against the local AWS stand-ins (tools/run-aws.sh): the
# production code path on a laptop, stopped with Ctrl-C.
run-aws:
	@tools/bootstrap.sh check
	@$(MAKE) --no-print-directory $(BIN)
	tools/run-aws.sh

# Everything the README promises, from a fresh machine.
check:
	@tools/bootstrap.sh check
	@$(MAKE) --no-print-directory -j$(JOBS) all $(UNIT) $(HOTPATH_T) $(DYNAMO_T) $(REDIS_T) fuzz-build
	@tools/check.sh
	@echo "make check: all green"

test: check

layering:
	@tools/check-layering.sh

unit: $(UNIT) $(HOTPATH_T)
	$(UNIT)
	$(HOTPATH_T)

# Under valgrind the tests run with CK_FORK=no (leaks show up), where
# Check has no per-test timeout: tools/bounded.sh kills a run still going
# after VALGRIND_BOUND seconds (4x the slowest lane's usual time) and
# prints its threads' stacks first.
VALGRIND_BOUND ?= 600
VALGRIND := tools/bounded.sh $(VALGRIND_BOUND) valgrind --quiet --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect,possible \
	  --show-leak-kinds=definite,indirect,possible

valgrind: $(UNIT)
	CK_FORK=no $(VALGRIND) $(UNIT)

# tests/e2e and tests/edge side by side (tools/run-pair.sh).
e2e: $(BIN)
	tools/run-pair.sh "/usr/bin/python3 -m unittest discover -s tests/edge -p 'test_*.py' -v" \
	  "/usr/bin/python3 -m unittest discover -s tests/e2e -p 'test_*.py' -v"

# docs/swagger.yaml: linted by @redocly/cli (tests/contract/redocly.yaml:
# recommended-strict, each exception with its reason), then live traffic
# from three real servers checked against it with Prism's validator
# (tests/contract/test_contract.py, validate.js; docs/adr/0018).
contract: $(BIN)
	tools/bootstrap.sh check >/dev/null
	cd tests/contract && node_modules/.bin/redocly lint --format=stylish
	/usr/bin/python3 -m unittest discover -s tests/contract -p 'test_*.py' -v

# The DynamoDB adapter against dynalite, every request signature-checked:
# the stand-ins' own tests, the repository contract and adapter tests (under
# valgrind), the whole end-to-end suite with STORAGE_BACKEND=dynamodb on a
# table made by `cart-service migrate`, feature flags from the AppConfig
# stand-in (and the IAM policies checked against the actions seen), then faults, retries, breaker, credentials and the
# event outbox end to end (tests/e2e_aws, each class with its own stack).
dynamo:
	@$(MAKE) --no-print-directory dynamo-valgrind
	@$(MAKE) --no-print-directory dynamo-live

# The repository contract and adapter tests, under valgrind, against a
# stack of their own (make check runs this in its nice-19 lane).
dynamo-valgrind: $(DYNAMO_T)
	tools/bootstrap.sh check >/dev/null
	CART_CONTRACT_LOOPS=5 CK_FORK=no $(STACK) $(VALGRIND) $(DYNAMO_T)

# The stand-ins' own tests, then the service end to end against them.
dynamo-live: $(BIN)
	tools/bootstrap.sh check >/dev/null
	/usr/bin/python3 -m unittest discover -s tests/aws -p 'test_*.py'
	/usr/bin/python3 tests/aws/stack.py run --eventbridge --appconfig -- sh -c 'DYNAMODB_TABLE=cart-e2e $(BIN) migrate && \
	  $(IAM) --policy docs/iam/admin-policy.json --subset --reset && \
	  E2E_BACKEND=dynamodb E2E_DYNAMODB_TABLE=cart-e2e E2E_EVENTS=eventbridge E2E_APPCONFIG=1 \
	  tools/run-split.sh tests/e2e "test_api test_validation test_logs" test_backlog && \
	  $(IAM) --policy docs/iam/runtime-policy.json --exact'
	tools/run-e2e-aws.sh

# The Redis rate limiter against redis-server: natively (the timing
# assertions of Redis down or paused mean most there), then under valgrind.
redis: $(REDIS_T)
	$(REDIS_RUN) $(REDIS_T)
	$(REDIS_RUN) env CK_FORK=no $(VALGRIND) $(REDIS_T)

# docs/runbook.md against a live service, the ECS task definition and the
# CloudFormation template against botocore's models, the service and the
# IAM files, the Dockerfile statically (dockerfile-utils, ldd/dpkg), and
# make run-aws once (tests/deploy, about 20 s).
deploy-check: $(BIN)
	tools/bootstrap.sh check >/dev/null
	/usr/bin/python3 -m unittest discover -s tests/deploy -p 'test_*.py' -v

# docs/postman.json run by newman (pinned in tests/postman/package-lock.json)
# against the started service: auth off, auth on, and a server the
# collection must fail on (tests/postman/test_newman.py).
postman: $(BIN)
	tools/bootstrap.sh check >/dev/null
	/usr/bin/python3 -m unittest discover -s tests/postman -p 'test_*.py' -v

example: $(EXAMPLE)
	$(EXAMPLE)

coverage:
	@tools/bootstrap.sh check
	$(MAKE) --no-print-directory O=build/cov OPT="-O0 -g" LTO= SAN="--coverage" \
	  BIN=build/cov/bin/cart-service build/cov/bin/cart-service build/cov/tests/unit-tests \
	  build/cov/tests/dynamo-tests build/cov/tests/redis-tests
	lcov --quiet --zerocounters --directory build/cov
	build/cov/tests/unit-tests
	$(REDIS_RUN) build/cov/tests/redis-tests
	CART_SERVICE_BIN=build/cov/bin/cart-service /usr/bin/python3 -m unittest discover -s tests/e2e -p 'test_*.py'
	CART_SERVICE_BIN=build/cov/bin/cart-service /usr/bin/python3 -m unittest discover -s tests/edge -p 'test_*.py'
	CART_CONTRACT_LOOPS=5 $(STACK) build/cov/tests/dynamo-tests
	$(STACK) sh -c 'DYNAMODB_TABLE=cart-e2e build/cov/bin/cart-service migrate && \
	  CART_SERVICE_BIN=build/cov/bin/cart-service E2E_BACKEND=dynamodb \
	  E2E_DYNAMODB_TABLE=cart-e2e /usr/bin/python3 -m unittest discover -s tests/e2e -p "test_*.py"'
	if [ -d tests/e2e_aws ]; then CART_SERVICE_BIN=build/cov/bin/cart-service \
	  /usr/bin/python3 -m unittest discover -s tests/e2e_aws -p 'test_*.py'; fi
	lcov --quiet --capture --directory build/cov --output-file build/cov/all.info
	lcov --quiet --extract build/cov/all.info '*/lib/*' '*/adapters/*' '*/app/*' --output-file build/cov/cart.info
	genhtml --quiet build/cov/cart.info --output-directory build/coverage
	lcov --summary build/cov/cart.info

FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= $(JOBS)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(O)/fuzz/%)
FUZZ_CC      := clang
FUZZ_CFLAGS  := $(CSTD) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The code under test is compiled once (with libFuzzer's coverage, no
# main) and each target links it: six targets each compiling every
# source took two of make check's minutes.
FUZZ_OBJ     := $(patsubst %.c,$(O)/fuzzobj/%.o,$(APP_SRC) $(AD_SRC) $(LIB_SRC))
FUZZ_LIB     := $(O)/fuzzobj/libcart-fuzz.a

$(O)/fuzzobj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(APP_CPPFLAGS) -Ilib -Iadapters -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(O)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(APP_CPPFLAGS) -Ilib -Iadapters -o $@ $< $(FUZZ_LIB) $(APP_LIBS)

fuzz-build: $(FUZZ_BIN)

# The targets run FUZZ_JOBS at a time (one per core).
fuzz: $(FUZZ_BIN)
	@$(MAKE) --no-print-directory -j$(FUZZ_JOBS) $(FUZZ_BIN:$(O)/fuzz/%=fuzz-run-%)

fuzz-run-%: $(O)/fuzz/%
	@mkdir -p $(O)/fuzz/corpus-$*
	@echo "fuzz: $* for $(FUZZ_SECONDS)s"
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=$(O)/fuzz/ -max_len=20000 -print_final_stats=0 \
	    $(O)/fuzz/corpus-$* tests/fuzz/seeds/$* 2>$(O)/fuzz/$*.log \
	  || { tail -50 $(O)/fuzz/$*.log; exit 1; }

bench: $(BIN) $(LIBCART) $(LIBAD)
	tools/bench.sh

# The scenario table alone (tools/bench/scenarios.py; build/bench/table.md
# and table.json).
bench-table: $(BIN) $(LIBCART) $(LIBAD)
	/usr/bin/python3 tools/bench/scenarios.py table

bench-soak: $(BIN) $(LIBCART) $(LIBAD)
	/usr/bin/python3 tools/bench/scenarios.py soak

# BENCH_SCALING_CPUS="0 0,1": build/bench/table-cpus-*.md and table-scaling.md.
bench-scaling: $(BIN) $(LIBCART) $(LIBAD)
	/usr/bin/python3 tools/bench/scenarios.py scaling

# GET with LOG_LEVEL=info against warn, alternated: throughput and p99 ratios.
bench-logs: $(BIN)
	tools/bench/logs.sh

# Adds for 20 s; events/s, event delay, 503s and RSS with the EventBridge
# publisher (PutEvents stand-in at 20 ms) and the log publisher.
bench-locks: $(BIN)
	tools/bench/locks.sh

bench-observe: $(BIN)
	tools/bench/observe.sh

bench-events: $(BIN)
	tools/bench/events.sh

# DynamoDB requests per mutation (dynalite behind the SigV4 proxy), then idle
# polling: tools/bench/dynamo_mix.py (MIX_KEYED=1 for Idempotency-Key).
bench-dynamo: $(BIN)
	/usr/bin/python3 tools/bench/dynamo_mix.py

# The service's GET and add on DynamoDB against a minimal client sending the
# same DynamoDB requests, both straight to dynalite, alternating
# (tools/bench/dynamo_raw.py: BENCH_SECONDS, BENCH_ROUNDS, BENCH_CARTS,
# BENCH_CONNECTIONS, BENCH_DYNALITE_CPUS). Table: build/bench/dynamo_raw.md.
bench-dynamo-raw: $(BIN)
	/usr/bin/python3 tools/bench/dynamo_raw.py

clean:
	rm -rf build bin

-include $(shell find $(O) -name '*.d' 2>/dev/null)

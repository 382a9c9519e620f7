# cart-service container image.
#
# NOTE: this Dockerfile has not been built: the development machines have no
# Docker engine. The runtime package names were checked with `apt-cache show`
# on Debian 12 (bookworm); everything else mirrors `make` on a Debian 12 host.
#
#   docker build -t cart-service .
#   docker run --rm -p 8080:8080 cart-service      # ENV_NAME=dev: in-memory store
#
# Plain HTTP only (docs/adr/0004-http-server-civetweb.md): TLS ends at the
# load balancer.

# --- build --------------------------------------------------------------------
FROM debian:12-slim AS build

WORKDIR /src
# The package list lives in one place: tools/bootstrap.sh (profile "run").
COPY tools/bootstrap.sh tools/bootstrap.sh
RUN tools/bootstrap.sh run && rm -rf /var/lib/apt/lists/*

COPY . .
RUN make -j"$(nproc)" bin/cart-service \
 && strip --strip-debug bin/cart-service \
 && ./bin/cart-service --help >/dev/null

# --- runtime ------------------------------------------------------------------
FROM debian:12-slim

# Shared libraries only (no compilers, no headers):
#   libcivetweb1  HTTP server (pulls libstdc++6)
#   libcjson1     JSON parsing
#   libssl3       libcrypto (SHA-256 request fingerprints)
#   libcurl4, ca-certificates   HTTPS calls of the AWS adapters (DynamoDB,
#                 EventBridge) as they land
#   libhiredis0.14  the Redis rate limiter (adapters/redis): the binary
#                 links it, whichever store is configured
#   libjemalloc2  the allocator (ADR 17)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcivetweb1 libcjson1 libcurl4 libssl3 libhiredis0.14 libjemalloc2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 cart \
 && useradd --system --uid 10001 --gid cart --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cart

COPY --from=build /src/bin/cart-service /usr/local/bin/cart-service

USER 10001:10001
ENV APP_PORT=8080
EXPOSE 8080

# No HEALTHCHECK: the image has no curl/wget, and the service does not probe
# itself. On ECS the load balancer's target group checks GET /ready (and
# GET /health for liveness); add curl and
#   HEALTHCHECK CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# only if a container-level check is wanted.

# SIGTERM: /ready turns 503, in-flight requests finish, exit 0 within
# SHUTDOWN_TIMEOUT_SECONDS (default 25, below ECS's default 30 s stopTimeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cart-service"]

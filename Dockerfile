# cart-service container image.
#
# NOTE: no Docker engine runs on the development machines, so this file is
# checked statically by `make deploy-check` (tests/deploy/test_dockerfile.py):
# every COPY source exists, the runtime stage installs exactly the Debian
# packages of the shared libraries `ldd bin/cart-service` lists (dpkg -S),
# and ENTRYPOINT, EXPOSE, HEALTHCHECK, STOPSIGNAL and USER match README
# ("Container image"); dockerfile-utils (npm, pinned) lints it.
#
#   docker build --build-arg CART_COMMIT=$(git rev-parse --short HEAD) -t cart-service .
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
# .dockerignore keeps .git out: the commit comes in as a build argument.
ARG CART_COMMIT=unknown
RUN make -j"$(nproc)" CART_COMMIT="$CART_COMMIT" bin/cart-service \
 && strip --strip-debug bin/cart-service \
 && ./bin/cart-service --help >/dev/null

# --- runtime ------------------------------------------------------------------
FROM debian:12-slim

# Exactly the packages holding the shared libraries the binary loads (`ldd
# bin/cart-service`, each file mapped with `dpkg -S`; most are in the base
# image already), plus ca-certificates (not a library: the CA bundle for
# HTTPS to AWS and the JWKS URL). No compilers, no headers, no curl.
# libjemalloc2 is the allocator (ADR 17; it pulls libstdc++6, libgcc-s1).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libbrotli1 libc6 libcivetweb1 libcjson1 libcom-err2 libcurl4 libffi8 \
      libgmp10 libgnutls30 libgssapi-krb5-2 libhiredis0.14 libhogweed6 libidn2-0 \
      libjemalloc2 \
      libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 \
      libgcc-s1 libnettle8 libnghttp2-14 libp11-kit0 libpsl5 librtmp1 \
      libsasl2-2 libssh2-1 libssl3 libstdc++6 libtasn1-6 libunistring2 \
      libzstd1 zlib1g \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 cart \
 && useradd --system --uid 10001 --gid cart --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cart

COPY --from=build /src/bin/cart-service /usr/local/bin/cart-service

USER 10001:10001
ENV APP_PORT=8080
EXPOSE 8080

# GET /health on APP_PORT from inside the container (the image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/cart-service", "healthcheck"]

# SIGTERM: /ready turns 503, in-flight requests finish, exit 0 within
# SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS (docs/runbook.md, "Drain").
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cart-service"]

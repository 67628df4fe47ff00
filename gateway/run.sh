#!/bin/sh
# Starts the Traefik gateway with its static configuration given as command-line flags.
#
# Traefik reads its static configuration from exactly one source (a file, flags or
# TRAEFIK_* variables), so the environment-driven parts (ports, hosts, log level)
# are turned into flags here. Routing is dynamic configuration: gateway/dynamic/*.yml,
# templated with {{ env "..." }}. POSIX sh, so the official traefik image runs it too.
#
#   GATEWAY_HOST        address of the public entry point        (default 127.0.0.1)
#   GATEWAY_PORT        port of the public entry point           (default 8000)
#   GATEWAY_ADMIN_HOST  address of the ping/metrics entry point  (default GATEWAY_HOST)
#   GATEWAY_ADMIN_PORT  port of the ping/metrics entry point     (default 8080)
#   GATEWAY_INTERNAL_PORT  port of the internal entry point, on 127.0.0.1 only (default 8081):
#                       ForwardAuth's token checks and the "service unavailable" fallback
#                       (dynamic/routes.yml) go through it; never published
#   GATEWAY_LOG_LEVEL   Traefik's own log level                  (default INFO)
#   TRAEFIK_BIN         the traefik executable                   (default traefik, from PATH)
#
# The public entry point deletes headers whose names alias another one (X_User_Role for
# X-User-Role) and rejects ambiguous percent-encoded characters in paths (%2F, %5C, %00, %3B,
# %25, %3F, %23): no public path needs them, and they are what split-view attacks between
# the gateway and a backend are made of. Extra arguments are passed on to traefik.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

host=${GATEWAY_HOST:-127.0.0.1}
port=${GATEWAY_PORT:-8000}
admin_host=${GATEWAY_ADMIN_HOST:-$host}
admin_port=${GATEWAY_ADMIN_PORT:-8080}

exec "${TRAEFIK_BIN:-traefik}" \
    --global.checknewversion=false \
    --global.sendanonymoususage=false \
    --entrypoints.web.address="$host:$port" \
    --entrypoints.web.http.aliasheadersstrategy=delete \
    --entrypoints.web.http.encodedcharacters.allowencodedslash=false \
    --entrypoints.web.http.encodedcharacters.allowencodedbackslash=false \
    --entrypoints.web.http.encodedcharacters.allowencodednullcharacter=false \
    --entrypoints.web.http.encodedcharacters.allowencodedsemicolon=false \
    --entrypoints.web.http.encodedcharacters.allowencodedpercent=false \
    --entrypoints.web.http.encodedcharacters.allowencodedquestionmark=false \
    --entrypoints.web.http.encodedcharacters.allowencodedhash=false \
    --entrypoints.internal.address="127.0.0.1:${GATEWAY_INTERNAL_PORT:-8081}" \
    --entrypoints.internal.forwardedheaders.trustedips=127.0.0.1/32 \
    --entrypoints.internal.http.aliasheadersstrategy=delete \
    --entrypoints.traefik.address="$admin_host:$admin_port" \
    --entrypoints.traefik.http.aliasheadersstrategy=delete \
    --ping=true \
    --ping.entrypoint=traefik \
    --metrics.prometheus=true \
    --metrics.prometheus.entrypoint=traefik \
    --metrics.prometheus.addrouterslabels=true \
    --providers.file.directory="$here/dynamic" \
    --providers.file.watch=true \
    --log.level="${GATEWAY_LOG_LEVEL:-INFO}" \
    --log.format=json \
    --accesslog=true \
    --accesslog.format=json \
    --accesslog.fields.headers.names.X-User-Id=keep \
    --accesslog.fields.headers.names.X-Request-Id=keep \
    "$@"

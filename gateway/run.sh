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
# TLS, the production default (docs/security.md): with GATEWAY_TLS_CERT_FILE and
# GATEWAY_TLS_KEY_FILE (PEM files), or GATEWAY_ACME_EMAIL (and GATEWAY_TLS_DOMAIN, Let's
# Encrypt's TLS challenge, certificates kept in GATEWAY_ACME_STORAGE), the public entry point
# speaks HTTPS only, every answer carries HSTS, and GATEWAY_HTTP_PORT (when set) answers
# plain HTTP with a permanent redirect to HTTPS.
#
# The public entry point deletes headers whose names alias another one (X_User_Role for
# X-User-Role) and rejects ambiguous percent-encoded characters in paths (%2F, %5C, %00, %3B,
# %25, %3F, %23): no public path needs them, and they are what split-view attacks between
# the gateway and a backend are made of. The access log (JSON on stdout) keeps paths without
# their query strings (a search for a patient's name or email is personal data) and, of the
# headers, only X-User-Id and X-Request-Id. Extra arguments are passed on to traefik.
#
# Behind a TLS-terminating proxy or load balancer: GATEWAY_TRUSTED_PROXY_IPS (comma-separated
# addresses or CIDRs, e.g. 172.16.0.0/12) are the proxies whose X-Forwarded-Proto/-Host/-For the
# public entry point keeps; from any other address they are replaced with what the gateway saw.
# The rate limits (dynamic/routes.yml) then count each client the proxies forward, not them:
# the address GATEWAY_TRUSTED_PROXY_HOPS (1) entries from the end of X-Forwarded-For.
# The services build their absolute URLs (calendar feeds, paging and FHIR links) from them, so
# behind a proxy that terminates TLS, without this they come out as http:// (docs/security.md).
# Unset: nobody's are kept.
#
# Tracing (docs/deploy.md, "Observability"): with GATEWAY_TRACING_OTLP_ENDPOINT (an OTLP/HTTP
# traces URL, e.g. http://otel-collector:4318/v1/traces) the gateway starts a trace for each
# request (or continues the client's), exports its spans there, sends W3C `traceparent` on to
# the services and writes TraceId/SpanId into its access log; GATEWAY_TRACING_SAMPLE_RATE (0.0 to
# 1.0, default 1.0) is the share of new traces kept. Unset: no tracing.
#
# Keep-alive: the services' uvicorn closes a connection idle for 5 s (its default); the gateway
# drops its idle connections to them after 4 s (idleconntimeout, Traefik's default is 90 s), so
# it never sends a request down a connection the service is closing at that moment, which a
# POST (a booking) would answer with 502 (seen once in 5,000 requests of make bench's race).
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

host=${GATEWAY_HOST:-127.0.0.1}
port=${GATEWAY_PORT:-8000}
admin_host=${GATEWAY_ADMIN_HOST:-$host}
admin_port=${GATEWAY_ADMIN_PORT:-8080}

if [ -n "${GATEWAY_TRACING_OTLP_ENDPOINT:-}" ]; then
    set -- "$@" \
        --tracing=true \
        --tracing.servicename=clinic-gateway \
        --tracing.samplerate="${GATEWAY_TRACING_SAMPLE_RATE:-1.0}" \
        --tracing.otlp=true \
        --tracing.otlp.http=true \
        --tracing.otlp.http.endpoint="$GATEWAY_TRACING_OTLP_ENDPOINT"
fi

if [ -n "${GATEWAY_TRUSTED_PROXY_IPS:-}" ]; then
    set -- "$@" --entrypoints.web.forwardedheaders.trustedips="$GATEWAY_TRUSTED_PROXY_IPS"
fi

# TLS flags, when certificates are configured, added to the extra arguments (the certificate
# files are read by gateway/dynamic/tls.yml; HSTS is its middleware).
if [ -n "${GATEWAY_TLS_CERT_FILE:-}${GATEWAY_ACME_EMAIL:-}" ]; then
    set -- "$@" \
        --entrypoints.web.http.tls=true \
        --entrypoints.web.http.middlewares=hsts@file
    if [ -n "${GATEWAY_ACME_EMAIL:-}" ]; then
        set -- "$@" \
            --certificatesresolvers.acme.acme.email="$GATEWAY_ACME_EMAIL" \
            --certificatesresolvers.acme.acme.storage="${GATEWAY_ACME_STORAGE:-/var/lib/traefik/acme.json}" \
            --certificatesresolvers.acme.acme.tlschallenge=true \
            --entrypoints.web.http.tls.certresolver=acme \
            "--entrypoints.web.http.tls.domains[0].main=${GATEWAY_TLS_DOMAIN:?GATEWAY_TLS_DOMAIN is needed with GATEWAY_ACME_EMAIL}"
    fi
    if [ -n "${GATEWAY_HTTP_PORT:-}" ]; then
        set -- "$@" \
            --entrypoints.http.address="$host:$GATEWAY_HTTP_PORT" \
            --entrypoints.http.http.redirections.entrypoint.to=web \
            --entrypoints.http.http.redirections.entrypoint.scheme=https \
            --entrypoints.http.http.redirections.entrypoint.permanent=true
    fi
fi

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
    --serverstransport.forwardingtimeouts.idleconntimeout=4s \
    --providers.file.directory="$here/dynamic" \
    --providers.file.watch=true \
    --log.level="${GATEWAY_LOG_LEVEL:-INFO}" \
    --log.format=json \
    --accesslog=true \
    --accesslog.format=json \
    --accesslog.fields.queryparameters.defaultmode=drop \
    --accesslog.fields.headers.names.X-User-Id=keep \
    --accesslog.fields.headers.names.X-Request-Id=keep \
    "$@"

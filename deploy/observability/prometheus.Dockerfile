# Prometheus for the compose `observability` profile, from Debian's package: the official image
# comes from a registry the build machines may not reach, Debian's mirror they do. Same base as
# the service images (its stand-in is what `make compose-smoke` builds offline). Build context:
# deploy/observability.
FROM python:3.11.14-slim-bookworm
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown nobody:nogroup /prometheus
# Its configuration and rules are mounted by docker-compose.yml (deploy/observability/*.yml).
USER nobody
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/-/ready', timeout=4)"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=15d", "--web.listen-address=:9090"]

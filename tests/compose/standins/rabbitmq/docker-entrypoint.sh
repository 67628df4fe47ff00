#!/bin/sh
# The official rabbitmq image's contract: RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (or
# RABBITMQ_DEFAULT_PASS_FILE) become the first user, reachable from other containers; the
# server runs as rabbitmq. The Erlang cookie is shared with root, so that health checks run
# by the engine (as root) reach the node.
set -eu

if [ "${1:-}" != rabbitmq-server ]; then
    exec "$@"
fi

if [ -n "${RABBITMQ_DEFAULT_PASS_FILE:-}" ]; then
    RABBITMQ_DEFAULT_PASS=$(cat "$RABBITMQ_DEFAULT_PASS_FILE")
fi
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users = none
listeners.tcp.default = 5672
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
CONF
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
cookie=/var/lib/rabbitmq/.erlang.cookie
if [ ! -s "$cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$cookie"
fi
chown rabbitmq:rabbitmq "$cookie"
chmod 400 "$cookie"
cp "$cookie" /root/.erlang.cookie
chmod 400 /root/.erlang.cookie
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq \
    /usr/lib/rabbitmq/bin/rabbitmq-server

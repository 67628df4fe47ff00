"""Init container of identity: wait until every consuming service has declared its queues.

    python wait_for_queues.py doctor scheduling booking [--interval SECONDS]

identity publishes at start-up (the first admin's ``identity.user.registered``). An event
published before a consumer's queue is bound goes to ``clinic.unrouted`` and is never
delivered; in compose identity waits for every migration job, which declares its service's
queues, but Kubernetes has no ordering between Deployments and other Deployments' Jobs. So
identity's pods wait here until each named service's queue and retry queues exist (the retry
queues are declared after the bindings: chassis.messaging.topology). AMQP_URL and
EVENT_RETRY_DELAYS come from the environment (clinic-config, identity-broker), as the services
read them.
"""

from __future__ import annotations

import argparse
import sys
import time

from chassis.messaging.connection import close_quietly, connect
from chassis.messaging.topology import consumer_topology_declared
from chassis.settings import BrokerSettings, amqp_url_field


class IdentityBroker(BrokerSettings):
    """identity's own broker user (IDENTITY_AMQP_URL, as in its Secret identity-broker): passive
    declarations, which are all this needs, require no permission."""

    amqp_url: str = amqp_url_field("identity")


def say(message: str) -> None:
    sys.stderr.write(f"wait-for-queues: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="+", help="the consuming services to wait for")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between checks")
    args = parser.parse_args(argv)

    settings = IdentityBroker()
    waiting = list(args.services)
    say(f"waiting for the queues of {', '.join(waiting)}")
    while True:
        try:
            connection = connect(settings.amqp_url, name="identity-wait-for-queues")
        except Exception as exc:  # not reachable yet: keep waiting
            say(f"broker not reachable: {type(exc).__name__}: {exc}".splitlines()[0])
        else:
            try:
                waiting = [
                    service
                    for service in waiting
                    if not consumer_topology_declared(connection, service, settings.event_retry_delays)
                ]
            finally:
                close_quietly(connection)
            if not waiting:
                say("every queue is declared")
                return 0
            say(f"still waiting for {', '.join(waiting)} (their migration jobs declare them)")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())

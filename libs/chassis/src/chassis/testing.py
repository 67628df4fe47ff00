"""The pytest plugin of the test kit (``chassis.testkit``): registers its fixtures.

Loaded automatically as a pytest plugin wherever ``clinic-chassis`` is installed. The helpers
themselves live in ``chassis.testkit``; the names below stay importable from here too.
"""

from chassis.testkit.broker import Broker, RabbitVhosts, amqp_url, broker
from chassis.testkit.callers import callers, minter, new_id
from chassis.testkit.database import (
    DatabaseFactory,
    db,
    make_database,
    make_migrated_database,
    postgres_server_url,
)
from chassis.testkit.environment import current_run_id, run_id
from chassis.testkit.faults import TcpProxy, tcp_proxy
from chassis.testkit.polling import wait_until, wait_until_fixture

__all__ = [
    "Broker",
    "DatabaseFactory",
    "RabbitVhosts",
    "TcpProxy",
    "amqp_url",
    "broker",
    "callers",
    "current_run_id",
    "db",
    "make_database",
    "make_migrated_database",
    "minter",
    "new_id",
    "postgres_server_url",
    "run_id",
    "tcp_proxy",
    "wait_until",
    "wait_until_fixture",
]

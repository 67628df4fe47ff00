"""The one test kit of every Clinic suite (its fixtures load as the pytest plugin ``chassis.testing``).

- ``environment``: where the servers come from; a missing one fails under ``CI=true``.
- ``database``: ``make_database(name)``, ``make_migrated_database(alembic_ini, name)``, ``db``,
  ``lock_waiters(db)``.
- ``broker``: ``amqp_url`` (the run's vhost) and ``broker`` (publish checked against
  ``contracts/``, watch what the service publishes).
- ``tokens``, ``callers``: ``minter`` (tokens the app under test trusts), ``callers(role)``,
  ``new_id()``.
- ``polling``: ``wait_until(predicate)``, one meaning: until it returns something truthy.
- ``faults``: ``tcp_proxy(url)``, a proxy to cut and restore.
- ``servers``: ``ServerThread``, a stand-in of another service over real HTTP.
- ``ports``: ``free_port()``, ``free_ports(n)``: ports for servers a test starts, outside the
  range outgoing connections take theirs from.
- ``outside``: ``HttpReceiver`` (webhook receivers) and ``SmtpSink`` (an aiosmtpd mail server,
  plain or over STARTTLS/smtps with a login), the world outside that a service sends to;
  ``self_signed(directory)``, a certificate for 127.0.0.1 that is its own CA.
- ``health``: ``readiness(client)``, the liveness checked and the readiness answered.
- ``http_contracts``: ``contracts/http/`` schemas, checked by providers and consumers alike.
"""

from chassis.testkit.broker import Broker, Message, RabbitVhosts
from chassis.testkit.callers import Caller, Callers
from chassis.testkit.database import DatabaseFactory, lock_waiters
from chassis.testkit.faults import TcpProxy
from chassis.testkit.polling import wait_until
from chassis.testkit.ports import free_port, free_ports
from chassis.testkit.servers import ServerThread
from chassis.testkit.tokens import MintedServiceCredentials, TokenMinter

__all__ = [
    "Broker",
    "Caller",
    "Callers",
    "DatabaseFactory",
    "Message",
    "MintedServiceCredentials",
    "RabbitVhosts",
    "ServerThread",
    "TcpProxy",
    "TokenMinter",
    "free_port",
    "free_ports",
    "lock_waiters",
    "wait_until",
]

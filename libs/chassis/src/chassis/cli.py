"""The command line every service shares: ``<service> provision``, ``migrate``, ``setup`` (both,
in one process) and ``dead-letters ...``.

A service's ``cli.py`` calls ``service_main`` and may add commands of its own
(identity adds ``createadmin``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from chassis.messaging import deadletters_cli
from chassis.messaging.topology import declare_topology_at
from chassis.migrations import upgrade
from chassis.provisioning import provision_broker_user, provision_database

AddCommands = Callable[[Any], None]
RunCommand = Callable[[argparse.Namespace], int]


def service_main(
    service: str,
    argv: Sequence[str] | None,
    *,
    description: str | None,
    alembic_ini: Path,
    settings: Callable[[], Any],
    consumed_event_types: Callable[[], Iterable[str]] | None = None,
    consumed_from: str | None = None,
    add_commands: AddCommands | None = None,
    run_command: RunCommand | None = None,
) -> int:
    """Parse ``argv`` and run one command; returns the process exit status.

    ``add_commands(subparsers)`` declares the service's own commands and
    ``run_command(args)`` runs them; ``settings()`` reads the service's settings
    (``database_url``, ``amqp_url`` ...) only when a command needs them. A consuming
    service passes ``consumed_from`` (its events module) or ``consumed_event_types``:
    ``migrate`` then also declares its queues and bindings, so that they exist before any
    service publishes, and the ``dead-letters`` command is offered.

    ``provision`` (with the administrators' URLs) creates the service's database roles, its
    database and its broker user (``chassis.provisioning``); ``migrate`` runs as the schema's
    owner (``migration_database_url``) and declares the broker topology as its administrator
    (``amqp_admin_url``); the service itself runs as neither. ``setup`` runs both in one
    process (what ``make migrate``, the test stacks and the compose jobs run: one interpreter
    start-up and one import of the service instead of two).
    """
    if consumed_from is not None:
        # The module naming what the service consumes (``<service>.events``, its ``CONSUMED``),
        # imported only when a command needs it: the app's handlers are not the command line's.
        def consumed_event_types() -> list[str]:
            return list(importlib.import_module(consumed_from).CONSUMED)

    consumes_events = consumed_event_types is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if consumes_events and argv[:1] == ["dead-letters"]:
        # chassis owns the dead-letter tooling and parses the rest of the line (list, replay ...).
        return deadletters_cli(service, argv[1:], amqp_url=settings().amqp_url)
    parser = argparse.ArgumentParser(prog=service, description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "provision", help="create or update the service's database roles, database and broker user"
    )
    commands.add_parser("migrate", help="apply the database migrations and declare the broker's queues")
    commands.add_parser("setup", help="provision, then migrate")
    if consumes_events:
        commands.add_parser("dead-letters", help="list or replay the events that kept failing (list|replay)")
    if add_commands is not None:
        add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("provision", "setup"):
        values = settings()
        provision_database(values.admin_database_url, values.database_url, values.migration_database_url)
        if values.messaging_enabled:
            provision_broker_user(
                values.amqp_url,
                service,
                consumes=consumes_events,
                admin_url=values.amqp_admin_url,
                management_url=values.rabbitmq_management_url,
                rabbitmqctl=values.rabbitmqctl,
            )
    if args.command in ("migrate", "setup"):
        values = settings()
        upgrade(alembic_ini, values.migration_database_url)
        if values.messaging_enabled:
            event_types = consumed_event_types() if consumed_event_types is not None else None
            declare_topology_at(values.amqp_admin_url, service, event_types, values.event_retry_delays)
    if args.command in ("provision", "migrate", "setup"):
        return 0
    if run_command is None:
        parser.error(f"unknown command {args.command}")
    return run_command(args)


def consuming_service_cli(
    service: str, settings: Callable[[], Any], alembic_ini: Path, *, description: str | None
) -> Callable[[Sequence[str] | None], int]:
    """The ``main(argv)`` of a service that consumes events and adds no command of its own:
    ``provision``, ``migrate`` (its queues from ``<service>.events.CONSUMED``), ``dead-letters``."""

    def main(argv: Sequence[str] | None = None) -> int:
        return service_main(
            service,
            argv,
            description=description,
            alembic_ini=alembic_ini,
            settings=settings,
            consumed_from=f"{service}.events",
        )

    return main

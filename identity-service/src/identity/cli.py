"""identity-service command line.

``identity migrate`` applies the migrations; ``identity createadmin`` creates an admin
account (the equivalent of Django's ``createsuperuser``).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chassis.cli import service_main
from chassis.db import Database
from identity import services
from identity.adapters.security import Passwords
from identity.config import Settings
from identity.domain import ADMIN, password_problems
from identity.schemas import NewAdmin

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> int:
    """Run one command; the return value is the process exit status."""
    return service_main(
        "identity",
        argv,
        description=__doc__,
        alembic_ini=ALEMBIC_INI,
        settings=Settings,
        add_commands=_add_createadmin,
        run_command=lambda args: create_admin(args.email, args.full_name, password_stdin=args.password_stdin),
    )


def _add_createadmin(commands: Any) -> None:
    create = commands.add_parser("createadmin", help="create an admin account")
    create.add_argument("--email", required=True, help="the admin's email (stored lower-cased)")
    create.add_argument("--full-name", required=True, help="the admin's full name")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting twice",
    )


def _err(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return 1


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != password:
        return None
    return password


def create_admin(email: str, full_name: str, *, password_stdin: bool) -> int:
    """Create an admin; 1 with a message if the input is invalid or the email is taken."""
    try:
        admin = NewAdmin(email=email, full_name=full_name)
    except ValidationError as exc:
        return _err(
            "; ".join(f"{e['loc'][0]}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        )
    password = _read_password(password_stdin)
    if password is None:
        return _err("the passwords do not match.")
    problems = password_problems(password, admin.email)
    if problems:
        return _err(" ".join(problems))
    settings = Settings()
    db = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        account = services.create_admin(
            db,
            Passwords.from_settings(settings),
            email=admin.email,
            password=password,
            full_name=admin.full_name,
        )
    finally:
        db.dispose()
    if not account.created:
        if account.user.role == ADMIN:
            return _err(f"{admin.email} is already an admin; nothing was changed.")
        return _err(
            f"{admin.email} belongs to an existing {account.user.role} account; no admin was created."
        )
    sys.stdout.write(f"Admin {admin.email} created (user id {account.user.id}).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The rules of identity: roles, who may become what, and what makes a password acceptable.

Pure functions over plain values, so they are tested without a database or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "doctor", "patient"]
ROLES: tuple[Role, ...] = ("admin", "doctor", "patient")
ADMIN: Role = "admin"
DEFAULT_ROLE: Role = "patient"
# Public registration never creates an admin: the first one comes from the CLI or ADMIN_EMAIL.
SELF_REGISTRABLE_ROLES: frozenset[str] = frozenset({"patient", "doctor"})

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit
FULL_NAME_MAX_LENGTH = 150
PHONE_MAX_LENGTH = 32
PASSWORD_MIN_LENGTH = 8
# Argon2 hashes any length, but an unbounded input is a cheap way to burn our CPU.
PASSWORD_MAX_LENGTH = 256

# The most used passwords of at least 8 characters in public breach corpora. A short list
# keeps the check cheap while refusing what an attacker tries first.
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd",
        "p@ssw0rd", "p@ssword", "qwertyuiop", "qwerty123", "qwerty12", "1q2w3e4r", "1q2w3e4r5t",
        "1qaz2wsx", "zaq12wsx", "qazwsx123", "iloveyou", "iloveyou1", "sunshine", "princess",
        "football", "baseball", "basketball", "superman", "batman123", "trustno1", "welcome1",
        "welcome123", "letmein1", "letmein123", "abc12345", "abcd1234", "abcdefgh", "asdfghjk",
        "asdfghjkl", "aa123456", "a1234567", "a12345678", "admin123", "admin1234", "administrator",
        "changeme", "changeme1", "computer", "internet", "michelle", "jennifer", "starwars",
        "whatever", "dragon123", "monkey123", "master123", "shadow123", "freedom1", "mustang1",
        "charlie1", "jordan23", "liverpool", "chelsea1", "arsenal1", "babygirl", "lovely123",
        "iloveu123", "loveme123", "secret123", "hello123", "hello1234", "test1234", "testtest",
        "11111111a", "q1w2e3r4", "q1w2e3r4t5", "987654321a", "qwertyui", "zxcvbnm1", "zxcvbnm123",
        "doctor123", "patient1", "clinic123", "hospital", "medicine",
    }
)  # fmt: skip


def normalise_email(email: str) -> str:
    """Emails are compared and stored lower-cased (the database enforces it too)."""
    return email.strip().lower()


def password_problems(password: str, email: str | None = None) -> list[str]:
    """Every reason ``password`` is not acceptable for the account ``email``; empty when it is."""
    problems = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"The password must be at least {PASSWORD_MIN_LENGTH} characters long.")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"The password must be at most {PASSWORD_MAX_LENGTH} characters long.")
    if password.isdigit():
        problems.append("The password must not be entirely numeric.")
    lowered = password.strip().lower()
    if email and lowered in {normalise_email(email), normalise_email(email).split("@", 1)[0]}:
        problems.append("The password must not be the email address.")
    if lowered in COMMON_PASSWORDS:
        problems.append("The password is too common.")
    return problems


def may_self_register_as(role: str) -> bool:
    """Whether public registration may create an account with ``role``."""
    return role in SELF_REGISTRABLE_ROLES


@dataclass(frozen=True, slots=True)
class AccountChange:
    """What an admin asks to change on an account (None: leave as it is)."""

    role: str | None = None
    is_active: bool | None = None


def locks_out_acting_admin(actor_id: int, target_id: int, change: AccountChange) -> bool:
    """Whether ``change`` would take admin access away from the admin making it.

    An admin cannot demote or deactivate itself, so the clinic can never lose its last
    admin by accident, and nobody is locked out mid-session.
    """
    if actor_id != target_id:
        return False
    demotes = change.role is not None and change.role != ADMIN
    return demotes or change.is_active is False

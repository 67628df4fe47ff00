import pytest

from identity.domain import (
    AccountChange,
    locks_out_acting_admin,
    may_self_register_as,
    normalise_email,
    password_problems,
)


def test_a_long_enough_uncommon_password_is_accepted():
    assert password_problems("correct horse battery", "ada@example.com") == []


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 8 characters"),
        ("1234567890", "entirely numeric"),
        ("Ada@Example.com", "not be the email"),
        ("ada.lovelace", "not be the email"),
        ("Password123", "too common"),
        ("x" * 257, "at most 256"),
    ],
)
def test_a_password_breaking_a_rule_is_refused_with_the_reason(password, reason):
    problems = password_problems(
        password, "ada.lovelace@example.com" if "lovelace" in password else "ada@example.com"
    )
    assert any(reason in problem for problem in problems), problems


def test_every_broken_rule_is_reported_at_once():
    assert len(password_problems("1234567", "ada@example.com")) == 2


def test_emails_are_normalised_to_lower_case_without_surrounding_spaces():
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"


def test_registration_may_create_patients_and_doctors_but_never_admins():
    assert may_self_register_as("patient")
    assert may_self_register_as("doctor")
    assert not may_self_register_as("admin")


@pytest.mark.parametrize(
    ("change", "locked_out"),
    [
        (AccountChange(role="doctor"), True),
        (AccountChange(is_active=False), True),
        (AccountChange(role="admin", is_active=True), False),
        (AccountChange(), False),
    ],
)
def test_an_admin_cannot_take_its_own_admin_access_away(change, locked_out):
    assert locks_out_acting_admin(1, 1, change) is locked_out


def test_an_admin_may_demote_or_deactivate_another_admin():
    assert not locks_out_acting_admin(1, 2, AccountChange(role="patient", is_active=False))

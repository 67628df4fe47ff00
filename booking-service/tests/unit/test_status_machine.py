"""The appointment status machine of spec/API.md, transition by transition."""

from datetime import UTC, datetime, timedelta

import pytest

from booking.domain import (
    AppointmentStatus,
    check_cancellation,
    check_status_change,
    deactivation_reason,
)
from booking.errors import AppointmentAlreadyStarted, AppointmentNotStarted, IllegalStatusChange

S = AppointmentStatus
NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(hours=1)
FUTURE = NOW + timedelta(hours=1)

LEGAL = {
    (S.PENDING, S.CONFIRMED),
    (S.PENDING, S.CANCELLED),
    (S.CONFIRMED, S.COMPLETED),
    (S.CONFIRMED, S.NO_SHOW),
    (S.CONFIRMED, S.CANCELLED),
}
ILLEGAL = sorted({(a, b) for a in S for b in S} - LEGAL)


@pytest.mark.parametrize(("current", "new"), sorted(LEGAL))
def test_a_legal_transition_is_allowed_once_the_appointment_has_started(current, new):
    check_status_change(current, new, start_time=PAST, now=NOW)


@pytest.mark.parametrize(
    ("current", "new"),
    [(S.PENDING, S.CONFIRMED), (S.PENDING, S.CANCELLED), (S.CONFIRMED, S.CANCELLED)],
)
def test_confirming_and_cancelling_are_allowed_before_the_start(current, new):
    check_status_change(current, new, start_time=FUTURE, now=NOW)


@pytest.mark.parametrize(("current", "new"), ILLEGAL)
def test_every_other_transition_is_refused(current, new):
    with pytest.raises(IllegalStatusChange) as refused:
        check_status_change(current, new, start_time=PAST, now=NOW)
    assert refused.value.code == "illegal_status_change"


@pytest.mark.parametrize("new", [S.COMPLETED, S.NO_SHOW])
def test_completed_and_no_show_are_refused_before_the_start(new):
    with pytest.raises(AppointmentNotStarted):
        check_status_change(S.CONFIRMED, new, start_time=FUTURE, now=NOW)


@pytest.mark.parametrize("new", [S.COMPLETED, S.NO_SHOW])
def test_completed_and_no_show_are_allowed_at_the_very_start(new):
    check_status_change(S.CONFIRMED, new, start_time=NOW, now=NOW)


@pytest.mark.parametrize("current", [S.PENDING, S.CONFIRMED])
def test_an_active_appointment_that_has_not_started_can_be_cancelled(current):
    check_cancellation(current, start_time=FUTURE, now=NOW)


@pytest.mark.parametrize("current", [S.CANCELLED, S.COMPLETED, S.NO_SHOW])
def test_an_appointment_that_is_no_longer_active_cannot_be_cancelled(current):
    with pytest.raises(IllegalStatusChange):
        check_cancellation(current, start_time=FUTURE, now=NOW)


@pytest.mark.parametrize("start_time", [PAST, NOW])
def test_an_appointment_that_has_started_cannot_be_cancelled(start_time):
    with pytest.raises(AppointmentAlreadyStarted):
        check_cancellation(S.CONFIRMED, start_time=start_time, now=NOW)


def test_the_refusal_names_the_current_status_and_what_it_could_become():
    with pytest.raises(IllegalStatusChange) as refused:
        check_status_change(S.PENDING, S.COMPLETED, start_time=PAST, now=NOW)
    assert "pending" in refused.value.detail
    assert "cancelled, confirmed" in refused.value.detail


def test_deactivation_reasons_say_whose_account_went_away():
    assert deactivation_reason(as_patient=True) == "The patient's account was deactivated."
    assert deactivation_reason(as_patient=False) == "The doctor's account was deactivated."

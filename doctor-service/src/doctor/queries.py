"""doctor-service reads: the listing of doctors (the hot read ``GET /api/doctors/``) and one profile.

The search's rule (a part of the name or of the specialty, any case: ``domain.like_contains``)
is written here once, in ``_conditions``; the count's statement and ``search_listed_doctors()``
(doctor migration 0003, the plan chosen per execution for ``?search=`` alone, ``make bench``
row 3) state it again for speed, and ``tests/integration/test_search_function.py`` and
``test_search_count.py`` hold them to ``_conditions``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, bindparam, cast, func, or_, select, text
from sqlalchemy.orm import Session

from chassis.pagination import PageParams, known_total
from chassis.reads import FastReads
from doctor.domain import POLICY_FIELDS, is_valid_doctor_id, like_contains, name_prefix_patterns
from doctor.errors import DoctorNotFound, ProfileInactive, ProfileNotReady
from doctor.models import Doctor, ListedSpecialtyCount


@dataclass(frozen=True, slots=True)
class DoctorFilters:
    """What ``GET /api/doctors/`` narrows the listed doctors by."""

    search: str | None = None
    specialty: str | None = None


# The table itself: plain Core statements skip the ORM's per-execution work on the hot reads.
DOCTORS = Doctor.__table__
SPECIALTY_COUNTS = ListedSpecialtyCount.__table__


def _conditions(*, search: bool, specialty: bool) -> list[ColumnElement[bool]]:
    """The filters as bound parameters (``pattern``, ``specialty``): one statement per shape."""
    # Every condition keeps "is_active" so the planner can use the partial indexes.
    c = DOCTORS.c
    conditions: list[ColumnElement[bool]] = [c.is_active]
    if search:
        pattern = bindparam("pattern")
        conditions.append(
            or_(c.full_name.ilike(pattern, escape="\\"), c.specialty.ilike(pattern, escape="\\"))
        )
    if specialty:
        conditions.append(func.lower(c.specialty) == bindparam("specialty"))
    return conditions


def _shape(filters: DoctorFilters) -> dict[str, bool]:
    return {"search": bool(filters.search), "specialty": bool(filters.specialty)}


def _values(filters: DoctorFilters) -> dict[str, str]:
    values = {}
    if filters.search:
        values["pattern"] = like_contains(filters.search)
    if filters.specialty:
        values["specialty"] = filters.specialty.lower()
    return values


def listed_doctors_query(filters: DoctorFilters) -> Select[tuple[Doctor]]:
    """The listed doctors matching ``filters``, in a stable order (name, then id)."""
    return (
        select(Doctor)
        .where(*_conditions(**_shape(filters)))
        .order_by(DOCTORS.c.full_name, DOCTORS.c.id)
        .params(_values(filters))
    )


def listed_doctors_count_query(filters: DoctorFilters) -> Select[tuple[int]]:
    """How many listed doctors match ``filters``."""
    return _count_statement(**_shape(filters)).params(_values(filters))


PUBLIC_COLUMNS = tuple(
    DOCTORS.c[name] for name in ("id", "full_name", "specialty", "bio", "years_of_experience", *POLICY_FIELDS)
)


# Built once per shape of filters, values bound at execution: building and fingerprinting a
# statement on every request cost more than running it.
@functools.cache
def _page_statement(*, search: bool, specialty: bool) -> Select[Any]:
    return (
        select(*PUBLIC_COLUMNS)
        .where(*_conditions(search=search, specialty=specialty))
        .order_by(DOCTORS.c.full_name, DOCTORS.c.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


@functools.cache
def _count_statement(*, search: bool, specialty: bool) -> Select[tuple[int]]:
    """How many listed doctors match, exactly, without visiting every match.

    A doctor matches by specialty or by name. The specialty side is a sum over
    ``listed_specialty_counts`` (one row per specialty, kept exact by triggers); only doctors
    whose *name* matches and whose specialty does not are counted in ``doctors`` itself, through
    the name's trigram index. Both parts read the same snapshot (one statement).
    """
    c, counts = DOCTORS.c, SPECIALTY_COUNTS.c
    # sum() of bigint is numeric in PostgreSQL: cast back, the count is an integer.
    by_specialty = select(cast(func.coalesce(func.sum(counts.doctors), 0), BigInteger))
    if specialty:
        by_specialty = by_specialty.where(func.lower(counts.specialty) == bindparam("specialty"))
    if not search:
        return select(by_specialty.correlate(None).scalar_subquery())
    pattern = bindparam("pattern")
    by_specialty = by_specialty.where(counts.specialty.ilike(pattern, escape="\\"))
    by_name_only = (
        select(func.count())
        .select_from(DOCTORS)
        .where(
            c.is_active,
            c.full_name.ilike(pattern, escape="\\"),
            ~c.specialty.ilike(pattern, escape="\\"),
            *([func.lower(c.specialty) == bindparam("specialty")] if specialty else []),
        )
    )
    # correlate(None): inside the page's statement (also FROM doctors) they stay subqueries of their own.
    return select(
        by_specialty.correlate(None).scalar_subquery() + by_name_only.correlate(None).scalar_subquery()
    )


@functools.cache
def _page_with_total(*, search: bool, specialty: bool) -> Select[Any]:
    """The page, each row carrying the total: the count is cheap now (sums), so one round trip."""
    total = _count_statement(search=search, specialty=specialty).scalar_subquery().label("total")
    return _page_statement(search=search, specialty=specialty).add_columns(total)


# ?search= alone: the page and its total from search_listed_doctors() (doctor migration 0003),
# which picks the plan for how many doctors match without planning each execution.
_SEARCH_PAGE = text(
    "SELECT id, full_name, specialty, bio, years_of_experience, min_notice_minutes, booking_horizon_days, "
    "cancellation_notice_minutes, max_active_per_patient, total "
    "FROM search_listed_doctors(:pattern, :offset, :limit)"
)


async def list_doctor_rows(
    reads: FastReads, filters: DoctorFilters, page: PageParams
) -> tuple[int, list[dict[str, Any]]]:
    """``GET /api/doctors/``'s read: one page of ``listed_doctors_query`` and its total, in plain
    Core, as dicts of ``DoctorRead``'s shape (the policy nested), in autocommit on the event
    loop, with the total in the same statement (PostgreSQL computes it once, as an init plan;
    only an empty page past the end needs a count of its own).

    (``count(*) OVER ()`` instead would read every match before the first row, where the page
    alone stops after ``page_size`` matches in name order.)

    A search without a specialty runs in ``search_listed_doctors()`` instead: the only shape
    whose best plan depends on how many doctors match (the other shapes have one plan that is
    always right, which PostgreSQL keeps)."""
    shape, values = _shape(filters), _values(filters)
    page_values = {**values, "offset": page.offset, "limit": page.limit}
    search_only = bool(filters.search) and not filters.specialty
    statement = _SEARCH_PAGE if search_only else _page_with_total(**shape)
    rows = await reads.all(statement, page_values)
    if rows:
        count = rows[0]["total"]
        for row in rows:
            del row["total"]
            # DoctorRead's shape: the route answers these rows as they are (page_response).
            row["booking_policy"] = {name: row.pop(name) for name in POLICY_FIELDS}
        return count, rows
    count = known_total(page, 0)
    if count is None:
        count = await reads.scalar(_count_statement(**shape), values) or 0
    return count, rows


def get_listed_doctor(session: Session, doctor_id: int, *, for_update: bool = False) -> Doctor:
    """A listed doctor; unknown and hidden doctors alike are not found."""
    doctor = None
    if is_valid_doctor_id(doctor_id):
        doctor = session.get(Doctor, doctor_id, with_for_update=for_update)
    if doctor is None or not doctor.is_active:
        raise DoctorNotFound(f"There is no doctor with id {doctor_id}.")
    return doctor


def get_own_profile(session: Session, user_id: int, *, for_update: bool = False) -> Doctor:
    """The calling doctor's own profile."""
    doctor = session.get(Doctor, user_id, with_for_update=for_update)
    if doctor is None:
        raise ProfileNotReady(
            "Your doctor profile does not exist yet. It is created from your registration within "
            "moments; please try again shortly."
        )
    if not doctor.is_active:
        raise ProfileInactive("Your account has no active doctor profile.")
    return doctor


def search_by_name(session: Session, name: str | None, page: PageParams) -> tuple[int, list[Doctor]]:
    """``Practitioner?name=``: a page of listed doctors (by name, then id) whose name, or a word of
    it, starts with ``name`` (any case; every listed doctor without one), and how many match in all."""
    conditions: list[ColumnElement[bool]] = [DOCTORS.c.is_active]
    if name:
        starts, word_starts = name_prefix_patterns(name)
        conditions.append(
            or_(
                DOCTORS.c.full_name.ilike(starts, escape="\\"),
                DOCTORS.c.full_name.ilike(word_starts, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(DOCTORS).where(*conditions)) or 0
    doctors = session.scalars(
        select(Doctor)
        .where(*conditions)
        .order_by(DOCTORS.c.full_name, DOCTORS.c.id)
        .offset(page.offset)
        .limit(page.limit)
    ).all()
    return total, list(doctors)

"""booking policy: each doctor's rules for booking (notice, horizon, cancellation, per-patient limit)

Four columns on ``doctors`` (defaults 0, null, 0, null: no rules), shown in the doctor
representation and carried by ``doctor.profile.updated``; ``search_listed_doctors()``
returns them too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROP_FUNCTION = "DROP FUNCTION search_listed_doctors(text, bigint, bigint)"

# search_listed_doctors() of migration 0003, returning the policy columns as well.
FUNCTION = r"""
CREATE FUNCTION search_listed_doctors(pattern text, page_offset bigint, page_limit bigint)
RETURNS TABLE (
    id bigint, full_name varchar, specialty varchar, bio text, years_of_experience integer,
    min_notice_minutes integer, booking_horizon_days integer, cancellation_notice_minutes integer,
    max_active_per_patient integer, total bigint
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    listed bigint;
    matches bigint;
BEGIN
    SELECT coalesce(sum(c.doctors), 0), coalesce(sum(c.doctors) FILTER (WHERE c.specialty ILIKE pattern), 0)
      INTO listed, matches
      FROM listed_specialty_counts AS c;
    matches := matches + (
        SELECT count(*) FROM doctors AS d
         WHERE d.is_active AND d.full_name ILIKE pattern AND d.specialty NOT ILIKE pattern
    );
    IF matches * matches > (page_offset + page_limit) * listed THEN
        RETURN QUERY
            SELECT d.id, d.full_name, d.specialty, d.bio, d.years_of_experience, d.min_notice_minutes,
                   d.booking_horizon_days, d.cancellation_notice_minutes, d.max_active_per_patient, matches
              FROM doctors AS d
             WHERE d.is_active AND ((d.full_name || '') ILIKE pattern OR (d.specialty || '') ILIKE pattern)
             ORDER BY d.full_name, d.id
            OFFSET page_offset LIMIT page_limit;
    ELSE
        RETURN QUERY
            SELECT d.id, d.full_name, d.specialty, d.bio, d.years_of_experience, d.min_notice_minutes,
                   d.booking_horizon_days, d.cancellation_notice_minutes, d.max_active_per_patient, matches
              FROM doctors AS d
             WHERE d.is_active AND (d.full_name ILIKE pattern OR d.specialty ILIKE pattern)
             ORDER BY d.full_name, d.id
            OFFSET page_offset LIMIT page_limit;
    END IF;
END
$$
"""

PREVIOUS_FUNCTION = r"""
CREATE FUNCTION search_listed_doctors(pattern text, page_offset bigint, page_limit bigint)
RETURNS TABLE (
    id bigint, full_name varchar, specialty varchar, bio text, years_of_experience integer, total bigint
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    listed bigint;
    matches bigint;
BEGIN
    SELECT coalesce(sum(c.doctors), 0), coalesce(sum(c.doctors) FILTER (WHERE c.specialty ILIKE pattern), 0)
      INTO listed, matches
      FROM listed_specialty_counts AS c;
    matches := matches + (
        SELECT count(*) FROM doctors AS d
         WHERE d.is_active AND d.full_name ILIKE pattern AND d.specialty NOT ILIKE pattern
    );
    IF matches * matches > (page_offset + page_limit) * listed THEN
        RETURN QUERY
            SELECT d.id, d.full_name, d.specialty, d.bio, d.years_of_experience, matches
              FROM doctors AS d
             WHERE d.is_active AND ((d.full_name || '') ILIKE pattern OR (d.specialty || '') ILIKE pattern)
             ORDER BY d.full_name, d.id
            OFFSET page_offset LIMIT page_limit;
    ELSE
        RETURN QUERY
            SELECT d.id, d.full_name, d.specialty, d.bio, d.years_of_experience, matches
              FROM doctors AS d
             WHERE d.is_active AND (d.full_name ILIKE pattern OR d.specialty ILIKE pattern)
             ORDER BY d.full_name, d.id
            OFFSET page_offset LIMIT page_limit;
    END IF;
END
$$
"""

CHECKS = {
    "min_notice_minutes_range": "min_notice_minutes BETWEEN 0 AND 525600",
    "booking_horizon_days_range": "booking_horizon_days BETWEEN 1 AND 3650",
    "cancellation_notice_minutes_range": "cancellation_notice_minutes BETWEEN 0 AND 525600",
    "max_active_per_patient_range": "max_active_per_patient BETWEEN 1 AND 10000",
}


def upgrade() -> None:
    op.add_column(
        "doctors", sa.Column("min_notice_minutes", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("doctors", sa.Column("booking_horizon_days", sa.Integer(), nullable=True))
    op.add_column(
        "doctors", sa.Column("cancellation_notice_minutes", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("doctors", sa.Column("max_active_per_patient", sa.Integer(), nullable=True))
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(f"ck_doctors_{name}"), "doctors", condition)
    op.execute(DROP_FUNCTION)
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(DROP_FUNCTION)
    op.execute(PREVIOUS_FUNCTION)
    for name in CHECKS:
        op.drop_constraint(op.f(f"ck_doctors_{name}"), "doctors", type_="check")
    for column in (
        "max_active_per_patient",
        "cancellation_notice_minutes",
        "booking_horizon_days",
        "min_notice_minutes",
    ):
        op.drop_column("doctors", column)

"""search_listed_doctors(): a page of the ?search= listing and its total, in plans made once

A search's best plan depends on how many doctors match: few are found fastest through the
trigram indexes and sorted, many by walking the name index in order until the page is full.
PostgreSQL could only tell by planning every execution again (about 0.2 ms at 10,000 doctors,
several times the execution itself), as a prepared statement's one generic plan cannot be
right for both. This function counts first (the count needs no choice), then runs whichever
of two statements fits; each has one plan, made on first use in a session and kept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``pattern`` is an ILIKE pattern escaped with ``\`` (doctor.domain.like_contains), which is
# also ILIKE's default escape character.
#
# The count: per-specialty sums (listed_specialty_counts) plus the doctors matched by name
# only, through the name's trigram index (see doctor.queries._count_statement).
#
# The choice: walking the name index in order visits about (offset + limit) * listed / matches
# rows; the trigram indexes visit the matches and sort them. The walk wins when
# matches^2 > (offset + limit) * listed.
#
# In the walk, ``full_name || ''`` and ``specialty || ''`` are what keep the planner from the
# trigram indexes (an index on a column does not serve an expression over it): its plan is
# the name index in listing order, whatever the pattern.
FUNCTION = r"""
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


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION search_listed_doctors(text, bigint, bigint)")

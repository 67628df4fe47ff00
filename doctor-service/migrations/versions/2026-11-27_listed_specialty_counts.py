"""listed_specialty_counts: how many listed doctors each specialty has, kept by triggers

The doctor search's exact ``count`` had to find every match (10x the doctors, 10x the
work); the specialty side of it is now a sum over one row per specialty, and only the
name side (few matches: a search term rarely hits both) is counted in ``doctors``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level triggers with transition tables: a bulk change of N rows costs one upsert
# per specialty it touches, not N. Specialties are upserted in order, so two transactions
# touching the same specialties lock their rows in the same order (no deadlock). No CHECK
# (doctors >= 0): PostgreSQL checks the proposed row of INSERT ... ON CONFLICT (a negative
# delta) before it turns into the update.
UPSERT = """
    INSERT INTO listed_specialty_counts AS counted (specialty, doctors)
    SELECT specialty, sum(delta) FROM ({changes}) AS changes
    GROUP BY specialty
    HAVING sum(delta) <> 0
    ORDER BY specialty
    ON CONFLICT (specialty) DO UPDATE SET doctors = counted.doctors + excluded.doctors;
"""
ADDED = "SELECT specialty, 1 AS delta FROM new_rows WHERE is_active"
REMOVED = "SELECT specialty, -1 AS delta FROM old_rows WHERE is_active"
# Each branch names only the transition tables its trigger has.
FUNCTION = f"""
CREATE FUNCTION count_listed_specialties() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM listed_specialty_counts;
    ELSIF TG_OP = 'INSERT' THEN
        {UPSERT.format(changes=ADDED)}
    ELSIF TG_OP = 'DELETE' THEN
        {UPSERT.format(changes=REMOVED)}
    ELSE
        {UPSERT.format(changes=f"{ADDED} UNION ALL {REMOVED}")}
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "listed_specialty_counts",
        sa.Column("specialty", sa.String(100), nullable=False),
        sa.Column("doctors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("specialty", name=op.f("pk_listed_specialty_counts")),
    )
    op.execute(FUNCTION)
    op.execute(
        "CREATE TRIGGER count_listed_specialties_insert AFTER INSERT ON doctors "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_listed_specialties()"
    )
    op.execute(
        "CREATE TRIGGER count_listed_specialties_update AFTER UPDATE ON doctors "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION count_listed_specialties()"
    )
    op.execute(
        "CREATE TRIGGER count_listed_specialties_delete AFTER DELETE ON doctors "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_listed_specialties()"
    )
    op.execute(
        "CREATE TRIGGER count_listed_specialties_truncate AFTER TRUNCATE ON doctors "
        "FOR EACH STATEMENT EXECUTE FUNCTION count_listed_specialties()"
    )
    op.execute(
        "INSERT INTO listed_specialty_counts (specialty, doctors) "
        "SELECT specialty, count(*) FROM doctors WHERE is_active GROUP BY specialty"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER count_listed_specialties_{event} ON doctors")
    op.execute("DROP FUNCTION count_listed_specialties()")
    op.drop_table("listed_specialty_counts")

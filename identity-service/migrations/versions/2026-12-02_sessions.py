"""sessions: each login a row, with an absolute lifetime and an end; a NOTIFY when one ends

Every refresh-token family becomes a session (started at its first token, ending 30 days
later unless it ended before: a family without a live token ended when its last token
was revoked). The gateway's token check refuses the access tokens of ended sessions; the
trigger tells every identity replica's cache at once.

Revision ID: 0006_sessions
Revises: 0005_refresh_grace
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_sessions"
down_revision: str | None = "0005_refresh_grace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.CheckConstraint("expires_at > started_at", name="ck_sessions_expires_after_started"),
        sa.CheckConstraint(
            "(ended_at IS NULL) = (end_reason IS NULL)", name="ck_sessions_end_reason_iff_ended"
        ),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    # Replicas of the release before this one keep logging people in during a rolling upgrade,
    # and know nothing of sessions: a refresh token of a family without one gets its session
    # here (as the backfill below makes them), or their logins would fail on the foreign key.
    # Created before the backfill, so its lock waits for their logins in flight, which the
    # backfill then covers (the foreign key's check would otherwise fail on them).
    op.execute(
        """
        CREATE FUNCTION sessions_of_older_logins() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM sessions WHERE id = NEW.family_id) THEN
                INSERT INTO sessions (id, user_id, started_at, expires_at)
                VALUES (NEW.family_id, NEW.user_id, NEW.issued_at, NEW.issued_at + interval '720 hours')
                ON CONFLICT (id) DO NOTHING;
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_refresh_tokens_session BEFORE INSERT ON refresh_tokens
        FOR EACH ROW EXECUTE FUNCTION sessions_of_older_logins()
        """
    )
    op.execute(
        """
        INSERT INTO sessions (id, user_id, started_at, expires_at, ended_at, end_reason)
        SELECT family_id,
               min(user_id),
               min(issued_at),
               min(issued_at) + interval '30 days',
               CASE WHEN bool_and(revoked_at IS NOT NULL) THEN max(revoked_at) END,
               CASE WHEN bool_and(revoked_at IS NOT NULL) THEN 'revoked' END
        FROM refresh_tokens
        GROUP BY family_id
        """
    )
    op.create_foreign_key(
        "fk_refresh_tokens_family_id_sessions",
        "refresh_tokens",
        "sessions",
        ["family_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.execute(
        """
        CREATE FUNCTION notify_session_ended() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('identity_user_status', NEW.user_id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_sessions_ended
        AFTER UPDATE OF ended_at ON sessions
        FOR EACH ROW
        WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
        EXECUTE FUNCTION notify_session_ended()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_refresh_tokens_session ON refresh_tokens")
    op.execute("DROP FUNCTION IF EXISTS sessions_of_older_logins()")
    op.execute("DROP TRIGGER IF EXISTS trg_sessions_ended ON sessions")
    op.execute("DROP FUNCTION IF EXISTS notify_session_ended()")
    op.drop_constraint("fk_refresh_tokens_family_id_sessions", "refresh_tokens", type_="foreignkey")
    op.drop_table("sessions")

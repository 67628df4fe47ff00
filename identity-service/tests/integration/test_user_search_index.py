"""/api/users/?search= is served by the trigram indexes of email and name (migration 0003).

With 20,000 users whose statistics PostgreSQL knows, a selective search must not read
every user, neither for the page nor for its count. The users are added in a transaction
that is rolled back, so the rest of the suite never sees them.
"""

import pytest
from sqlalchemy import create_engine, text

from chassis.settings import normalise_database_url
from identity.queries import user_list_statements

USERS = text(
    """
    INSERT INTO users (email, password_hash, full_name, role)
    SELECT 'user' || n || '@' || md5(n::text) || '.example.com', 'x', 'Person ' || md5((n * 7)::text),
           (ARRAY['patient', 'doctor'])[1 + n % 2]
    FROM generate_series(1, 20000) AS n
    """
)

CLEAN_PENDING_LIST = text("SELECT gin_clean_pending_list(CAST(:index AS regclass))")


@pytest.fixture
def many_users(database_url):
    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as connection:
        connection.execute(USERS)
        # What VACUUM would do outside a transaction: move the new entries from the GIN indexes'
        # pending lists into the indexes proper (the planner counts a long pending list as cost).
        for index in ("ix_users_email_trgm", "ix_users_full_name_trgm"):
            connection.execute(CLEAN_PENDING_LIST, {"index": index})
        connection.execute(text("ANALYZE users"))
        yield connection
        connection.rollback()
    engine.dispose()


def plan_of(connection, statement) -> str:
    compiled = statement.compile(dialect=connection.dialect)
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("term", ["abcdef", "someone@example"])
def test_a_selective_user_search_reads_the_trigram_indexes(many_users, term):
    count, page = user_list_statements(role=None, search=term, is_active=None, offset=0, limit=20)
    for statement in (count, page):
        plan = plan_of(many_users, statement)
        assert "ix_users_email_trgm" in plan
        assert "ix_users_full_name_trgm" in plan
        assert "Seq Scan" not in plan

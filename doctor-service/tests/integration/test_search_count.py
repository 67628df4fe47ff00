"""The list's exact ``count`` comes from per-specialty sums kept by triggers: it must always
equal counting the matching doctors one by one, whatever changed the table and however."""

import pytest
from sqlalchemy import bindparam, text

from doctor.queries import DoctorFilters, listed_doctors_count_query

FILTERS = [
    DoctorFilters(),
    DoctorFilters(search="cardio"),
    DoctorFilters(search="CARDIO"),
    DoctorFilters(search="watson"),
    DoctorFilters(search="o"),  # names and specialties alike
    DoctorFilters(search="100%_"),  # wildcards taken literally
    DoctorFilters(specialty="cardiology"),
    DoctorFilters(specialty="cardiology", search="watson"),
    DoctorFilters(specialty="cardiology", search="cardio"),
    DoctorFilters(search="nothing matches this"),
]

BRUTE_FORCE = text(
    "SELECT count(*) FROM doctors WHERE is_active "
    "AND (CAST(:search AS text) IS NULL OR full_name ILIKE :pattern ESCAPE '\\' "
    "     OR specialty ILIKE :pattern ESCAPE '\\') "
    "AND (CAST(:specialty AS text) IS NULL OR lower(specialty) = :specialty)"
).bindparams(bindparam("search"), bindparam("pattern"), bindparam("specialty"))


def pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def assert_counts_exact(db) -> None:
    with db.engine.connect() as connection:
        for filters in FILTERS:
            counted = connection.execute(listed_doctors_count_query(filters)).scalar_one()
            expected = connection.execute(
                BRUTE_FORCE,
                {
                    "search": filters.search,
                    "pattern": pattern(filters.search) if filters.search else None,
                    "specialty": filters.specialty.lower() if filters.specialty else None,
                },
            ).scalar_one()
            assert counted == expected, filters


@pytest.fixture
def table(db):
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors"))
    yield db
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors"))


def execute(db, sql: str, **values) -> None:
    with db.transaction() as session:
        session.execute(text(sql), values)


COLUMNS = "id, full_name, specialty, bio, years_of_experience, is_active, user_revision, revision"
INSERT = f"INSERT INTO doctors ({COLUMNS}) VALUES (:id, :name, :specialty, '', 0, :active, 1, 1)"


def test_counts_follow_inserts_updates_deactivations_deletes_and_truncate(table):
    db = table
    assert_counts_exact(db)
    for id_, name, specialty, active in [
        (1, "John Watson", "Cardiology", True),
        (2, "Doug Ross", "Pediatric Cardiology", True),
        (3, "Hidden Cardio", "Cardiology", False),
        (4, "Percy 100%_Sure", "Oncology", True),
        (5, "Cardio Bob", "Dermatology", True),  # matches "cardio" by name only
        (6, "New Doctor", "", True),  # no profile yet
    ]:
        execute(db, INSERT, id=id_, name=name, specialty=specialty, active=active)
    assert_counts_exact(db)

    execute(db, "UPDATE doctors SET specialty = 'Cardiology' WHERE id = 6")  # fills in the profile
    assert_counts_exact(db)
    execute(db, "UPDATE doctors SET is_active = false WHERE id = 1")  # deactivated
    assert_counts_exact(db)
    execute(db, "UPDATE doctors SET is_active = true WHERE id = 3")  # reactivated
    assert_counts_exact(db)
    execute(db, "UPDATE doctors SET specialty = 'Cardiology', is_active = true WHERE id IN (1, 4)")
    assert_counts_exact(db)
    execute(db, "UPDATE doctors SET full_name = full_name || ' Jr'")  # names only: sums unchanged
    assert_counts_exact(db)
    execute(db, "DELETE FROM doctors WHERE id IN (2, 5)")
    assert_counts_exact(db)

    # A rolled-back change leaves the sums as they were.
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.execute(text("UPDATE doctors SET is_active = false"))
        raise RuntimeError("roll back")
    assert_counts_exact(db)

    execute(db, "TRUNCATE doctors")
    assert_counts_exact(db)


def test_counts_follow_a_bulk_insert_of_many_specialties(table):
    db = table
    execute(
        db,
        f"INSERT INTO doctors ({COLUMNS}) "
        "SELECT n, 'Doctor ' || n, (ARRAY['Cardiology', 'Neurology', 'Pediatric Cardiology', ''])[1 + n % 4],"
        " '', 0, n % 5 <> 0, 1, 1 FROM generate_series(1, 2000) AS n",
    )
    assert_counts_exact(db)
    execute(db, "UPDATE doctors SET specialty = 'Neurology' WHERE id % 3 = 0")
    assert_counts_exact(db)

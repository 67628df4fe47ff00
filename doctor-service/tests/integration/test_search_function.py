"""``?search=`` alone is served by ``search_listed_doctors()`` (doctor migration 0003), which
walks the name index when many doctors match and sorts the trigram matches when few do. Either
way, its page and total must be exactly the listing's: the reference query, page by page."""

import pytest
from sqlalchemy import text

from doctor.domain import like_contains
from doctor.queries import DoctorFilters, listed_doctors_count_query, listed_doctors_query

# 300 doctors, 270 of them listed; a third of all are cardiologists, a few have "Cardio" in
# their name (some of those cardiologists too), one has wildcards in it.
DOCTORS = text(
    """
    INSERT INTO doctors (id, full_name, specialty, bio, years_of_experience,
                         is_active, user_revision, revision)
    SELECT n,
           CASE WHEN n % 50 = 7 THEN 'Cardio ' || n
                WHEN n = 299 THEN 'Percy 100%_Sure'
                ELSE 'Doctor ' || md5(n::text) END,
           (ARRAY['Cardiology', 'Neurology', 'Oncology'])[1 + n % 3], 'bio ' || n, n % 40, n % 10 <> 0, 1, 1
    FROM generate_series(1, 300) AS n
    """
)

SEARCH = text(
    "SELECT id, full_name, specialty, bio, years_of_experience, total "
    "FROM search_listed_doctors(:pattern, :offset, :limit)"
)

# (term, offset, limit): with 270 listed, "cardio" (90 by specialty, a few more by name) takes
# the walk for a first page and the sort for a deep one; the rare terms always sort.
CASES = [
    ("cardio", 0, 20),  # many matches: the walk (90² > 20 · 270)
    ("CARDIO", 20, 20),
    ("cardio", 80, 20),  # deep: the sort (90² < 100 · 270)
    ("cardio", 200, 20),  # past the end
    ("neuro", 0, 100),
    ("doctor", 0, 5),  # names only, most doctors
    ("cardio 7", 0, 20),  # few matches: the sort
    ("100%_", 0, 20),  # wildcards taken literally
    ("nobody at all", 0, 20),
]


@pytest.fixture(scope="module")
def doctors(db):
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors"))
        session.execute(DOCTORS)
    yield db
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors"))


@pytest.mark.parametrize(("term", "offset", "limit"), CASES)
def test_the_function_gives_the_listing_page_and_total(doctors, term, offset, limit):
    filters = DoctorFilters(search=term)
    with doctors.engine.connect() as connection:
        expected_total = connection.execute(listed_doctors_count_query(filters)).scalar_one()
        expected = connection.execute(listed_doctors_query(filters).offset(offset).limit(limit)).all()
        rows = connection.execute(
            SEARCH, {"pattern": like_contains(term), "offset": offset, "limit": limit}
        ).all()
    assert [row.id for row in rows] == [doctor.id for doctor in expected]
    assert [(row.full_name, row.specialty, row.bio, row.years_of_experience) for row in rows] == [
        (doctor.full_name, doctor.specialty, doctor.bio, doctor.years_of_experience) for doctor in expected
    ]
    assert {row.total for row in rows} <= {expected_total}
    if offset < expected_total:
        assert rows, "a page inside the total is not empty"


def test_the_total_follows_a_change_in_the_same_session(doctors):
    # The function's plans are kept per session; what they read is not.
    first_page = {"pattern": like_contains("cardio"), "offset": 0, "limit": 20}
    with doctors.engine.connect() as connection:
        before = connection.execute(SEARCH, first_page).first()
        connection.execute(text("UPDATE doctors SET specialty = 'Cardiology' WHERE id = 2"))
        after = connection.execute(SEARCH, first_page).first()
        connection.rollback()
    assert after.total == before.total + 1

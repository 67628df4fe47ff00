"""The list queries are served by the trigram and specialty indexes.

With a few thousand doctors, whose statistics PostgreSQL knows, a selective search
must not read the whole table. ``bench/search_bench.py`` measures it on 100,000.
"""

import pytest
from sqlalchemy import text

from doctor.queries import DoctorFilters, listed_doctors_count_query, listed_doctors_query

SPECIALTIES = ["Dermatology", "Neurology", "Oncology", "Radiology", "Psychiatry", "Urology", "Cardiology"]


@pytest.fixture(scope="module")
def many_doctors(db):
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors"))
        session.execute(
            text(
                """
                INSERT INTO doctors (id, full_name, specialty, bio, years_of_experience,
                                     is_active, user_revision, revision)
                SELECT n, 'Doctor ' || md5(n::text), (CAST(:specialties AS text[]))[1 + n % 7], '', 0,
                       n % 10 <> 0, 1, 1
                FROM generate_series(1, 20000) AS n
                """
            ),
            {"specialties": SPECIALTIES},
        )
    with db.engine.connect() as connection:
        # VACUUM also moves rows from the GIN indexes' pending lists into the indexes proper.
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE doctors"))


def plan_of(db, query) -> str:
    compiled = query.compile(dialect=db.engine.dialect)
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        return "\n".join(row[0] for row in rows)


def first_page(filters: DoctorFilters):
    return listed_doctors_query(filters).limit(20)


def test_a_selective_search_reads_the_trigram_indexes_of_name_and_specialty(many_doctors, db):
    plan = plan_of(db, first_page(DoctorFilters(search="abcdef")))
    assert "ix_doctors_listed_full_name_trgm" in plan
    assert "ix_doctors_listed_specialty_trgm" in plan
    assert "Seq Scan" not in plan


def test_the_search_count_sums_specialties_and_reads_only_the_name_index_of_doctors(many_doctors, db):
    # A search matching a whole specialty (1/7 of the doctors) must not visit each of them.
    plan = plan_of(db, listed_doctors_count_query(DoctorFilters(search="cardio")))
    assert "listed_specialty_counts" in plan
    assert "ix_doctors_listed_full_name_trgm" in plan
    assert "Seq Scan on doctors" not in plan
    assert "ix_doctors_listed_specialty_trgm" not in plan


def test_the_specialty_filter_reads_its_index_in_listing_order(many_doctors, db):
    plan = plan_of(db, first_page(DoctorFilters(specialty="cardiology")))
    assert "ix_doctors_listed_specialty_lower" in plan
    assert "Sort" not in plan


def test_the_unfiltered_list_reads_in_index_order(many_doctors, db):
    plan = plan_of(db, first_page(DoctorFilters()))
    assert "ix_doctors_listed_full_name_id" in plan
    assert "Sort" not in plan

"""GET /api/doctors/: active doctors only, ?search=, ?specialty=, pagination, stable order."""

import pytest
from pydantic import TypeAdapter
from sqlalchemy import text

from chassis.pagination import Page
from doctor.domain import NO_POLICY
from doctor.schemas import DoctorRead


@pytest.fixture
def doctors(client, add_doctor):
    add_doctor(1, "Meredith Grey", "General Surgery", bio="Seattle", years_of_experience=12)
    add_doctor(2, "John Watson", "Cardiology")
    add_doctor(3, "Stephen Strange", "Neurosurgery")
    add_doctor(4, "Lisa Cuddy", "Endocrinology")
    add_doctor(5, "Doug Ross", "Pediatric Cardiology")
    add_doctor(6, "Hidden Cardio", "Cardiology", is_active=False)
    add_doctor(7, "Percy 100%_Sure", "Oncology")


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [doctor["full_name"] for doctor in response.json()["results"]]


def test_the_list_holds_active_doctors_only_ordered_by_name(client, callers, doctors):
    response = client.get("/api/doctors/", headers=callers("patient").headers)
    assert names(response) == [
        "Doug Ross",
        "John Watson",
        "Lisa Cuddy",
        "Meredith Grey",
        "Percy 100%_Sure",
        "Stephen Strange",
    ]
    assert response.json()["count"] == 6


def test_a_listed_doctor_shows_every_public_field(client, callers, doctors):
    response = client.get("/api/doctors/", params={"search": "meredith"}, headers=callers("patient").headers)
    assert response.json()["results"] == [
        {
            "id": 1,
            "full_name": "Meredith Grey",
            "specialty": "General Surgery",
            "bio": "Seattle",
            "years_of_experience": 12,
            "booking_policy": NO_POLICY,
        }
    ]


def test_search_finds_a_partial_specialty_in_any_case(client, callers, doctors):
    response = client.get("/api/doctors/", params={"search": "cardio"}, headers=callers("patient").headers)
    assert names(response) == ["Doug Ross", "John Watson"]


def test_search_finds_a_partial_name_in_any_case(client, callers, doctors):
    assert names(client.get("/api/doctors/?search=WATS", headers=callers("admin").headers)) == ["John Watson"]


def test_search_matches_the_name_or_the_specialty(client, callers, doctors):
    # "ro" is in Doug Ross's name and in Stephen Strange's specialty (Neurosurgery).
    assert names(client.get("/api/doctors/?search=ro", headers=callers("admin").headers)) == [
        "Doug Ross",
        "Stephen Strange",
    ]


def test_search_takes_like_wildcards_literally(client, callers, doctors):
    assert names(client.get("/api/doctors/", params={"search": "%_"}, headers=callers("admin").headers)) == [
        "Percy 100%_Sure"
    ]
    assert names(client.get("/api/doctors/", params={"search": "_"}, headers=callers("admin").headers)) == [
        "Percy 100%_Sure"
    ]


def test_search_without_a_match_gives_an_empty_page(client, callers, doctors):
    response = client.get("/api/doctors/?search=dermatology", headers=callers("patient").headers)
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_a_blank_search_does_not_filter(client, callers, doctors):
    assert client.get("/api/doctors/?search=%20", headers=callers("patient").headers).json()["count"] == 6


def test_the_specialty_filter_is_exact_and_case_insensitive(client, callers, doctors):
    assert names(client.get("/api/doctors/?specialty=cardiology", headers=callers("patient").headers)) == [
        "John Watson"
    ]
    assert names(client.get("/api/doctors/?specialty=cardio", headers=callers("patient").headers)) == []


def test_search_and_specialty_combine(client, callers, doctors):
    response = client.get(
        "/api/doctors/?search=doug&specialty=Pediatric%20Cardiology", headers=callers("patient").headers
    )
    assert names(response) == ["Doug Ross"]
    response = client.get(
        "/api/doctors/?search=doug&specialty=Cardiology", headers=callers("patient").headers
    )
    assert names(response) == []


def test_an_overlong_search_is_a_validation_error(client, callers, doctors):
    response = client.get("/api/doctors/", params={"search": "x" * 101}, headers=callers("patient").headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "search"


def test_pages_link_to_each_other_and_together_hold_every_doctor(client, callers, doctors):
    first = client.get("/api/doctors/?page_size=4", headers=callers("patient").headers).json()
    assert first["count"] == 6
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/doctors/?page_size=4&page=2"
    second = client.get(first["next"], headers=callers("patient").headers).json()
    assert second["next"] is None
    assert second["previous"] == "http://testserver/api/doctors/?page_size=4"
    ids = [d["id"] for d in first["results"] + second["results"]]
    assert sorted(ids) == [1, 2, 3, 4, 5, 7]


def test_pagination_keeps_the_filters_in_its_links(client, callers, doctors):
    page = client.get("/api/doctors/?search=cardio&page_size=1", headers=callers("patient").headers).json()
    assert page["next"] == "http://testserver/api/doctors/?search=cardio&page_size=1&page=2"


def test_doctors_of_the_same_name_keep_a_stable_order(client, callers, add_doctor):
    for doctor_id in (30, 10, 20):
        add_doctor(doctor_id, "Same Name")
    pages = [
        client.get(f"/api/doctors/?page_size=1&page={page}", headers=callers("patient").headers).json()[
            "results"
        ][0]["id"]
        for page in (1, 2, 3)
    ]
    assert pages == [10, 20, 30]


def test_a_page_past_the_end_is_empty(client, callers, doctors):
    response = client.get("/api/doctors/?page=5", headers=callers("patient").headers)
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("query", ["page=0", "page=x", "page_size=0", "page_size=101"])
def test_invalid_pagination_is_a_validation_error(client, callers, query):
    response = client.get(f"/api/doctors/?{query}", headers=callers("patient").headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "search=cardio",  # search_listed_doctors()
        "specialty=cardiology",
        "search=o&specialty=cardiology",
        "search=e&page_size=2&page=2",
        "search=nobody",
        "page=9",
    ],
)
def test_the_answer_is_what_the_routes_model_gives(client, callers, doctors, query):
    # The route answers its rows as they are (chassis.pagination.page_response): they must be
    # exactly what validating them through Page[DoctorRead] and serialising it would give.
    with client.app.state.db.transaction() as session:
        session.execute(
            text("UPDATE doctors SET min_notice_minutes = 60, booking_horizon_days = 30 WHERE id = 2")
        )
    response = client.get(f"/api/doctors/?{query}", headers=callers("patient").headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    model = TypeAdapter(Page[DoctorRead])
    assert response.content == model.dump_json(model.validate_json(response.content))
    if "search=cardio" in query:
        watson = next(doctor for doctor in response.json()["results"] if doctor["id"] == 2)
        assert watson["booking_policy"] == {**NO_POLICY, "min_notice_minutes": 60, "booking_horizon_days": 30}

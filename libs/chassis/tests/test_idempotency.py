"""Idempotency-Key on real PostgreSQL: a retry gets the first answer and changes nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, select, update

from chassis.app import create_service_app
from chassis.db import Database
from chassis.errors import DomainError
from chassis.idempotency import (
    IdempotencyKey,
    IdempotencyKeyHeader,
    Recorder,
    purge_idempotency_keys,
    run_idempotently,
)
from chassis.testkit import TokenMinter

KEYS = IdempotencyKey.__table__
# conftest's test table, where the use case leaves its effect.
effects = Table(
    "effects",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("event_id", Uuid),
    Column("note", String(100)),
)


class Thing(BaseModel):
    note: str


class Taken(DomainError):
    code = "taken"


class Controls:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_after_effect = False
        self.hold_only_the_first = False  # later requests run while the first is held


def build_app(db: Database, controls: Controls):
    router = APIRouter()

    @router.post("/api/things/", status_code=201)
    async def create(
        request: Request,
        body: Thing,
        user: Annotated[int, Header(alias="X-Test-User")],
        key: IdempotencyKeyHeader = None,
    ):
        def use_case(recorder: Recorder) -> dict:
            first = not controls.entered.is_set()
            controls.entered.set()
            if first or not controls.hold_only_the_first:
                controls.release.wait(10)
            if body.note == "taken":
                raise Taken("That one is taken.")
            with db.engine.begin() as connection:
                effect_id = connection.execute(
                    effects.insert()
                    .values(event_id=func.gen_random_uuid(), note=body.note)
                    .returning(effects.c.id)
                ).scalar_one()
                # Keys in an order JSONB would not keep: a replay must not reorder them.
                result = {"note": body.note, "id": effect_id}
                recorder.record(connection, result)
                if controls.fail_after_effect:
                    raise RuntimeError("crash after the effect, before the commit")
            return result

        answer: dict = {}
        if request.url.path.startswith("/api/located/"):
            # An answer with its own media type and a Location read from its text (FHIR's create).
            answer = {
                "media_type": "application/vnd.thing+json",
                "headers": lambda text: {"Location": f"/api/things/{json.loads(text)['id']}"},
            }
        return await run_idempotently(
            request, key, user, db, use_case, serialize=json.dumps, status_code=201, **answer
        )

    router.add_api_route("/api/located/", create, methods=["POST"], status_code=201)

    return create_service_app(
        name="test",
        title="test",
        description="test",
        routers=[router],
        status_of={Taken: 409},
        token_verifier=TokenMinter().verifier(),
        readiness={},
        database=db,
    )


@pytest.fixture
def controls() -> Controls:
    return Controls()


@pytest.fixture
def client(db: Database, controls: Controls) -> Iterator[TestClient]:
    with TestClient(build_app(db, controls), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def effect_count(db: Database) -> Callable[[], int]:
    def count() -> int:
        with db.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(effects))

    return count


def post(client: TestClient, note: str, *, key: str | None = "k-1", user: int = 7):
    headers = {"X-Test-User": str(user)}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/things/", json={"note": note}, headers=headers)


def test_a_retry_gets_the_first_answer_and_changes_nothing(client, effect_count):
    first = post(client, "a")
    again = post(client, "a")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # byte for byte, keys in their order
    assert again.headers["content-type"] == "application/json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert effect_count() == 1


def test_a_replay_has_the_first_answers_media_type_and_location(client, effect_count):
    headers = {"X-Test-User": "7", "Idempotency-Key": "located-1"}
    first = client.post("/api/located/", json={"note": "a"}, headers=headers)
    again = client.post("/api/located/", json={"note": "a"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert first.headers["content-type"] == again.headers["content-type"] == "application/vnd.thing+json"
    assert first.headers["location"] == again.headers["location"] == f"/api/things/{first.json()['id']}"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert effect_count() == 1
    # A refusal is still a problem (no Location: nothing was made), replayed as such.
    refused = {**headers, "Idempotency-Key": "located-2"}
    taken = [client.post("/api/located/", json={"note": "taken"}, headers=refused) for _ in range(2)]
    assert [t.status_code for t in taken] == [409, 409]
    assert all(t.headers["content-type"] == "application/problem+json" for t in taken)
    assert all("location" not in t.headers for t in taken)
    assert taken[1].headers["Idempotent-Replayed"] == "true"


def test_the_body_is_compared_as_json_and_the_path_without_its_slash(client, effect_count):
    first = post(client, "a")
    again = client.post(
        "/api/things",
        content=b'{ "note" :  "a" }',
        headers={"X-Test-User": "7", "Idempotency-Key": "k-1", "Content-Type": "application/json"},
    )
    assert again.status_code == 201 and again.json() == first.json()
    assert effect_count() == 1


def test_the_same_key_with_another_body_is_a_422_naming_the_header(client, effect_count):
    post(client, "a")
    other = post(client, "b")
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert effect_count() == 1


def test_keys_belong_to_their_user(client, effect_count):
    assert post(client, "a", user=7).status_code == 201
    assert post(client, "b", user=8).status_code == 201
    assert effect_count() == 2


def test_without_a_key_every_request_runs(client, effect_count):
    post(client, "a", key=None)
    post(client, "a", key=None)
    assert effect_count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_a_422_and_nothing_runs(client, effect_count, key):
    answer = client.post(
        "/api/things/",
        json={"note": "a"},
        headers=[("X-Test-User", "7"), ("Idempotency-Key", key.encode())],
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
    assert effect_count() == 0


def test_a_key_still_running_is_a_409(client, controls, effect_count):
    controls.release.clear()
    answers = []
    first = threading.Thread(target=lambda: answers.append(post(client, "a")))
    first.start()
    assert controls.entered.wait(10)
    concurrent = post(client, "a")
    controls.release.set()
    first.join(10)
    assert concurrent.status_code == 409
    assert concurrent.json()["code"] == "idempotency_key_in_flight"
    assert answers[0].status_code == 201
    assert post(client, "a").json() == answers[0].json()
    assert effect_count() == 1


def test_a_request_that_outlived_its_lease_leaves_the_key_to_the_retry_that_took_it_over(
    client, db, controls, effect_count
):
    controls.release.clear()
    controls.hold_only_the_first = True
    answers = []
    first = threading.Thread(target=lambda: answers.append(post(client, "a")))
    first.start()
    assert controls.entered.wait(10)
    with db.engine.begin() as connection:  # the first request has run past its claim's lease
        connection.execute(update(KEYS).values(leased_until=func.now() - timedelta(seconds=1)))
    retry = post(client, "a")
    controls.release.set()
    first.join(10)

    assert retry.status_code == 201
    assert answers[0].status_code == 409
    assert answers[0].json()["code"] == "idempotency_key_in_flight"
    assert effect_count() == 1  # the late first request's effect rolled back
    replay = post(client, "a")
    assert replay.json() == retry.json()
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_refusal_is_replayed_too(client, effect_count):
    first = post(client, "taken")
    again = post(client, "taken")
    assert first.status_code == again.status_code == 409
    assert again.content == first.content
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["content-type"] == "application/problem+json"


def test_an_effect_that_did_not_commit_leaves_no_answer_and_a_retry_runs(client, controls, effect_count):
    controls.fail_after_effect = True
    assert post(client, "a").status_code == 500
    assert effect_count() == 0
    controls.fail_after_effect = False
    retried = post(client, "a")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert effect_count() == 1


def test_a_key_older_than_a_day_is_new_again_and_retention_deletes_it(client, db, effect_count):
    post(client, "a")
    with db.engine.begin() as connection:
        connection.execute(update(KEYS).values(created_at=func.now() - timedelta(hours=25)))
    assert post(client, "b").status_code == 201  # the old key is forgotten, not a mismatch
    assert effect_count() == 2
    with db.engine.begin() as connection:
        connection.execute(update(KEYS).values(created_at=func.now() - timedelta(hours=25)))
    post(client, "c", key="k-2")
    assert purge_idempotency_keys(db) == 1
    with db.engine.connect() as connection:
        assert connection.scalar(select(KEYS.c.key)) == "k-2"

import pytest
from sqlalchemy import create_engine, text
from support import assert_problem

from chassis.testkit import wait_until
from identity.adapters.user_status_listener import UserStatusListener
from identity.adapters.user_statuses import UserStatuses


@pytest.fixture
def engine(app):
    engine = create_engine(app.state.db.url)
    yield engine
    engine.dispose()


@pytest.fixture
def listening(engine, app):
    statuses = UserStatuses(engine)
    listener = UserStatusListener(statuses, app.state.db.url)
    listener.start()
    wait_until(lambda: statuses.trusted)
    yield statuses
    listener.stop()


def set_role(engine, user_id: int, role: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET role = :role WHERE id = :id"), {"role": role, "id": user_id}
        )


def test_a_change_made_directly_in_the_database_evicts_the_cached_user(api, engine, listening):
    user = api.register()
    assert listening.lookup(user["id"]).role == "patient"
    assert listening.is_cached(user["id"])
    set_role(engine, user["id"], "doctor")
    wait_until(lambda: not listening.is_cached(user["id"]))
    assert listening.lookup(user["id"]).role == "doctor"


def test_an_unknown_user_has_no_status(listening):
    assert listening.lookup(2**62) is None


def test_the_cache_is_not_used_without_a_listener(api, engine):
    statuses = UserStatuses(engine)
    user = api.register()
    statuses.lookup(user["id"])
    assert not statuses.is_cached(user["id"])
    set_role(engine, user["id"], "doctor")
    assert statuses.lookup(user["id"]).role == "doctor"


def test_a_lookup_that_raced_with_an_invalidation_does_not_cache_what_it_read(api, engine):
    user = api.register()

    class RacingStatuses(UserStatuses):
        def _load(self, user_id):
            status = super()._load(user_id)
            self.forget(user_id)  # a notification arrives while the query runs
            return status

    statuses = RacingStatuses(engine)
    statuses.set_trusted(True)
    statuses.lookup(user["id"])
    assert not statuses.is_cached(user["id"])


def test_the_listener_reconnects_and_changes_made_meanwhile_are_not_missed(api, engine, listening):
    user = api.register()
    listening.lookup(user["id"])
    with engine.begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'identity-user-status-listener' AND datname = current_database()"
            )
        )
    set_role(engine, user["id"], "doctor")
    wait_until(lambda: listening.trusted and listening.lookup(user["id"]).role == "doctor")


def test_a_role_changed_and_changed_back_directly_in_the_database_still_ends_the_tokens_from_before(
    api, engine
):
    user, tokens = api.signed_in()
    assert api.verify(tokens).headers["x-user-role"] == "patient"  # cached by the app
    set_role(engine, user["id"], "doctor")
    set_role(engine, user["id"], "patient")
    # The trigger records the change (no role_changed_at given); the NOTIFY evicts the cached user.
    wait_until(lambda: api.verify(tokens).status_code == 401, what="the token from before refused")
    assert "role has changed" in assert_problem(api.verify(tokens), 401)["detail"]
    assert api.verify(api.login(user["email"])).headers["x-user-role"] == "patient"

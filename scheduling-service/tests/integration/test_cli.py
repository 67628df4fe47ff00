"""The ``scheduling`` command line."""

import io
from contextlib import redirect_stdout

from sqlalchemy import create_engine, inspect

from chassis.settings import normalise_database_url
from scheduling.cli import main


def test_migrate_brings_an_empty_database_to_the_latest_schema(make_database, monkeypatch):
    url = make_database("scheduling_cli")
    monkeypatch.setenv("SCHEDULING_DATABASE_URL", url)
    assert main(["migrate"]) == 0
    engine = create_engine(normalise_database_url(url))
    assert {"doctors", "timeslots", "cancelled_reservations", "outbox_events", "processed_events"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
    assert main(["migrate"]) == 0  # already at the latest: nothing to do


def test_dead_letters_lists_what_kept_failing(amqp_url):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["dead-letters", "--amqp-url", amqp_url, "list"]) == 0
    assert all(line.startswith("{") for line in out.getvalue().splitlines())

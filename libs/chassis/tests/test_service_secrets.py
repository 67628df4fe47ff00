"""Client secrets of the local stack: created once, whoever comes first, never seen half written."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from chassis.service_auth import client_secrets, service_secret


def test_processes_starting_together_all_read_the_one_secret_that_was_created(tmp_path):
    with ThreadPoolExecutor(16) as pool:
        read = list(pool.map(lambda _: service_secret(tmp_path, "booking"), range(64)))
    assert len(set(read)) == 1 and len(read[0]) >= 32
    assert stat.S_IMODE((tmp_path / "booking").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["booking"]  # no staged file left behind


def test_a_missing_secret_in_a_read_only_place_is_none(tmp_path):
    assert service_secret(tmp_path / "absent", "booking", create=False) is None


def test_identity_reads_every_clients_file_and_the_json_on_top(tmp_path):
    (tmp_path / "booking").write_text("from-file\n")
    table = client_secrets(tmp_path, ["booking", "scheduling"], '{"scheduling": "from-json"}')
    assert table["booking"] == "from-file"
    assert table["scheduling"] == "from-json"

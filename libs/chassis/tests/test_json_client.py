"""``JsonClient``: keep-alive connections reused, a connection the server closed resent once,
and the two failures a caller must tell apart (never sent, or sent without an answer)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chassis.http import JsonClient, NoAnswer, Unreachable
from chassis.testkit import free_port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.client_address[1], self.path, body, self.headers.get("Authorization")))
        if body.get("sleep"):
            time.sleep(body["sleep"])
        answer = json.dumps({"echo": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if body.get("then_close"):
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/base"


def test_calls_reuse_one_connection_and_carry_json_and_headers(server):
    client = JsonClient(url_of(server), timeout=2)
    answers = [client.post("/x", {"n": n}, headers={"Authorization": "Bearer t"}) for n in range(5)]
    client.close()
    assert [a.status for a in answers] == [200] * 5
    assert [a.json()["echo"]["n"] for a in answers] == [0, 1, 2, 3, 4]
    ports = {port for port, _, _, _ in server.seen}
    assert len(ports) == 1, "every call should have reused the first connection"
    assert {path for _, path, _, _ in server.seen} == {"/base/x"}
    assert {auth for _, _, _, auth in server.seen} == {"Bearer t"}


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_call_sent_once_more(server):
    client = JsonClient(url_of(server), timeout=2)
    # The answer says keep-alive, but the server closes the connection right after it (the
    # race of a server closing an idle connection as the client reuses it).
    assert client.post("/x", {"n": 1, "then_close": True}).status == 200
    time.sleep(0.1)
    assert client.post("/x", {"n": 2}).json()["echo"]["n"] == 2
    client.close()
    assert [body["n"] for _, _, body, _ in server.seen] == [1, 2]


def test_a_server_that_is_not_there_is_unreachable():
    port = free_port()  # nobody listens on it
    client = JsonClient(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(Unreachable):
        client.post("/x", {})


def test_an_answer_later_than_the_timeout_is_no_answer(server):
    client = JsonClient(url_of(server), timeout=0.2)
    with pytest.raises(NoAnswer):
        client.post("/x", {"sleep": 1})
    # The client is still usable afterwards, on a new connection.
    assert client.post("/x", {"n": 3}).status == 200
    client.close()

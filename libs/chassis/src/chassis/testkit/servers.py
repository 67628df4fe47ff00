"""Stand-ins of other services, served over real HTTP: an ASGI app on a free local port."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from chassis.testkit.ports import free_port


class ServerThread:
    """Serve an ASGI app with uvicorn on a free local port, in a daemon thread.

    ``with ServerThread(app) as server: server.url``: started on entry, stopped on exit.
    """

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

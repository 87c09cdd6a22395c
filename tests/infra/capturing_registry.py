"""A contributor's own registry on 127.0.0.1: it asks every client for Basic credentials and records
whatever Authorization header it is sent (a test's witness that no secret reached it)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from .http_thread import ServerThread


class CapturingRegistry:
    """A contributor's own registry on 127.0.0.1: it asks every client for Basic credentials and keeps
    whatever Authorization header it is sent."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        capturing = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                capturing.authorizations.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="contributor"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

        self._server = ServerThread(Handler, name="capturing-registry")
        self.host = self._server.host

    def stop(self) -> None:
        self._server.stop()

"""An HTTP server in a thread of the test process, on an ephemeral port of a loopback address, that
stops at once: the one way the tests' small servers (registries that lie, a KMS, token realms,
proxies, a web server) run.

`serve_forever` checks for a shutdown only between polls, 0.5 s apart by default: paid at every stop,
that was most of a minute of the suite. Handler threads are daemons and are not waited for, so a
client still connected (or a handler stalled on purpose) never holds up the end of a test.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

POLL_SECONDS = 0.01  # how long `stop()` may wait for the serving loop to notice


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that went away mid-answer is what many tests do on purpose (a deadline, a cut
        # connection): no traceback in the log for it. Anything else is printed as usual.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class ServerThread:
    """`handler` served on `bind`:<a free port>, optionally over TLS, from `start()` until `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, bind: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None, name: str = "test-http-server", start: bool = True) -> None:
        self.httpd = _Server((bind, 0), handler)  # port 0: the kernel picks a free one
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        name=name, daemon=True)
        if start:
            self.start()

    @property
    def address(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def host(self) -> str:
        """address:port, as a registry reference or STORAGE_EMULATOR_HOST names it."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

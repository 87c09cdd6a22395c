"""A registry on 127.0.0.1 that serves exactly what a test tells it to, lies included.

Unlike `FaultInjectingProxy`, nothing real stands behind it: each path answers with a `Reply` the
test wrote, so a manifest can name digests no real registry would accept, a blob can trickle in a
byte at a time or stall mid-body, and a blob request can be redirected to ``file://`` or in a loop.

    lying = LyingRegistry()
    lying.image("evil/app", "v1", config={...}, layers=[blob])   # a manifest, a config, layer blobs
    lying.replies["/v2/evil/app/blobs/sha256:..."] = Reply(trickle=0.05, body=blob)

It can speak HTTPS (`tls=test_ca.server_context()`, see `tests/infra/tls.py`), listen on another
loopback address (`bind="127.0.0.2"`: another host, as far as any client can tell), demand
authorization (`require_authorization`), and it records every request with its headers and body in
`seen`, so a test can tell exactly what a client sent where. It also serves as a token server or
an upload's storage (a reply at any path, for GET, HEAD, POST or PUT).

Every loop in it is bounded: a trickle or a stall gives up after `MAX_SECONDS`, and `stop()` ends
them at once.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http_thread import ServerThread

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MAX_SECONDS = 60.0


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def outcome_within(action: Callable[[], object], give_up_after: float = 30.0) -> tuple[object, float]:
    """What `action` returned or raised, and how long it took; fails the test if it is still running
    after `give_up_after` seconds (a client that a lying server has made to hang)."""
    outcome: list = []
    started = time.monotonic()

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(give_up_after)
    assert outcome, f"still hanging after {give_up_after} s"
    return outcome[0], time.monotonic() - started


@dataclass
class Reply:
    """What one path answers. `trickle`: seconds between single bytes of the body; `stall_after`:
    send this many body bytes, then wait until `release` is set (or the server stops) before the rest."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float | None = None
    stall_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    trickle_headers: float | None = None  # seconds between single bytes of the status line and headers
    reason: str | None = None  # the status line's reason phrase, when not the standard one


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: what a client sent, credentials included."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class LyingRegistry:
    def __init__(self, *, tls: ssl.SSLContext | None = None, bind: str = "127.0.0.1") -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[str] = []
        self.seen: list[Seen] = []
        self.accepted_authorizations: set[str] = set()
        self.challenge = ""
        self.scheme = "https" if tls else "http"
        self.stopping = threading.Event()
        self._server = ServerThread(self._handler(), bind=bind, tls=tls, name="lying-registry")

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def require_authorization(self, challenge: str, *accepted: str) -> None:
        """Answer every /v2/ request that lacks one of the `accepted` Authorization values with a 401
        carrying `challenge` (a WWW-Authenticate value), as a registry that wants credentials does."""
        self.challenge = challenge
        self.accepted_authorizations = set(accepted)

    def blob(self, repository: str, data: bytes, **reply: Any) -> str:
        digest = digest_of(data)
        self.replies[f"/v2/{repository}/blobs/{digest}"] = Reply(body=data, **reply)
        return digest

    def manifest(self, repository: str, tag: str, manifest: dict[str, Any] | bytes,
                 media_type: str = OCI_MANIFEST) -> str:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        reply = Reply(body=body, headers={"Content-Type": media_type})
        digest = digest_of(body)
        self.replies[f"/v2/{repository}/manifests/{tag}"] = reply
        self.replies[f"/v2/{repository}/manifests/{digest}"] = reply
        return digest

    def image(self, repository: str, tag: str, *, config: dict[str, Any], layers: list[bytes],
              layer_digests: list[str] | None = None) -> dict[str, Any]:
        """Serve a config, layer blobs and a manifest naming them (or naming `layer_digests` instead)."""
        config_bytes = json.dumps(config).encode()
        descriptors = [{"mediaType": OCI_LAYER_GZIP, "size": len(layer), "digest": self.blob(repository, layer)}
                       for layer in layers]
        if layer_digests is not None:
            for descriptor, digest in zip(descriptors, layer_digests, strict=True):
                descriptor["digest"] = digest
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "size": len(config_bytes),
                               "digest": self.blob(repository, config_bytes)},
                    "layers": descriptors}
        self.manifest(repository, tag, manifest)
        return manifest

    def count(self, path_part: str) -> int:
        return sum(1 for path in self.requests if path_part in path)

    def authorizations(self) -> list[str]:
        """Every Authorization header that reached this server."""
        return [seen.authorization for seen in self.seen if seen.authorization is not None]

    def everything_received(self) -> bytes:
        """All that clients sent here (request lines, headers, bodies), to search for a secret."""
        return b"\n".join(f"{s.method} {s.path}?{s.query}\n".encode() + json.dumps(s.headers).encode() + b"\n" + s.body
                          for s in self.seen)

    def stop(self) -> None:
        self.stopping.set()
        for reply in self.replies.values():
            reply.release.set()
        self._server.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def do_POST(self) -> None:
                self._answer(send_body=True)

            def do_PUT(self) -> None:
                self._answer(send_body=True)

            def _answer(self, *, send_body: bool) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(path)
                server.seen.append(Seen(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = self._reply(path)
                self.close_connection = True
                try:
                    self.send_response(reply.status, reply.reason)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    if reply.trickle_headers is not None:
                        self._trickle_headers(reply.trickle_headers)
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up, as it should
                if send_body:
                    self._send_body(reply)

            def _reply(self, path: str) -> Reply:
                if (server.accepted_authorizations and path.startswith("/v2/")
                        and self.headers.get("Authorization") not in server.accepted_authorizations):
                    return Reply(status=401, headers={"WWW-Authenticate": server.challenge}, body=json.dumps(
                        {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode())
                if path == "/v2/":
                    return Reply(body=b"{}")
                return server.replies.get(path) or Reply(
                    status=404, body=json.dumps({"errors": [{"code": "NOT_FOUND", "message": path}]}).encode())

            def _trickle_headers(self, pause: float) -> None:
                """Send what is buffered so far (the status line, some headers) a byte at a time."""
                pending, self._headers_buffer = b"".join(self._headers_buffer), []
                started = time.monotonic()
                for position in range(len(pending)):
                    if server.stopping.is_set() or time.monotonic() - started > MAX_SECONDS:
                        return
                    self.wfile.write(pending[position:position + 1])
                    self.wfile.flush()
                    time.sleep(pause)

            def _send_body(self, reply: Reply) -> None:
                started = time.monotonic()
                try:
                    if reply.trickle is not None:
                        for position in range(len(reply.body)):
                            if server.stopping.is_set() or time.monotonic() - started > MAX_SECONDS:
                                return
                            self.wfile.write(reply.body[position:position + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                        return
                    if reply.stall_after is not None:
                        self.wfile.write(reply.body[:reply.stall_after])
                        self.wfile.flush()
                        if not reply.release.wait(MAX_SECONDS) or server.stopping.is_set():
                            return
                        self.wfile.write(reply.body[reply.stall_after:])
                        return
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

"""A registry on 127.0.0.1 that serves exactly what a test tells it to, lies included.

Unlike `FaultInjectingProxy`, nothing real stands behind it: each path answers with a `Reply` the
test wrote, so a manifest can name digests no real registry would accept, a blob can trickle in a
byte at a time or stall mid-body, and a blob request can be redirected to ``file://`` or in a loop.

    lying = LyingRegistry()
    lying.image("evil/app", "v1", config={...}, layers=[blob])   # a manifest, a config, layer blobs
    lying.replies["/v2/evil/app/blobs/sha256:..."] = Reply(trickle=0.05, body=blob)

Every loop in it is bounded: a trickle or a stall gives up after `MAX_SECONDS`, and `stop()` ends
them at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MAX_SECONDS = 60.0


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


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


class LyingRegistry:
    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lying-registry", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._httpd.server_address[1]}"

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
        for descriptor, digest in zip(descriptors, layer_digests or []):
            descriptor["digest"] = digest
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "size": len(config_bytes),
                               "digest": self.blob(repository, config_bytes)},
                    "layers": descriptors}
        self.manifest(repository, tag, manifest)
        return manifest

    def count(self, path_part: str) -> int:
        return sum(1 for path in self.requests if path_part in path)

    def stop(self) -> None:
        self.stopping.set()
        for reply in self.replies.values():
            reply.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def _answer(self, *, send_body: bool) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                if path == "/v2/":
                    reply = Reply(body=b"{}")
                else:
                    reply = server.replies.get(path) or Reply(
                        status=404, body=json.dumps({"errors": [{"code": "NOT_FOUND", "message": path}]}).encode())
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if send_body:
                    self._send_body(reply)

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

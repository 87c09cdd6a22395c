"""Secrets that travel in URLs never reach a message, a report or a traceback: a git remote given as a URL
with a token in it (GIT_REMOTE=https://x-access-token:TOKEN@host/exchange.git), and a GCS resumable-upload
session URI, which lets whoever holds it write the object without any other credential."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from exchange_cli.storage.bucket import StorageError, open_bucket
from tests.infra.commands import closed_port, exchange, one_error_line
from tests.infra.failure_world import assert_untouched, process_args, text_of_every_file
from tests.infra.gcs import GcsEmulator
from tests.infra.gitrepo import ExchangeRepo
from tests.infra.http_thread import ServerThread
from tests.infra.process_world import reject_pushes

TOKEN = "ghs_t0ken-that-must-not-leak"


# A git remote given as a URL with a token ----------------------------------------------------------


def test_a_remote_url_with_a_token_never_shows_it_when_the_push_fails(exchange_repo: ExchangeRepo, failure_world,
                                                                      tmp_path: Path) -> None:
    """The remote answers, but refuses the push: the run rolls back, and every line about the remote,
    the error, the JSON on stdout and the run reports name it without its token."""
    remote = tmp_path / "remote.git"
    reject_pushes(remote)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    head = exchange_repo.git("rev-parse", "HEAD")
    url = f"file://ci-bot:{TOKEN}@localhost{remote}"
    result = exchange(*process_args(failure_world, bucket.as_uri(), "--remote", url, "--format", "json"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: push to file://***@localhost" in result.stderr, result.stderr
    assert "rolled back" in result.stderr and json.loads(result.stdout)["ok"] is False
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in text_of_every_file(failure_world["reports"], bucket, exchange_repo.root)
    assert_untouched(exchange_repo, head)


@pytest.mark.parametrize("given", ["--remote", "origin"])
def test_an_unreachable_remote_is_one_line_without_its_token(exchange_repo: ExchangeRepo, failure_world, tmp_path: Path,
                                                             given: str) -> None:
    url = f"https://x-access-token:{TOKEN}@127.0.0.1:{closed_port()}/acme/exchange.git"
    if given == "origin":
        exchange_repo.git("remote", "set-url", "origin", url)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    head = exchange_repo.git("rev-parse", "HEAD")
    extra = ["--remote", url] if given == "--remote" else []
    result = exchange(*process_args(failure_world, bucket.as_uri(), *extra), env={"GIT_TERMINAL_PROMPT": "0"})
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    shown = "https://***@127.0.0.1" if given == "--remote" else "origin"
    assert line.startswith(f"error: cannot reach {shown}"), line
    assert "Couldn't connect to server" in line or "Connection refused" in line, line
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in text_of_every_file(failure_world["reports"], bucket)
    assert [p.name for p in bucket.iterdir() if p.stat().st_size] == []
    assert_untouched(exchange_repo, head)


# A GCS resumable upload's session URI ---------------------------------------------------------------

RESUMABLE_THRESHOLD = 8 * 1024 * 1024  # google-cloud-storage uploads anything larger in a resumable session


class RefusingChunksProxy:
    """A plain HTTP front for the GCS emulator that answers every resumable chunk (a PUT to the session
    URI) with `status`, as GCS does when the session's credentials lose access midway."""

    def __init__(self, upstream: str, status: int) -> None:
        self.upstream, self.status = upstream, status
        self.session_uris: list[str] = []
        self._server = ServerThread(self._handler(), name="gcs-proxy")

    @property
    def host(self) -> str:
        return self._server.url

    def stop(self) -> None:
        self._server.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def do_DELETE(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "upload_id=" in self.path:
                    proxy.session_uris.append(self.path)
                    self._reply(proxy.status, b'{"error": {"code": %d, "message": "refused"}}' % proxy.status, {})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
                upstream = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                            allow_redirects=False, timeout=30)
                kept = {k: v for k, v in upstream.headers.items()
                        if k.lower() in ("content-type", "location", "x-goog-generation", "range", "etag")}
                self._reply(upstream.status_code, upstream.content, kept)

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def refusing_proxy(gcs_emulator: GcsEmulator, request: pytest.FixtureRequest) -> Iterator[RefusingChunksProxy]:
    proxy = RefusingChunksProxy(gcs_emulator.host, request.param)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("refusing_proxy", [403, 400, 404, 410], indirect=True)
def test_a_failed_resumable_upload_never_shows_its_session_uri(gcs_emulator: GcsEmulator, refusing_proxy,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", refusing_proxy.host)
    monkeypatch.delenv("GCLOUD_SERVICE_ACCOUNT", raising=False)
    name = f"resumable-secrets-{refusing_proxy.status}"
    gcs_emulator.create_bucket(name)
    source = tmp_path / "big.tgz"
    source.write_bytes(os.urandom(RESUMABLE_THRESHOLD + 1))
    sha384 = hashlib.sha384(source.read_bytes()).hexdigest()
    bucket = open_bucket(f"gs://{name}/rootfs", retry_seconds=2)
    with pytest.raises(StorageError) as raised:
        bucket.upload("acme-big.tgz", source, size=source.stat().st_size, sha384=sha384)
    (session,) = set(refusing_proxy.session_uris)
    upload_id = session.split("upload_id=", 1)[1].split("&", 1)[0]
    message = str(raised.value)
    assert upload_id not in message, message
    assert message.startswith(f"gs://{name}/rootfs: uploading acme-big.tgz"), message
    assert "\n" not in message, message
    assert bucket.stat("acme-big.tgz") is None

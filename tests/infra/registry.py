"""Fixtures: real Docker registries (Debian's ``docker-registry``), one per flavour of authentication.

- ``registry``: anonymous, plain HTTP on 127.0.0.1 (dockerd treats 127.0.0.0/8 as insecure, so the
  dockerd fixture can ``docker push`` into it).
- ``auth_registry``: htpasswd Basic auth (bcrypt), with ``.username`` and ``.password``.
- ``token_registry``: bearer-token auth whose realm is a `TokenServer` running in the test process;
  it signs RS256 JWTs with a key whose self-signed certificate is the registry's ``rootcertbundle``.

Each starts once per session, stores its blobs under ``.storage_dir``, and is pushed to through the
HTTP API (monolithic POST + PUT uploads), so tests can hand-craft any manifest they need.
`FaultInjectingProxy` fronts a registry to fail or cut off chosen requests and to count them.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests
import yaml
import zstandard

from exchange_cli.image.model import DEFAULT_PLATFORM, Platform

from . import free_port, require_executable
from .http_thread import ServerThread
from .json_http import JsonHandler

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALL_MANIFESTS = f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {OCI_INDEX}"

Style = Literal["docker", "oci"]
CONFIG_TYPES = {"docker": "application/vnd.docker.container.image.v1+json",
                "oci": "application/vnd.oci.image.config.v1+json"}
MANIFEST_TYPES = {"docker": DOCKER_MANIFEST, "oci": OCI_MANIFEST}
INDEX_TYPES = {"docker": DOCKER_MANIFEST_LIST, "oci": OCI_INDEX}
LAYER_TYPES = {
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "zstd"): "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ("docker", "tar"): "application/vnd.docker.image.rootfs.diff.tar",
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "tar"): "application/vnd.oci.image.layer.v1.tar",
}
STARTUP_TIMEOUT_SECONDS = 30.0
STARTUP_ATTEMPTS = 3


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def compression_of(blob: bytes) -> str:
    if blob.startswith(b"\x1f\x8b"):
        return "gzip"
    if blob.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "tar"


def decompress(blob: bytes) -> bytes:
    kind = compression_of(blob)
    if kind == "gzip":
        return gzip.decompress(blob)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True).read()
    return blob


def default_config(layers: list[bytes], platform: Platform = DEFAULT_PLATFORM) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(decompress(layer)) for layer in layers]},
        "history": [{"created_by": f"exchange test layer {i}"} for i in range(len(layers))],
    }
    if platform.variant:
        config["variant"] = platform.variant
    return config


@dataclass
class RegistryServer:
    """A running ``docker-registry serve``; push helpers talk its HTTP API directly."""

    process: subprocess.Popen
    host: str
    storage_dir: Path
    log_path: Path
    push_headers: Callable[[str], dict[str, str]] = lambda repository: {}
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256_digest(data)
        headers = self.push_headers(repository)
        started = self.session.post(f"{self.url}/v2/{repository}/blobs/uploads/", headers=headers)
        _expect(started, 202, f"starting an upload to {repository}")
        location = urljoin(self.url, started.headers["Location"])
        finished = self.session.put(location, params={"digest": digest}, data=data,
                                    headers={**headers, "Content-Type": "application/octet-stream"})
        _expect(finished, 201, f"uploading blob {digest} to {repository}")
        return digest

    def push_manifest(self, repository: str, reference: str | None, manifest: dict[str, Any] | bytes,
                      media_type: str) -> str:
        """PUT a manifest under a tag, or by its own digest when `reference` is None."""
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=3).encode()
        digest = sha256_digest(body)
        response = self.session.put(f"{self.url}/v2/{repository}/manifests/{reference or digest}", data=body,
                                    headers={**self.push_headers(repository), "Content-Type": media_type})
        _expect(response, 201, f"pushing manifest {reference or digest} to {repository}")
        return digest

    def push_image(self, repository: str, tag: str | None, layers: list[bytes], config: dict[str, Any] | None = None,
                   style: Style = "docker", platform: Platform = DEFAULT_PLATFORM) -> str:
        """Push `layers` (each gzip, zstd or a plain tar, as given) and a config; the manifest digest."""
        config_bytes = json.dumps(config or default_config(layers, platform), sort_keys=True).encode()
        layer_descriptors = [
            {"mediaType": LAYER_TYPES[style, compression_of(layer)], "size": len(layer),
             "digest": self.push_blob(repository, layer)}
            for layer in layers
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPES[style],
            "config": {"mediaType": CONFIG_TYPES[style], "size": len(config_bytes),
                       "digest": self.push_blob(repository, config_bytes)},
            "layers": layer_descriptors,
        }
        return self.push_manifest(repository, tag, manifest, MANIFEST_TYPES[style])

    def push_index(self, repository: str, tag: str | None, manifests: dict[Platform, str],
                   style: Style = "docker") -> str:
        """Push a manifest list (docker) or image index (oci) of manifests already in `repository`."""
        entries = []
        for platform, digest in manifests.items():
            media_type, size = self.describe_manifest(repository, digest)
            described = {"os": platform.os, "architecture": platform.architecture}
            if platform.variant:
                described["variant"] = platform.variant
            entries.append({"mediaType": media_type, "size": size, "digest": digest, "platform": described})
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPES[style], "manifests": entries}
        return self.push_manifest(repository, tag, index, INDEX_TYPES[style])

    def describe_manifest(self, repository: str, digest: str) -> tuple[str, int]:
        response = self.session.head(f"{self.url}/v2/{repository}/manifests/{digest}",
                                     headers={**self.push_headers(repository), "Accept": ALL_MANIFESTS})
        _expect(response, 200, f"describing manifest {digest} in {repository}")
        return response.headers["Content-Type"], int(response.headers["Content-Length"])

    def blob_data_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.storage_dir / "docker/registry/v2/blobs" / algorithm / hex_digest[:2] / hex_digest / "data"

    def stop(self) -> None:
        self.session.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _expect(response: requests.Response, status: int, doing: str) -> None:
    if response.status_code != status:
        raise AssertionError(f"registry fixture: {doing}: {response.status_code} {response.reason}: {response.text[:500]}")


def start_registry(workdir: Path, *, auth: dict[str, Any] | None = None,
                   push_headers: Callable[[str], dict[str, str]] | None = None) -> RegistryServer:
    """A registry on a free port. The port is picked, then bound by the registry: another process (a
    parallel test worker) may take it in between, and then a new one is picked."""
    for _ in range(STARTUP_ATTEMPTS - 1):
        try:
            return _start_registry_on(free_port(), workdir, auth, push_headers)
        except PortTaken:
            continue
    return _start_registry_on(free_port(), workdir, auth, push_headers)


class PortTaken(AssertionError):
    pass


def _start_registry_on(port: int, workdir: Path, auth: dict[str, Any] | None,
                       push_headers: Callable[[str], dict[str, str]] | None) -> RegistryServer:
    executable = require_executable("docker-registry")
    storage_dir = workdir / "storage"
    storage_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage_dir)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        # Lets tests push manifests with foreign (non-distributable) layers that point elsewhere.
        "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
    }
    if auth:
        config["auth"] = auth
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([executable, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    server = RegistryServer(process, f"127.0.0.1:{port}", storage_dir, log_path)
    if push_headers is not None:
        server.push_headers = push_headers
    _wait_until_serving(server)
    return server


def _wait_until_serving(server: RegistryServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.log_path.read_text(errors="replace")[-3000:]
            failure = PortTaken if "address already in use" in log else AssertionError
            raise failure(f"docker-registry exited with {server.process.returncode}:\n{log}")
        try:
            if requests.get(f"{server.url}/v2/", timeout=2).status_code in (200, 401):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"docker-registry did not answer on {server.url} within {STARTUP_TIMEOUT_SECONDS} s:\n"
                         f"{server.log_path.read_text(errors='replace')[-3000:]}")


@dataclass
class AuthRegistry(RegistryServer):
    username: str = ""
    password: str = ""


def start_auth_registry(workdir: Path, username: str, password: str) -> AuthRegistry:
    import bcrypt

    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    htpasswd.write_text(f"{username}:{hashed}\n")
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    server = start_registry(workdir, auth={"htpasswd": {"realm": "exchange-test", "path": str(htpasswd)}},
                            push_headers=lambda repository: {"Authorization": f"Basic {basic}"})
    return AuthRegistry(**vars(server), username=username, password=password)


@dataclass
class TokenRequest:
    query: dict[str, list[str]]
    authorization: str | None


class TokenServer:
    """The realm of a token-auth registry: checks Basic credentials and issues JWTs the registry trusts.

    Good credentials get every action asked for; no credentials get a token granting nothing (as a
    public registry does for a private repository); wrong credentials get 401.
    """

    def __init__(self, *, username: str, password: str, service: str = "exchange-test-registry",
                 issuer: str = "exchange-test-token-server") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.username, self.password, self.service, self.issuer = username, password, service, issuer
        self.token_field = "token"
        self.requests: list[TokenRequest] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self._certificate_der = self.certificate.public_bytes(serialization.Encoding.DER)
        self._server = ServerThread(self._handler(), name="token-server", start=False)

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def realm(self) -> str:
        """Plain HTTP, so a client must list `host` as insecure, as it lists the registry."""
        return f"http://{self.host}/token"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def mint(self, access: list[dict[str, Any]], subject: str = "") -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._certificate_der).decode()]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 30,
                  "exp": now + 600, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def push_headers(self, repository: str) -> dict[str, str]:
        token = self.mint([{"type": "repository", "name": repository, "actions": ["pull", "push", "delete"]}])
        return {"Authorization": f"Bearer {token}"}

    def _answer(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests.append(TokenRequest(query, authorization))
        if authorization is not None:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if authorization != expected:
                return 401, {"details": "incorrect username or password"}
        granted = [_scope_access(scope) for scope in query.get("scope", [])] if authorization else []
        return 200, {self.token_field: self.mint(granted, subject=self.username if authorization else ""),
                     "expires_in": 600}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                status, body = (404, {}) if url.path != "/token" else server._answer(
                    parse_qs(url.query), self.headers.get("Authorization"))
                self.reply_json(status, body)

        return Handler


def _scope_access(scope: str) -> dict[str, Any]:
    kind, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    return {"type": kind, "name": name, "actions": actions.split(",")}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Fault:
    """Misbehave on the next `times` requests whose path contains `path_part`: answer `status`; or,
    when `truncate`, send the real headers and half the real body, then hang up; or, when `body` is
    given, send the real headers (but Content-Length) with that body instead of the real one. With
    `hold`, wait until it is set before answering (a download still under way), then answer so."""

    path_part: str
    times: int
    status: int = 503
    truncate: bool = False
    body: bytes | None = None
    hold: threading.Event | None = None


class FaultInjectingProxy:
    """A plain HTTP front for a real registry that injects faults and records every request it sees."""

    FORWARDED_REQUEST_HEADERS = ("Accept", "Authorization", "Range")
    FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "WWW-Authenticate",
                                  "Location", "Docker-Distribution-Api-Version", "Retry-After")

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ServerThread(self._handler(), name="fault-proxy")

    @property
    def host(self) -> str:
        return self._server.host

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, path in self.requests if m == method and path_part in path)

    def stop(self) -> None:
        self._server.stop()

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path_part in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

            def _forward(self, method: str) -> None:
                with proxy._lock:
                    proxy.requests.append((method, self.path))
                fault = proxy._fault_for(self.path)
                if fault is not None and fault.hold is not None:
                    fault.hold.wait(timeout=60)
                    if not fault.truncate and fault.body is None:
                        fault = None
                if fault is not None and not fault.truncate and fault.body is None:
                    self.send_response(fault.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: self.headers[k] for k in proxy.FORWARDED_REQUEST_HEADERS if self.headers.get(k)}
                upstream = requests.request(method, proxy.upstream_url + self.path, headers=headers,
                                            allow_redirects=False, timeout=30)
                body = upstream.content if fault is None or fault.body is None else fault.body
                self.send_response(upstream.status_code)
                for name in proxy.FORWARDED_RESPONSE_HEADERS:
                    if name in upstream.headers and name != "Content-Length":
                        self.send_header(name, upstream.headers[name])
                replaced = fault is not None and fault.body is not None
                length = str(len(body)) if replaced else upstream.headers.get("Content-Length", str(len(body)))
                self.send_header("Content-Length", length)
                self.end_headers()
                if method == "GET":
                    self.wfile.write(body[: len(body) // 2] if fault is not None and fault.truncate else body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass
class TokenRegistry(RegistryServer):
    token_server: TokenServer | None = None


def start_token_registry(workdir: Path, token_server: TokenServer) -> TokenRegistry:
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "token-issuer.pem"
    bundle.write_bytes(token_server.certificate_pem)
    auth = {"token": {"realm": token_server.realm, "service": token_server.service,
                      "issuer": token_server.issuer, "rootcertbundle": str(bundle)}}
    server = start_registry(workdir, auth=auth, push_headers=token_server.push_headers)
    return TokenRegistry(**vars(server), token_server=token_server)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    server = start_auth_registry(tmp_path_factory.mktemp("auth-registry"), "exchange-tester",
                                 f"pw-{secrets.token_urlsafe(12)}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    token_server = TokenServer(username="token-tester", password=f"tk-{secrets.token_urlsafe(12)}")
    token_server.start()
    server = start_token_registry(tmp_path_factory.mktemp("token-registry"), token_server)
    yield server
    server.stop()
    token_server.stop()

"""The registry image source: pulls an image over the Docker Registry HTTP API v2 (OCI distribution).

A tag resolves to a manifest, a manifest list or index resolves to one platform's manifest, and
every byte is verified on the way in: the manifest against its digest, the config against the
manifest, each layer (in `BlobCache.store_layer`) against the manifest and the config's diff_ids.

Transient failures (5xx, 429, a dropped connection, a timeout) are retried with exponential
backoff; a blob download that breaks off restarts from its first byte through a fresh
`store_layer`, so a half-written layer never reaches the cache. 401, 403 and 404 are final.
Plain HTTP is used only for registries listed as insecure; everything else is HTTPS.

No registry can hang a run (`TransferLimits`): every read waits at most `read_timeout`, and every
document and blob has an overall deadline, retries included, of `floor` seconds plus its size at
`min_rate` bytes per second, so a registry that trickles a byte now and then is given up too. A
redirect may lead only to another http(s) URL, and only a few times.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Self, TypeVar

import requests
import urllib3

from ..logs import logger
from ..progress import NullProgress, Progress
from ..reference import ImageReference
from .blobcache import CHUNK, BlobCache, BlobError, VerifyingReader
from .credentials import RegistryCredentials, host_env_var, resolve_credentials
from .digest import Digest, parse_digest
from .errors import ImageError
from .metadata import Descriptor, config_diff_ids, index_entries, manifest_layers, parse_json_object
from .model import Image, LayerBlob, Platform
from .platforms import descriptor_platform, satisfies, select_manifest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = {DOCKER_MANIFEST, OCI_MANIFEST}
MANIFEST_INDEXES = {DOCKER_MANIFEST_LIST, OCI_INDEX}
SCHEMA1_MANIFESTS = {"application/vnd.docker.distribution.manifest.v1+json",
                     "application/vnd.docker.distribution.manifest.v1+prettyjws"}
MANIFEST_ACCEPT = f"{OCI_INDEX}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"

CONFIG_MEDIA_TYPES = {"application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json"}
LAYER_MEDIA_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}

# Registries refuse manifests over 4 MiB; anything bigger than these is not what we asked for.
MAX_MANIFEST_BYTES = 4 * 1024**2
MAX_CONFIG_BYTES = 64 * 1024**2
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
USER_AGENT = "exchange-cli"

T = TypeVar("T")
_NO_PROGRESS = NullProgress()
LOG = logger("registry")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        backoff = self.base_delay * 2 ** (failed_attempt - 1)
        return min(self.max_delay, max(backoff, retry_after or 0.0))


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class TransferLimits:
    """How long a registry may take: per read, and overall per document or blob (retries included)."""

    connect_timeout: float = 15.0
    read_timeout: float = 120.0  # seconds without a byte: the connection has stalled
    min_rate: float = 256 * 1024  # bytes per second, on average over the whole transfer
    floor: float = 120.0  # seconds every transfer may take, however small

    @property
    def timeout(self) -> tuple[float, float]:
        return self.connect_timeout, self.read_timeout

    def deadline(self, size: int, on_expiry: Callable[[str], Exception]) -> Deadline:
        allowed = self.floor + size / self.min_rate
        return Deadline(time.monotonic() + allowed, allowed, size, self.min_rate, on_expiry)


DEFAULT_LIMITS = TransferLimits()


@dataclass(frozen=True)
class Deadline:
    """The moment a transfer of `size` bytes must be done by; `check` raises what `on_expiry` makes."""

    expires: float
    allowed: float
    size: int
    min_rate: float
    on_expiry: Callable[[str], Exception]

    def check(self, received: int | None = None) -> None:
        if time.monotonic() <= self.expires:
            return
        got = "" if received is None else f" ({received} bytes received)"
        raise self.on_expiry(f"not received within {self.allowed:.0f} s{got}, the time {self.size} bytes may take "
                             f"at the minimum rate of {self.min_rate:.0f} bytes/s; the registry is too slow or has stalled")


LAYER_FETCH_WORKERS = 3


class _Transient(Exception):
    """A failure worth another attempt. Not an OSError, so nothing on the way up mistakes it for bad data."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def with_retries(policy: RetryPolicy, action: Callable[[], T], *, failure: str,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action` until it succeeds, or until `policy` runs out; then ImageError starting with `failure`."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except _Transient as exc:
            if attempt == policy.attempts:
                raise ImageError(f"{failure}: gave up after {attempt} attempts: {exc.reason}") from exc
            sleep(policy.delay(attempt, exc.retry_after))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: the scheme in lower case and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_CHALLENGE_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {}
    for name, quoted, bare in _CHALLENGE_PARAM.findall(rest):
        params[name.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
    return Challenge(scheme.lower(), params)


class _Authenticator:
    """Adds Basic or Bearer authorization once a registry has challenged; caches a token per scope."""

    def __init__(self, session: requests.Session, credentials: RegistryCredentials | None, *,
                 image: str, registry: str, timeout: tuple[float, float]) -> None:
        self.session, self.credentials, self.image, self.registry = session, credentials, image, registry
        self.timeout = timeout
        self.use_basic = False
        self.tokens: dict[str, str] = {}

    def headers(self, scope: str) -> dict[str, str]:
        if scope in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[scope]}"}
        if self.use_basic and self.credentials is not None and not self.credentials.identity_token:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}

    def answer(self, challenge: Challenge, scope: str) -> bool:
        """Get what `challenge` asks for; False when there is nothing new to try."""
        if challenge.scheme == "basic":
            if self.credentials is None or self.credentials.identity_token or self.use_basic:
                return False
            self.use_basic = True
            return True
        if challenge.scheme == "bearer":
            self.tokens[scope] = self._fetch_token(challenge, challenge.params.get("scope") or scope)
            return True
        return False

    def rejection_hint(self) -> str:
        if self.credentials is None:
            return (f"no credentials are configured for {self.registry} "
                    f"(docker login, or {host_env_var(self.registry)}=user:password)")
        return f"the credentials from {self.credentials.source} were not accepted"

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise ImageError(f"{self.image}: registry {self.registry} asked for a bearer token without naming a realm")
        query = {k: v for k, v in (("service", challenge.params.get("service")), ("scope", scope)) if v}
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": USER_AGENT}
                response = self.session.post(realm, data=form, timeout=self.timeout)
            else:
                auth = (creds.username, creds.password) if creds is not None else None
                response = self.session.get(realm, params=query, auth=auth, timeout=self.timeout)
        except BAD_URL_ERRORS as exc:
            raise ImageError(f"{self.image}: token server {realm}: {bad_url_reason(exc)}") from None
        except requests.exceptions.SSLError as exc:
            raise ImageError(f"{self.image}: TLS failure talking to token server {realm}: {exc}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"token server {realm}: {_brief(exc)}") from exc
        with response:
            if response.status_code in TRANSIENT_STATUSES:
                raise _Transient(f"token server {realm} answered {response.status_code} {response.reason}",
                                 _retry_after(response))
            if response.status_code in (401, 403):
                raise ImageError(f"{self.image}: token server {realm} refused a token for {scope} "
                                 f"({response.status_code} {response.reason}): {self.rejection_hint()}")
            if not response.ok:
                raise ImageError(f"{self.image}: token server {realm} answered "
                                 f"{response.status_code} {response.reason} for {scope}")
            try:
                answer = response.json()
                token = answer.get("token") or answer.get("access_token")
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            raise ImageError(f"{self.image}: token server {realm} answered without a token for {scope}")
        return token


class _BodyStream(io.RawIOBase):
    """A response body as a file; a connection that breaks off mid-body becomes a `_Transient`.

    Reads return as soon as any bytes arrive (`read1`), so the deadline is checked between them
    however slowly they trickle in."""

    def __init__(self, response: requests.Response, subject: str, deadline: Deadline | None = None) -> None:
        self.response, self.subject, self.deadline = response, subject, deadline
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.deadline is not None:
            self.deadline.check(self.received)
        try:
            data = self.response.raw.read1(min(len(buffer), CHUNK), decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise _Transient(f"{self.subject}: download broke off: {_brief(exc)}") from exc
        buffer[: len(data)] = data
        self.received += len(data)
        if self.deadline is not None:
            self.deadline.check(self.received)
        return len(data)


class RegistryClient:
    """Talks to one registry on behalf of one image; `image` is what every error message starts with."""

    def __init__(self, registry: str, host: str, *, image: str, insecure: bool = False,
                 credentials: RegistryCredentials | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 limits: TransferLimits = DEFAULT_LIMITS) -> None:
        self.host, self.image, self.retry, self.limits = host, image, retry, limits
        self.timeout = limits.timeout
        self.insecure = insecure
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.max_redirects = MAX_REDIRECTS
        self.auth = _Authenticator(self.session, credentials, image=image, registry=registry, timeout=self.timeout)

    @classmethod
    def for_reference(cls, ref: ImageReference, *, insecure_registries: Collection[str] = (),
                      retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS) -> RegistryClient:
        insecure = ref.registry in insecure_registries or ref.registry_host in insecure_registries
        return cls(ref.registry, ref.registry_host, image=str(ref), insecure=insecure,
                   credentials=resolve_credentials(ref.registry), retry=retry, limits=limits)

    def blob_deadline(self, digest: str, size: int) -> Deadline:
        return self.limits.deadline(size, lambda reason: BlobError(self.image, digest, reason))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str | None]:
        """The manifest's bytes, its Content-Type and the registry's Docker-Content-Digest header."""
        subject = f"manifest {reference}"
        deadline = self.limits.deadline(MAX_MANIFEST_BYTES, lambda reason: ImageError(f"{self.image}: {subject}: {reason}"))

        def attempt() -> tuple[bytes, str, str | None]:
            with self._open(repository, f"manifests/{reference}", subject, accept=MANIFEST_ACCEPT,
                            deadline=deadline) as response:
                body = _read_at_most(_BodyStream(response, subject, deadline), MAX_MANIFEST_BYTES)
                if body is None:
                    raise ImageError(f"{self.image}: {subject} is larger than {MAX_MANIFEST_BYTES} bytes")
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                return body, content_type, response.headers.get("Docker-Content-Digest")

        return with_retries(self.retry, attempt, failure=f"{self.image}: fetching {subject}")

    def manifest_exists(self, repository: str, reference: str) -> bool:
        subject = f"manifest {reference}"

        def attempt() -> bool:
            response = self._request("HEAD", repository, f"manifests/{reference}", accept=MANIFEST_ACCEPT)
            with response:
                if response.status_code == 404:
                    return False
                self._raise_for_status(response, subject)
                return True

        return with_retries(self.retry, attempt, failure=f"{self.image}: checking {subject}")

    def read_blob(self, repository: str, digest: str, size: int, *, what: str = "blob") -> bytes:
        """A small blob (a config), verified against `digest` and `size`."""
        subject = f"{what} {digest}"
        deadline = self.blob_deadline(digest, size)

        def attempt() -> bytes:
            with self.open_blob(repository, digest, subject=subject, deadline=deadline) as stream:
                return VerifyingReader(stream, image=self.image, digest=digest, size=size).read()

        return with_retries(self.retry, attempt, failure=f"{self.image}: fetching {subject}")

    @contextmanager
    def open_blob(self, repository: str, digest: str, *, subject: str = "", size: int | None = None,
                  deadline: Deadline | None = None) -> Iterator[BinaryIO]:
        """One attempt at a blob's body, for the caller to stream; breaks off as `_Transient`.

        Pass the same `deadline` to every attempt, so that retries share it; `size` alone starts one."""
        subject = subject or f"blob {digest}"
        if deadline is None and size is not None:
            deadline = self.blob_deadline(digest, size)
        with self._open(repository, f"blobs/{digest}", subject, deadline=deadline, digest=digest) as response:
            yield io.BufferedReader(_BodyStream(response, subject, deadline), CHUNK)  # type: ignore[arg-type]

    @contextmanager
    def _open(self, repository: str, path: str, subject: str, *, accept: str | None = None,
              deadline: Deadline | None = None, digest: str | None = None) -> Iterator[requests.Response]:
        if deadline is not None:
            deadline.check()
        response = self._request("GET", repository, path, accept=accept, stream=True, digest=digest)
        with response:
            self._raise_for_status(response, subject)
            yield response

    def _request(self, method: str, repository: str, path: str, *, accept: str | None = None,
                 stream: bool = False, digest: str | None = None) -> requests.Response:
        """One round trip, answering one authentication challenge; transient failures raise `_Transient`.

        A bad redirect is a BlobError when `digest` names the blob asked for, else an ImageError."""
        url = f"{self.base_url}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": accept} if accept else {}
        response = self._send(method, url, headers, scope, stream, digest)
        if response.status_code == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is not None and self.auth.answer(challenge, scope):
                response.close()
                response = self._send(method, url, headers, scope, stream, digest)
        if response.status_code in TRANSIENT_STATUSES:
            response.close()
            raise _Transient(f"{method} {url} answered {response.status_code} {response.reason}",
                             _retry_after(response))
        return response

    def _send(self, method: str, url: str, headers: dict[str, str], scope: str, stream: bool,
              digest: str | None = None) -> requests.Response:
        try:
            response = self.session.request(method, url, headers={**headers, **self.auth.headers(scope)},
                                            stream=stream, timeout=self.timeout, allow_redirects=True)
            LOG.debug("registry: %s %s -> %s", method, url, response.status_code)  # never the headers: credentials
            return response
        except BAD_URL_ERRORS as exc:
            reason = bad_url_reason(exc)
            if digest is not None:
                raise BlobError(self.image, digest, f"{method} {url}: {reason}") from None
            raise ImageError(f"{self.image}: {method} {url}: {reason}") from None
        except requests.exceptions.SSLError as exc:
            raise ImageError(f"{self.image}: TLS failure talking to {self.host}: {_brief(exc)} "
                             "(if this registry serves plain HTTP, list it as an insecure registry)") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"{method} {url}: {_brief(exc)}") from exc

    def _raise_for_status(self, response: requests.Response, subject: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{status} {response.reason}"
        registry_says = _registry_errors(response)
        if registry_says:
            detail += f": {registry_says}"
        if status == 401:
            raise ImageError(f"{self.image}: registry {self.host} refused access to {subject} ({detail}); "
                             f"{self.auth.rejection_hint()}")
        if status == 403:
            raise ImageError(f"{self.image}: registry {self.host} denied access to {subject} ({detail})")
        if status == 404:
            raise ImageError(f"{self.image}: {subject} not found on registry {self.host} ({detail})")
        raise ImageError(f"{self.image}: registry {self.host} failed to serve {subject} ({detail})")


def fetch_registry_image(ref: ImageReference, platform: Platform, cache: BlobCache, *,
                         insecure_registries: Collection[str] = (), progress: Progress = _NO_PROGRESS,
                         retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS) -> Image:
    """Resolve `ref` for `platform`, verify it, and put its layers in `cache`."""
    with RegistryClient.for_reference(ref, insecure_registries=insecure_registries, retry=retry,
                                      limits=limits) as client:
        return _ImagePull(ref, platform, cache, client, progress).run()


def manifest_exists(ref: ImageReference, *, insecure_registries: Collection[str] = (),
                    retry: RetryPolicy = DEFAULT_RETRY) -> bool:
    """Whether the registry has `ref`'s manifest; ImageError when the registry cannot say."""
    with RegistryClient.for_reference(ref, insecure_registries=insecure_registries, retry=retry) as client:
        return client.manifest_exists(ref.repository, ref.reference)


@dataclass(frozen=True)
class _Manifest:
    body: bytes
    document: dict[str, Any]
    media_type: str
    digest: Digest


class _ImagePull:
    """One image's pull, step by step; holds what every step needs to name in its errors."""

    def __init__(self, ref: ImageReference, platform: Platform, cache: BlobCache, client: RegistryClient,
                 progress: Progress) -> None:
        self.ref, self.platform, self.cache, self.client, self.progress = ref, platform, cache, client, progress
        self.image = str(ref)

    def run(self) -> Image:
        manifest = self._manifest(self.ref.reference, expected=self.ref.digest)
        selected_platform: Platform | None = None
        if manifest.media_type in MANIFEST_INDEXES:
            index_entries(manifest.document, image=self.image, what=f"manifest list {manifest.digest}")
            chosen = select_manifest(manifest.document, self.platform, image=self.image)
            entry = Descriptor.parse(chosen, image=self.image, what="manifest list entry")
            manifest = self._manifest(entry.digest, expected=entry.digest, size=entry.size)
            selected_platform = descriptor_platform(chosen)
            if manifest.media_type in MANIFEST_INDEXES:
                raise ImageError(f"{self.image}: the manifest list entry for {selected_platform} is itself "
                                 "a manifest list; nested indexes are not supported")
        config_descriptor = Descriptor.parse(manifest.document.get("config"), image=self.image, what="manifest config")
        config = self._config(config_descriptor)
        if selected_platform is None:
            selected_platform = self._config_platform(config)
        layers = self._layers(manifest, config)
        return Image(reference=self.ref.original, platform=selected_platform, config=config,
                     config_digest=config_descriptor.digest, manifest_digest=manifest.digest, layers=layers,
                     pinned_reference=f"{self.ref.name}@{manifest.digest}")

    def _manifest(self, reference: str, *, expected: str | None, size: int | None = None) -> _Manifest:
        if expected is not None:
            expected = parse_digest(expected, image=self.image, what="the requested manifest digest")
        body, content_type, header_digest = self.client.get_manifest(self.ref.repository, reference)
        algorithm = expected.algorithm if expected else "sha256"
        digest = Digest.of(body, algorithm)
        if expected is not None and digest != expected:
            raise ImageError(f"{self.image}: manifest {reference} hashes to {digest}, not the requested digest")
        if size is not None and len(body) != size:
            raise ImageError(f"{self.image}: manifest {reference} is {len(body)} bytes, "
                             f"but the manifest list says {size}")
        if header_digest:
            header_digest = parse_digest(header_digest, image=self.image,
                                         what=f"manifest {reference}: the registry's Docker-Content-Digest header")
        if header_digest and header_digest.algorithm == algorithm and header_digest != digest:
            raise ImageError(f"{self.image}: manifest {reference} hashes to {digest}, "
                             f"but the registry says its digest is {header_digest}")
        document = parse_json_object(body, image=self.image, what=f"manifest {reference}")
        media_type = self._manifest_media_type(document, content_type, reference)
        return _Manifest(body, document, media_type, digest)

    def _manifest_media_type(self, document: dict[str, Any], content_type: str, reference: str) -> str:
        media_type = document.get("mediaType") or content_type
        if media_type in SCHEMA1_MANIFESTS or document.get("schemaVersion") == 1:
            raise ImageError(f"{self.image}: manifest {reference} uses the retired Docker schema 1 format; "
                             "push the image again with a current Docker")
        if media_type not in IMAGE_MANIFESTS | MANIFEST_INDEXES:
            # An OCI manifest may leave mediaType out; its shape says what it is.
            if "manifests" in document:
                return OCI_INDEX
            if "config" in document and "layers" in document:
                return OCI_MANIFEST
            raise ImageError(f"{self.image}: manifest {reference} has unsupported media type {media_type!r}")
        return media_type

    def _config(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.media_type not in CONFIG_MEDIA_TYPES:
            raise ImageError(f"{self.image}: config {descriptor.digest} has media type {descriptor.media_type!r}, "
                             "which is not a container image config (is this an artifact rather than an image?)")
        if descriptor.size > MAX_CONFIG_BYTES:
            raise ImageError(f"{self.image}: config {descriptor.digest} is implausibly large ({descriptor.size} bytes)")
        body = self.client.read_blob(self.ref.repository, descriptor.digest, descriptor.size, what="config")
        return parse_json_object(body, image=self.image, what=f"config {descriptor.digest}")

    def _config_platform(self, config: dict[str, Any]) -> Platform:
        """A single-platform image's own platform, which must be the one asked for."""
        os_name, architecture = config.get("os"), config.get("architecture")
        if not os_name or not architecture:
            return self.platform
        actual = Platform(str(os_name), str(architecture), config.get("variant") or None)
        if not satisfies(actual, self.platform):
            raise ImageError(f"{self.image}: the image is for {actual} only, not for the requested {self.platform}")
        return actual

    def _layers(self, manifest: _Manifest, config: dict[str, Any]) -> list[LayerBlob]:
        descriptors = manifest_layers(manifest.document, image=self.image, what=f"manifest {manifest.digest}")
        diff_ids = config_diff_ids(config, image=self.image, what=f"config of manifest {manifest.digest}")
        if len(descriptors) != len(diff_ids):
            raise ImageError(f"{self.image}: manifest {manifest.digest} lists {len(descriptors)} layers "
                             f"but its config lists {len(diff_ids)} diff_ids")
        for descriptor in descriptors:
            self._check_layer(descriptor)
        jobs = [(descriptor, diff_id, index, len(descriptors))
                for index, (descriptor, diff_id) in enumerate(zip(descriptors, diff_ids), start=1)]
        if len(jobs) == 1:
            return [self._layer(*jobs[0])]
        # Verifying, decompressing and hashing release the GIL: layers fetched side by side use both
        # cores and hide each other's network latency. The result keeps the manifest's order.
        with ThreadPoolExecutor(max_workers=min(LAYER_FETCH_WORKERS, len(jobs)), thread_name_prefix="layer") as pool:
            return list(pool.map(lambda job: self._layer(*job), jobs))

    def _check_layer(self, layer: Descriptor) -> None:
        if layer.urls or "foreign" in layer.media_type:
            where = ", ".join(layer.urls) or "outside the registry"
            raise ImageError(f"{self.image}: layer {layer.digest} is a non-distributable (foreign) layer "
                             f"hosted at {where}; such layers are not fetched, use an image without them")
        if layer.media_type not in LAYER_MEDIA_TYPES:
            raise ImageError(f"{self.image}: layer {layer.digest} has unsupported media type {layer.media_type!r}")

    def _layer(self, layer: Descriptor, diff_id: Digest, index: int, count: int) -> LayerBlob:
        cached = self.cache.lookup(digest=layer.digest, diff_id=diff_id, media_type=layer.media_type, size=layer.size)
        if cached is not None:
            return cached
        description = f"{self.ref.repository} layer {index}/{count} {layer.digest.hex[:12]}"
        deadline = self.client.blob_deadline(layer.digest, layer.size)

        def download() -> LayerBlob:
            with self.client.open_blob(self.ref.repository, layer.digest, subject=f"layer {layer.digest}",
                                       deadline=deadline) as stream, \
                    self.progress.task(description, total=layer.size) as task:
                return self.cache.store_layer(stream, image=self.image, digest=layer.digest, size=layer.size,
                                              media_type=layer.media_type, diff_id=diff_id, task=task)

        return with_retries(self.client.retry, download, failure=f"{self.image}: fetching layer {layer.digest}")


BAD_URL_ERRORS = (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                  requests.exceptions.InvalidURL, requests.exceptions.TooManyRedirects)


def bad_url_reason(error: Exception) -> str:
    """Why a URL the registry sent us to (a redirect, a token realm) cannot be followed."""
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return f"the registry redirected more than {MAX_REDIRECTS} times (a redirect loop?)"
    return f"the registry sent us to a URL that is not http(s): {_brief(error)}"


def _read_at_most(stream: io.RawIOBase, limit: int) -> bytes | None:
    """The whole stream, or None when it is longer than `limit`."""
    data = bytearray()
    while chunk := stream.read(CHUNK):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _registry_errors(response: requests.Response) -> str:
    """The registry's own explanation from its JSON error body, if it sent one."""
    if response.request.method == "HEAD":
        return ""
    try:
        errors = json.loads(response.raw.read(64 * 1024, decode_content=True) or b"{}").get("errors") or []
    except (ValueError, AttributeError, urllib3.exceptions.HTTPError, OSError):
        return ""
    return "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors if isinstance(e, dict))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _brief(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which says what went wrong without the noise."""
    while exc.__cause__ is not None or (exc.args and isinstance(exc.args[0], BaseException)):
        exc = exc.__cause__ or exc.args[0]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    return str(exc) or type(exc).__name__

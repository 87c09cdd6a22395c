"""The registry image source: pulls an image over the Docker Registry HTTP API v2 (OCI distribution).

A tag resolves to a manifest, a manifest list or index resolves to one platform's manifest, and
every byte is verified on the way in: the manifest against its digest, the config against the
manifest, each layer (in `BlobCache.store_layer`) against the manifest and the config's diff_ids.

Transient failures (5xx, 429, a dropped connection, a timeout) are retried with exponential
backoff (five attempts; the pauses add up to EXCHANGE_REGISTRY_RETRY_SECONDS, default 7.5); a blob download that breaks off restarts from its first byte through a fresh
`store_layer`, so a half-written layer never reaches the cache. 401, 403 and 404 are final.
Plain HTTP is used only for hosts listed as insecure, and credentials go only where they belong:
`web.transport` has the rules, for the registry, its redirects and its token realm. No password or
token the client holds ever appears in an error that leaves it or in a line it logs (`web.masking`).

No registry can hang a run (`web.deadlines`): every read waits at most `read_timeout`, and every
document and blob has an overall deadline, retries included, of `floor` seconds plus its size at
`min_rate` bytes per second, so a registry that trickles a byte now and then, body or headers, is
given up too; a token request has one too, for a token of at most `MAX_TOKEN_BYTES`. A redirect
may lead only to another http(s) URL, and only a few times.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

import requests
import urllib3

from ..bounded import read_at_most
from ..errors import ExchangeError
from ..jsonpos import NotStrictJson, strict_data
from ..progress import NullProgress, Progress
from ..reference import ImageReference
from ..web import retries
from ..web.deadlines import DEFAULT_LIMITS, Deadline, TransferLimits
from ..web.masking import SecretMask
from ..web.retries import DEFAULT_RETRY, TRANSIENT_STATUSES, RetryPolicy, Transient, retry_after
from ..web.transport import (
    NO_AUTH,
    USER_AGENT,
    Origin,
    OriginAuth,
    RefusedURL,
    Transport,
    UrlPolicy,
    new_session,
    shown,
)
from .blobcache import CHUNK, BlobCache, BlobError, VerifyingReader
from .credentials import RegistryCredentials, host_env_var, resolve_credentials
from .digest import Digest, parse_digest
from .errors import ImageError
from .metadata import (
    MAX_IMAGE_CONFIG_BYTES,
    MAX_IMAGE_MANIFEST_BYTES,
    Descriptor,
    config_diff_ids,
    index_entries,
    manifest_layers,
    parse_json_object,
)
from .model import Image, LayerBlob, LayerStored, Platform
from .platforms import descriptor_platform, satisfies, select_manifest

if TYPE_CHECKING:
    from contextlib import _GeneratorContextManager

    from _typeshed import WriteableBuffer

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

MAX_TOKEN_BYTES = 1024**2  # a token answer is a few KB of JSON
MAX_ERROR_BODY_BYTES = 64 * 1024  # an error list; a longer body is not one
T = TypeVar("T")
_NO_PROGRESS = NullProgress()
LAYER_FETCH_WORKERS = 3


def with_retries(policy: RetryPolicy, action: Callable[[], T], *, failure: str,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """web.retries.with_retries, giving up with an ImageError starting with `failure`."""
    return retries.with_retries(policy, action, failure=failure, error=ImageError, sleep=sleep)


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
    """Answers a registry's challenges: Basic, or a Bearer token per scope from the realm it names.

    Every secret it holds (the password or identity token, each token it is given) is in `mask`
    before anything could show it."""

    def __init__(self, transport: Transport, credentials: RegistryCredentials | None, *, image: str,
                 registry: str, origin: Origin, limits: TransferLimits) -> None:
        self.transport, self.credentials, self.image, self.registry = transport, credentials, image, registry
        self.origin, self.limits, self.mask = origin, limits, transport.mask
        self.use_basic = False
        self.tokens: dict[str, str] = {}
        if credentials is not None:
            self.mask.add_basic(credentials.username, credentials.password)
            self.mask.add(credentials.identity_token)

    def for_scope(self, scope: str) -> OriginAuth:
        """The authorization of a request to the registry for `scope`; it reaches the registry only."""
        if scope in self.tokens:
            return OriginAuth(self.origin, f"Bearer {self.tokens[scope]}")
        if self.use_basic and self.credentials is not None and not self.credentials.identity_token:
            return OriginAuth(self.origin, _basic(self.credentials))
        return NO_AUTH

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
        """A token from the realm the registry named, within the token deadline; the credentials go to
        the realm's origin only (`transport` has the rules)."""
        realm = challenge.params.get("realm")
        if not realm:
            raise ImageError(f"{self.image}: registry {self.registry} asked for a bearer token without naming a realm")
        subject = f"token server {shown(realm)}"
        deadline = self.limits.deadline(MAX_TOKEN_BYTES, lambda reason: ImageError(f"{self.image}: {subject}: {reason}"),
                                        server="the token server")
        query = {k: v for k, v in (("service", challenge.params.get("service")), ("scope", scope)) if v}
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": USER_AGENT}
                response = self.transport.send("POST", realm, data=form, deadline=deadline)
            else:
                auth = OriginAuth(Origin.of(realm), _basic(creds)) if creds is not None else NO_AUTH
                response = self.transport.send("GET", realm, params=query, auth=auth, deadline=deadline)
        except (RefusedURL, *BAD_URL_ERRORS) as exc:
            raise ImageError(f"{self.image}: {subject}: {bad_url_reason(exc)}") from None
        except requests.exceptions.SSLError as exc:
            raise ImageError(f"{self.image}: TLS failure talking to {subject}: {_brief(exc)}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Transient(f"{subject}: {_brief(exc)}") from exc
        with response:
            if response.status_code in TRANSIENT_STATUSES:
                raise Transient(f"{subject} answered {response.status_code} {response.reason}",
                                 retry_after(response))
            if response.status_code in (401, 403):
                raise ImageError(f"{self.image}: {subject} refused a token for {scope} "
                                 f"({response.status_code} {response.reason}): {self.rejection_hint()}")
            if not response.ok:
                raise ImageError(f"{self.image}: {subject} answered {response.status_code} {response.reason} for {scope}")
            body = read_at_most(_BodyStream(response, subject, deadline, decode=True), MAX_TOKEN_BYTES)
        if body is None:
            raise ImageError(f"{self.image}: {subject} answered with more than {MAX_TOKEN_BYTES} bytes")
        try:
            answer = strict_data(body)
            token = answer.get("token") or answer.get("access_token")
        except (NotStrictJson, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ImageError(f"{self.image}: {subject} answered without a token for {scope}")
        self.mask.add(token)
        return token


def _basic(credentials: RegistryCredentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class _BodyStream(io.RawIOBase):
    """A response body as a file; a connection that breaks off mid-body becomes a `Transient`.

    Reads return as soon as any bytes arrive (`read1`), so the deadline is checked between them
    however slowly they trickle in. Blob and manifest bytes are read as sent (they are hashed);
    `decode` undoes a Content-Encoding, for a token server's JSON."""

    def __init__(self, response: requests.Response, subject: str, deadline: Deadline | None = None, *,
                 decode: bool = False) -> None:
        self.response, self.subject, self.deadline, self.decode = response, subject, deadline, decode
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.deadline is not None:
            self.deadline.check(self.received)
        with memoryview(buffer) as view:
            try:
                data = self.response.raw.read1(min(len(view), CHUNK), decode_content=self.decode)
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                raise Transient(f"{self.subject}: download broke off: {_brief(exc)}") from exc
            view[: len(data)] = data
        self.received += len(data)
        if self.deadline is not None:
            self.deadline.check(self.received)
        return len(data)


class RegistryClient:
    """Talks to one registry on behalf of one image; `image` is what every error message starts with."""

    def __init__(self, registry: str, host: str, *, image: str, insecure: bool = False,
                 credentials: RegistryCredentials | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 limits: TransferLimits = DEFAULT_LIMITS, insecure_hosts: Collection[str] = ()) -> None:
        """`insecure`: talk plain HTTP to this registry; `insecure_hosts`: every host (as given to
        --insecure-registry) that a redirect or a token realm may lead to over plain HTTP."""
        self.host, self.image, self.retry, self.limits = host, image, retry, limits
        self.timeout = limits.timeout
        self.insecure = insecure
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self.origin = Origin.of(self.base_url)
        self.session = new_session()
        self.mask = SecretMask()
        policy = UrlPolicy.allowing([*insecure_hosts, *([host] if insecure else [])])
        self.transport = Transport(self.session, policy, self.timeout, self.mask)
        self.auth = _Authenticator(self.transport, credentials, image=image, registry=registry, origin=self.origin,
                                   limits=limits)

    @classmethod
    def for_reference(cls, ref: ImageReference, *, insecure_registries: Collection[str] = (),
                      retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS,
                      shared_credentials: bool = True) -> RegistryClient:
        insecure = ref.registry in insecure_registries or ref.registry_host in insecure_registries
        return cls(ref.registry, ref.registry_host, image=str(ref), insecure=insecure,
                   credentials=resolve_credentials(ref.registry, shared=shared_credentials), retry=retry, limits=limits,
                   insecure_hosts=insecure_registries)

    def blob_deadline(self, digest: str, size: int) -> Deadline:
        return self.limits.deadline(size, lambda reason: BlobError(self.image, digest, reason))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, error: BaseException | None, traceback: object) -> None:
        self.close()
        if isinstance(error, ExchangeError):
            self.mask.hide_in(error)  # whatever the registry echoed, no secret of ours leaves with it

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str | None]:
        """The manifest's bytes, its Content-Type and the registry's Docker-Content-Digest header."""
        subject = f"manifest {reference}"
        deadline = self.limits.deadline(MAX_IMAGE_MANIFEST_BYTES, lambda reason: ImageError(f"{self.image}: {subject}: {reason}"))

        def attempt() -> tuple[bytes, str, str | None]:
            with self._open(repository, f"manifests/{reference}", subject, accept=MANIFEST_ACCEPT,
                            deadline=deadline) as response:
                body = read_at_most(_BodyStream(response, subject, deadline), MAX_IMAGE_MANIFEST_BYTES)
                if body is None:
                    raise ImageError(f"{self.image}: {subject} is larger than {MAX_IMAGE_MANIFEST_BYTES} bytes")
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                return body, content_type, response.headers.get("Docker-Content-Digest")

        return with_retries(self.retry, attempt, failure=f"{self.image}: fetching {subject}")

    def manifest_exists(self, repository: str, reference: str) -> bool:
        subject = f"manifest {reference}"
        deadline = self.limits.deadline(0, lambda reason: ImageError(f"{self.image}: checking {subject}: {reason}"))

        def attempt() -> bool:
            response = self._request("HEAD", repository, f"manifests/{reference}", accept=MANIFEST_ACCEPT,
                                     deadline=deadline)
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

    @overload
    def open_blob(self, repository: str, digest: str, *, subject: str = "", size: int | None = None,
                  deadline: Deadline | None = None,
                  buffered: Literal[True] = True) -> _GeneratorContextManager[io.BufferedReader]: ...

    @overload
    def open_blob(self, repository: str, digest: str, *, subject: str = "", size: int | None = None,
                  deadline: Deadline | None = None,
                  buffered: Literal[False]) -> _GeneratorContextManager[_BodyStream]: ...

    @overload
    def open_blob(self, repository: str, digest: str, *, subject: str = "", size: int | None = None,
                  deadline: Deadline | None = None,
                  buffered: bool) -> _GeneratorContextManager[io.BufferedReader | _BodyStream]: ...

    @contextmanager
    def open_blob(self, repository: str, digest: str, *, subject: str = "", size: int | None = None,
                  deadline: Deadline | None = None,
                  buffered: bool = True) -> Iterator[io.BufferedReader | _BodyStream]:
        """One attempt at a blob's body, for the caller to stream; breaks off as `Transient`.

        Pass the same `deadline` to every attempt, so that retries share it; `size` alone starts one.
        Unbuffered, each `readinto` is one read from the connection, copied once into the caller's
        buffer (not through a buffer of ours first), for callers that read in large pieces."""
        subject = subject or f"blob {digest}"
        if deadline is None and size is not None:
            deadline = self.blob_deadline(digest, size)
        with self._open(repository, f"blobs/{digest}", subject, deadline=deadline, digest=digest) as response:
            body = _BodyStream(response, subject, deadline)
            yield io.BufferedReader(body, CHUNK) if buffered else body

    @contextmanager
    def _open(self, repository: str, path: str, subject: str, *, accept: str | None = None,
              deadline: Deadline | None = None, digest: str | None = None) -> Iterator[requests.Response]:
        response = self._request("GET", repository, path, accept=accept, digest=digest, deadline=deadline)
        with response:
            self._raise_for_status(response, subject)
            yield response

    def _request(self, method: str, repository: str, path: str, *, accept: str | None = None,
                 digest: str | None = None, deadline: Deadline | None = None) -> requests.Response:
        """One round trip (streamed), answering one authentication challenge; transient failures raise
        `Transient`. `deadline` bounds every hop, headers included.

        A bad redirect is a BlobError when `digest` names the blob asked for, else an ImageError."""
        url = f"{self.base_url}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": accept} if accept else {}
        response = self._send(method, url, scope=scope, headers=headers, digest=digest, deadline=deadline)
        if self._answer_challenge(response, scope):
            response.close()
            response = self._send(method, url, scope=scope, headers=headers, digest=digest, deadline=deadline)
        if response.status_code in TRANSIENT_STATUSES:
            response.close()
            raise Transient(f"{method} {url} answered {response.status_code} {response.reason}",
                             retry_after(response))
        return response

    def _answer_challenge(self, response: requests.Response, scope: str) -> bool:
        """Whether `response` is a 401 that was answered, so the request is worth sending again. Only the
        registry's own challenges are: where a redirect led is no place for our credentials."""
        if response.status_code != 401 or Origin.of(response.url) != self.origin:
            return False
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        return challenge is not None and self.auth.answer(challenge, scope)

    def _send(self, method: str, url: str, *, scope: str, headers: dict[str, str] | None = None,
              params: dict[str, str] | None = None, data: object = None, digest: str | None = None,
              follow_redirects: bool = True, deadline: Deadline | None = None) -> requests.Response:
        """`method` `url` under the transport's rules, authorised for `scope` at the registry only."""
        try:
            return self.transport.send(method, url, auth=self.auth.for_scope(scope), headers=headers, params=params,
                                       data=data, follow_redirects=follow_redirects, deadline=deadline)
        except (RefusedURL, *BAD_URL_ERRORS) as exc:
            reason = bad_url_reason(exc)
            if digest is not None:
                raise BlobError(self.image, digest, f"{method} {shown(url)}: {reason}") from None
            raise ImageError(f"{self.image}: {method} {shown(url)}: {reason}") from None
        except requests.exceptions.SSLError as exc:
            raise ImageError(f"{self.image}: TLS failure talking to {self.host}: {_brief(exc)} "
                             "(if this registry serves plain HTTP, list it as an insecure registry)") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Transient(f"{method} {shown(url)}: {_brief(exc)}") from exc

    def _raise_for_status(self, response: requests.Response, subject: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{status} {response.reason}"
        registry_says = _registry_errors(response)
        if registry_says:
            detail += f": {registry_says}"
        if status == 401 and Origin.of(response.url) != self.origin:
            raise ImageError(f"{self.image}: {shown(response.url)}, where registry {self.host} redirected us, "
                             f"refused access to {subject} ({detail}); credentials for {self.host} are sent "
                             "to it alone")
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
                         retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS,
                         layer_stored: LayerStored | None = None) -> Image:
    """Resolve `ref` for `platform`, verify it, and put its layers in `cache` (telling `layer_stored` of each)."""
    with RegistryClient.for_reference(ref, insecure_registries=insecure_registries, retry=retry,
                                      limits=limits) as client:
        return _ImagePull(ref, platform, cache, client, progress, layer_stored).run()


def manifest_exists(ref: ImageReference, *, insecure_registries: Collection[str] = (),
                    retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS,
                    shared_credentials: bool = True) -> bool:
    """Whether the registry has `ref`'s manifest; ImageError when the registry cannot say.
    `shared_credentials`: see credentials.resolve_credentials."""
    with RegistryClient.for_reference(ref, insecure_registries=insecure_registries, retry=retry,
                                      limits=limits, shared_credentials=shared_credentials) as client:
        return client.manifest_exists(ref.repository, ref.reference)


@dataclass(frozen=True)
class ServedManifest:
    """What a registry serves for a reference: the sha256 of the manifest's bytes, and the digest its
    Docker-Content-Digest header names (None when it sends none)."""

    body_digest: str
    header_digest: str | None


def served_manifest(ref: ImageReference, *, insecure_registries: Collection[str] = (),
                    retry: RetryPolicy = DEFAULT_RETRY, limits: TransferLimits = DEFAULT_LIMITS) -> ServedManifest | None:
    """The manifest the registry serves for `ref`, by its digests; None when it has none (404)."""
    with RegistryClient.for_reference(ref, insecure_registries=insecure_registries, retry=retry,
                                      limits=limits) as client:
        if not client.manifest_exists(ref.repository, ref.reference):
            return None
        body, _, header = client.get_manifest(ref.repository, ref.reference)
        return ServedManifest(f"sha256:{hashlib.sha256(body).hexdigest()}", header.strip() if header else None)


@dataclass(frozen=True)
class _Manifest:
    body: bytes
    document: dict[str, Any]
    media_type: str
    digest: Digest


class _ImagePull:
    """One image's pull, step by step; holds what every step needs to name in its errors."""

    def __init__(self, ref: ImageReference, platform: Platform, cache: BlobCache, client: RegistryClient,
                 progress: Progress, layer_stored: LayerStored | None = None) -> None:
        self.ref, self.platform, self.cache, self.client, self.progress = ref, platform, cache, client, progress
        self.layer_stored = layer_stored
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
        if descriptor.size > MAX_IMAGE_CONFIG_BYTES:
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
                for index, (descriptor, diff_id) in enumerate(zip(descriptors, diff_ids, strict=True), start=1)]
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
        blob = self._stored_layer(layer, diff_id, index, count)
        if self.layer_stored is not None:
            self.layer_stored(index - 1, blob)
        return blob

    def _stored_layer(self, layer: Descriptor, diff_id: Digest, index: int, count: int) -> LayerBlob:
        cached = self.cache.lookup(digest=layer.digest, diff_id=diff_id, media_type=layer.media_type, size=layer.size)
        if cached is not None:
            return cached
        description = f"{self.ref.repository} layer {index}/{count} {layer.digest.hex[:12]}"
        deadline = self.client.blob_deadline(layer.digest, layer.size)

        def download() -> LayerBlob:
            with self.client.open_blob(self.ref.repository, layer.digest, subject=f"layer {layer.digest}",
                                       deadline=deadline, buffered=False) as stream, \
                    self.progress.task(description, total=layer.size) as task:
                return self.cache.store_layer(stream, image=self.image, digest=layer.digest, size=layer.size,
                                              media_type=layer.media_type, diff_id=diff_id, task=task)

        return with_retries(self.client.retry, download, failure=f"{self.image}: fetching layer {layer.digest}")


BAD_URL_ERRORS = (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                  requests.exceptions.InvalidURL)


def bad_url_reason(error: Exception) -> str:
    """Why a URL the registry sent us to (a redirect, a token realm) cannot be followed."""
    if isinstance(error, RefusedURL):
        return error.reason
    return f"the registry sent us to a URL that is not http(s): {_brief(error)}"


def _registry_errors(response: requests.Response) -> str:
    """The registry's own explanation from its JSON error body, if it sent one."""
    if response.request.method == "HEAD":
        return ""
    try:
        body = read_at_most(_BodyStream(response, "its error body", decode=True), MAX_ERROR_BODY_BYTES)
        errors = strict_data(body or b"{}").get("errors") or []  # a longer body: not the registry's error list
    except (NotStrictJson, AttributeError, Transient):
        return ""
    return "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors if isinstance(e, dict))


def _brief(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which says what went wrong without the noise."""
    while exc.__cause__ is not None or (exc.args and isinstance(exc.args[0], BaseException)):
        exc = exc.__cause__ or exc.args[0]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    return str(exc) or type(exc).__name__

"""Where a client may send a request, and what may go with it: a registry client's rules, which a download
by URL follows too (any http(s) host, no credentials: `UrlPolicy.downloads`).

The rules hold alike for the registry, every redirect hop, a bearer-token realm and its redirects:

- HTTPS, or plain HTTP only to a host listed with ``--insecure-registry``, matched exactly: the
  entry ``host`` allows ``http://host`` (port 80), ``host:port`` allows that port only. So a registry
  reached over HTTPS cannot send the client (a blob, a manifest, a password) to plain HTTP, on
  another host or on its own; and nothing but http(s) is ever contacted.
- Credentials go to one origin (scheme, host and port) only. The registry's Authorization header
  goes to the registry; the password or refresh token goes to the token realm the registry's
  challenge names, on whatever host that is, as Docker's client does (a registry is trusted to name
  its own token service; over HTTPS, or plain HTTP only when the realm's host is listed). A
  redirect to another origin is followed without them, and a redirect that would carry a request
  body there (a 307/308 answer to the token POST, whose body is the refresh token) is refused.
  The credentials travel as a requests auth hook bound to their origin, never as a header that a
  redirect or a later request could carry elsewhere, and requests is never left to add ~/.netrc
  credentials of its own.
- Redirects are followed here, not by requests: at most `MAX_REDIRECTS` hops, each checked before
  it is contacted, and the body of a redirect answer is never read (requests reads it whole, with
  only the per-read timeout). What is shown of a URL in messages and logs is `shown(url)`: no user
  information, no query (pre-signed blob URLs carry their signature there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase

from ..logs import logger
from .deadlines import Deadline, mount_watched_adapters, watched
from .masking import SecretMask

MAX_REDIRECTS = 5
USER_AGENT = "exchange-cli"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}
LOG = logger("registry")


def new_session() -> requests.Session:
    """A session whose requests honour `deadlines.watched`, naming the tool."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    mount_watched_adapters(session)
    return session


class RefusedURL(Exception):
    """A URL the client will not contact; `reason` says why, for the caller's BlobError or ImageError."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Origin:
    """Scheme and host of a URL; `host` is lower-case and has ``:port`` only for a non-default port."""

    scheme: str
    host: str

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            raise RefusedURL(f"the registry sent us to a malformed URL: {shown(url)}") from None
        return cls(scheme, _host_key(parts.hostname or "", port, scheme))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}"


def _host_key(hostname: str, port: int | None, scheme: str = "http") -> str:
    host = hostname.lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def plain_http_host(entry: str) -> str:
    """An --insecure-registry entry (``host`` or ``host:port``) as `Origin.host` spells an http URL's host."""
    parts = urlsplit(f"http://{entry.strip()}")
    try:
        return _host_key(parts.hostname or "", parts.port)
    except ValueError:
        return entry.strip().lower()


def shown(url: str) -> str:
    """`url` fit for a message or a log line: scheme, host and path only."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0].split("#", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs may be contacted: https anywhere, plain http only to the hosts listed as insecure (or
    anywhere, for a download whose bytes are checked against a hash and which carries no credentials)."""

    plain_http_hosts: frozenset[str] = frozenset()
    any_plain_http: bool = False
    server: str = "the registry"  # who sends us to a URL, in messages

    @classmethod
    def allowing(cls, insecure_hosts: Iterable[str]) -> UrlPolicy:
        return cls(frozenset(plain_http_host(entry) for entry in insecure_hosts))

    @classmethod
    def downloads(cls) -> UrlPolicy:
        """A download by URL (fetch, verify): http(s) anywhere; it sends no credentials to be overheard."""
        return cls(any_plain_http=True, server="the server")

    def check(self, url: str) -> Origin:
        origin = Origin.of(url)
        if origin.scheme == "https" or (origin.scheme == "http" and (self.any_plain_http or
                                                                      origin.host in self.plain_http_hosts)):
            return origin
        if origin.scheme == "http":
            raise RefusedURL(f"refused to send the request to plain HTTP {shown(url)}, where anyone on the way "
                             f"could read it and any credentials; list {origin.host} with --insecure-registry "
                             "if that host is meant to be reached without TLS")
        raise RefusedURL(f"{self.server} sent us to a URL that is not http(s): {shown(url)}")


class OriginAuth(AuthBase):
    """An Authorization header for one origin; a request to any other origin goes without it.

    Always passed to requests (`NO_AUTH` when there is nothing to send), so requests never adds
    credentials of its own from ~/.netrc."""

    def __init__(self, origin: Origin | None = None, header: str | None = None) -> None:
        self.origin, self.header = origin, header

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.header and self.origin is not None and Origin.of(request.url or "") == self.origin:
            request.headers["Authorization"] = self.header
        return request


NO_AUTH = OriginAuth()


class Transport:
    """Sends a registry client's requests under `policy`, following redirects by the rules above."""

    def __init__(self, session: requests.Session, policy: UrlPolicy, timeout: tuple[float, float],
                 mask: SecretMask) -> None:
        self.session, self.policy, self.timeout, self.mask = session, policy, timeout, mask

    def send(self, method: str, url: str, *, auth: OriginAuth = NO_AUTH, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None, data: object = None, follow_redirects: bool = True,
             deadline: Deadline | None = None) -> requests.Response:
        """The answer to `method` `url` (streamed: the caller closes it), after at most `MAX_REDIRECTS`
        redirects. Raises `RefusedURL` for a URL the policy refuses and for too many redirects, the
        deadline's error when `deadline` passes before an answer's headers are in; requests' own
        errors pass through."""
        origin = self.policy.check(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request(method, url, params=params, data=data, headers=headers, auth=auth,
                                     deadline=deadline)
            location = response.headers.get("Location") if response.status_code in REDIRECT_STATUSES else None
            if not follow_redirects or not location:
                self._log(method, url, f"{response.status_code}")
                return response
            response.close()  # its body is never read
            target = urljoin(response.url, location)
            self._log(method, url, f"{response.status_code}, to {shown(target)}")
            target_origin = self.policy.check(target)
            if response.status_code in (307, 308):
                if data is not None and target_origin != origin:
                    raise RefusedURL(f"refused to follow a redirect from {origin} to {target_origin} that would "
                                     "send the request's body (which may hold credentials) there")
            elif method != "HEAD" and (response.status_code == 303 or method == "POST"):
                method, data = "GET", None
            url, origin, params = target, target_origin, None  # the Location is the whole URL
        raise RefusedURL(f"{self.policy.server} redirected more than {MAX_REDIRECTS} times (a redirect loop?)")

    def _request(self, method: str, url: str, *, deadline: Deadline | None, **request: object) -> requests.Response:
        if deadline is not None:
            deadline.check()
        try:
            with watched(deadline):
                # `request` is send()'s params, data, headers and auth; `data` is whatever its caller sends (object).
                response = self.session.request(method, url, timeout=self.timeout, stream=True,
                                                allow_redirects=False, **request)  # type: ignore[arg-type]
        except requests.RequestException:
            if deadline is not None:
                deadline.check()  # the watch cut the wait short: say so, not "connection reset"
            raise
        if deadline is not None and deadline.remaining() < 0:
            response.close()  # the watch may have cut the headers short with no error: EOF ends them
            deadline.check()
        return response

    def _log(self, method: str, url: str, outcome: str) -> None:
        if LOG.isEnabledFor(logging.DEBUG):  # never the headers: credentials
            LOG.debug("%s", self.mask.hide(f"registry: {method} {shown(url)} -> {outcome}"))

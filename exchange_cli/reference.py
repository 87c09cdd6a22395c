"""Docker image references, parsed by the grammar of distribution/reference.

A reference names an image: ``[registry[:port]/]path[:tag][@algo:hex]``. The registry part is only
recognised as such when it looks like a host (has a dot or a port, or is ``localhost``), exactly as
the Docker CLI decides it; otherwise the image lives on Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .quoting import quote

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")


class ReferenceError(ValueError):
    """The string is not a valid image reference; the message says which part is wrong."""


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None
    digest: str | None
    original: str

    @property
    def is_pinned(self) -> bool:
        """Pinned by an explicit tag or a digest, never by the implicit ``latest``."""
        return self.tag is not None or self.digest is not None

    @property
    def registry_host(self) -> str:
        """The host to talk to: Docker Hub's API host differs from its name."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, None, digest, f"{self.name}@{digest}")

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse ``text`` or raise ReferenceError naming the part that breaks the grammar."""
    if not isinstance(text, str) or not text:
        raise ReferenceError("image reference is empty")
    if text != text.strip():
        raise ReferenceError("image reference has leading or trailing white space")
    remainder, digest = _split_digest(text)
    remainder, tag = _split_tag(remainder)
    registry, path = _split_registry(remainder)
    if not _PATH_RE.fullmatch(path):
        raise ReferenceError(
            f"repository path {quote(path)} is invalid: components are lower-case letters and digits, "
            "separated by '.', '_', '__' or '-', joined by '/'"
        )
    if len(f"{registry}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageReference(registry, path, tag, digest, text)


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    remainder, digest = text.split("@", 1)
    if not _DIGEST_RE.fullmatch(digest):
        raise ReferenceError(f"digest {quote(digest)} is invalid: expected algorithm:hex, such as sha256:<64 hex digits>")
    if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
        raise ReferenceError(f"digest {quote(digest)} is invalid: sha256 takes exactly 64 lower-case hex digits")
    return remainder, digest


def _split_tag(text: str) -> tuple[str, str | None]:
    # A colon after the last slash starts a tag; one before it belongs to a registry port.
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon <= slash:
        return text, None
    tag = text[colon + 1 :]
    if not _TAG_RE.fullmatch(tag):
        raise ReferenceError(
            f"tag {quote(tag)} is invalid: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        )
    return text[:colon], tag


def _split_registry(text: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost" or first != first.lower()
    if not sep or not looks_like_host:
        return DOCKER_HUB, text
    if not _DOMAIN_RE.fullmatch(first):
        raise ReferenceError(f"registry {quote(first)} is invalid: expected host[:port]")
    if first == "index.docker.io":
        first = DOCKER_HUB
    return first, rest

"""Content digests as images spell them (``sha256:<64 hex>``), checked before anything uses them.

Every digest an image source takes from an image (a manifest, an index entry, a config, a layer
descriptor, a diff_id, a blob path inside an archive) is untrusted text, and some of them become
file names in the blob cache. `Digest.parse` is the one gate: a `Digest` exists only for text that
follows the OCI digest grammar restricted to the algorithms registered for images, with exactly the
right number of lower-case hex digits. Nothing else can name a cache file or be hashed against.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .errors import ImageError

# Registered algorithms and the exact number of hex digits each encodes to.
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_SHAPE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


class InvalidDigest(ValueError):
    """Not a digest this tool accepts; the message says which rule the text breaks."""


class Digest(str):
    """A validated ``algorithm:hex`` digest. It is a `str`, so it compares, prints and serialises as
    the text it was parsed from; only `Digest.parse` (or `Digest.of`) makes one."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: Any) -> Digest:
        if isinstance(value, Digest):
            return value
        if not isinstance(value, str):
            raise InvalidDigest(f"{_show(value)} is not a string")
        match = _SHAPE.fullmatch(value)
        if match is None:
            raise InvalidDigest(f"{_show(value)} is not of the form algorithm:hex")
        algorithm, encoded = match.groups()
        length = HEX_LENGTHS.get(algorithm)
        if length is None:
            raise InvalidDigest(f"{_show(value)} uses the algorithm {algorithm!r}; "
                                f"only {', '.join(HEX_LENGTHS)} are accepted")
        if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
            raise InvalidDigest(f"{_show(value)} is not {length} lower-case hex digits after '{algorithm}:'")
        return str.__new__(cls, value)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data`."""
        return cls.parse(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)


def parse_digest(value: Any, *, image: str, what: str) -> Digest:
    """`value` as a Digest, or an ImageError naming the image and the field it came from."""
    try:
        return Digest.parse(value)
    except InvalidDigest as error:
        raise ImageError(f"{image}: {what}: {error}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."

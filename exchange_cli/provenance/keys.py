"""Public keys the exchange signs with, their ids, and the repository's key directory `.exchange/keys/`.

A key id is the lowercase hex sha256 of the key's DER SubjectPublicKeyInfo: it depends only on the
public key, so anyone can recompute it from the PEM file. Each key in the directory is stored as
`<key id>.pub` (PEM); old keys stay there so envelopes they signed keep verifying after a rotation.

cryptography is imported by the functions that load, check or write a key, not with this module: the
commands and stages that only name a PublicKey (a run that signs nothing, `exchange show`) never load it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..confined import NotConfined, read_below, read_small_file
from ..durable import write_atomically
from ..errors import UsageError

KEYS_DIR = ".exchange/keys"
KEY_SUFFIX = ".pub"
MAX_KEY_BYTES = 64 * 1024  # a PEM public key is under a kilobyte
ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256"
SUPPORTED = "Ed25519 or ECDSA P-256"

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    PublicKeyObject = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class UnusableKey(UsageError):
    """A key file or setting that cannot be used. Messages never contain key material."""


@dataclass(frozen=True)
class PublicKey:
    key: PublicKeyObject = field(repr=False, compare=False)
    key_id: str
    algorithm: str  # ED25519 or ECDSA_P256
    source: str = field(default="", compare=False)  # where it was read from, for messages

    @classmethod
    def of(cls, key: object, source: str = "") -> PublicKey:
        return cls(key, key_id(key), algorithm_of(key, source), source)  # type: ignore[arg-type]

    @classmethod
    def from_pem(cls, pem: bytes, source: str) -> PublicKey:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            raise UnusableKey(f"{source}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
        return cls.of(key, source)

    @property
    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def short_id(self) -> str:
        return self.key_id[:16]

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Ed25519 signatures are 64 raw bytes; ECDSA ones DER-encoded over SHA-256, as cosign makes them."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def key_id(key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def algorithm_of(key: object, source: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return ED25519
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and isinstance(key.curve, ec.SECP256R1):
        return ECDSA_P256
    raise UnusableKey(f"{source}: the key is {_describe(key)}; the exchange signs with {SUPPORTED} keys")


def _describe(key: object) -> str:
    curve = getattr(key, "curve", None)
    if curve is not None:
        return f"an elliptic-curve key on {curve.name}"
    size = getattr(key, "key_size", None)
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "").replace("PrivateKey", "")
    return f"a {kind} key" + (f" of {size} bits" if size else "")


def keys_dir(root: Path) -> Path:
    return root / KEYS_DIR


def read_key_file(path: Path) -> PublicKey:
    try:
        pem = read_small_file(path, limit=MAX_KEY_BYTES)
    except NotConfined as refused:
        raise UnusableKey(f"the public key {path} {refused.reason}; a PEM public key is a regular file under "
                          f"{MAX_KEY_BYTES // 1024} KiB") from None
    except OSError as error:
        raise UnusableKey(f"cannot read the public key {path}: {error.strerror}") from None
    return PublicKey.from_pem(pem, str(path))


def repository_keys(root: Path) -> list[PublicKey]:
    """Every `<key id>.pub` in the repository's key directory; a file whose name is not its key's id is refused,
    so the id a consumer reads in the file name is the one that verifies."""
    directory = keys_dir(root)
    if not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.glob(f"*{KEY_SUFFIX}")):
        key = _read_repository_key(root, path)
        if path.name != f"{key.key_id}{KEY_SUFFIX}":
            raise UnusableKey(f"{path}: the file name says key id {path.stem}, but the key's id is {key.key_id}")
        keys.append(key)
    return keys


def _read_repository_key(root: Path, path: Path) -> PublicKey:
    """A committed key, read as specs are: a link (the file, `.exchange/` or `keys/`) is refused, never followed."""
    relative = path.relative_to(root).as_posix()
    try:
        pem = read_below(root, relative, limit=MAX_KEY_BYTES)
    except NotConfined as refused:
        raise UnusableKey(f"{relative} {refused.reason}; keys must be regular files in the repository") from None
    except OSError as error:
        raise UnusableKey(f"cannot read the public key {relative}: {error.strerror}") from None
    return PublicKey.from_pem(pem, relative)


def key_file(root: Path, key: PublicKey) -> Path:
    """The key's file in the repository at `root`."""
    return keys_dir(root) / f"{key.key_id}{KEY_SUFFIX}"


def holds_key(path: Path, key: PublicKey) -> bool:
    """`path` (the key's key_file) holds the key as write_key writes it."""
    return path.is_file() and path.read_bytes() == key.pem


def write_key(root: Path, key: PublicKey) -> tuple[Path, bool]:
    """(path, written): the key's file in the repository, written whole unless an identical one is there."""
    path = key_file(root, key)
    if holds_key(path, key):
        return path, False
    write_atomically(path, key.pem)
    return path, True


def require_committed(root: Path, key: PublicKey) -> None:
    """Sign only with a key whose public half is in the repository, where `exchange verify` looks."""
    if all(known.key_id != key.key_id for known in repository_keys(root)):
        raise UnusableKey(f"the signing key {key.key_id} ({key.source or 'given'}) is not in {KEYS_DIR}/; "
                          "commit its public key first: exchange keys init --sign-key …")

"""The private side: what signs the exchange's envelopes. A PEM private key (Ed25519 or ECDSA P-256)
from a file or from EXCHANGE_SIGNING_KEY (base64, like GCLOUD_SERVICE_ACCOUNT), or a Google Cloud KMS
key version (`gcpkms://projects/…/cryptoKeyVersions/N`), which never lets the key out.

Every signer has the same small interface (`Signer`): its public key and `sign(data)`. Nothing here
ever puts key material into a message, a repr or an exception: errors say which setting is wrong
and why, and drop the underlying exception.

Environment:
  EXCHANGE_SIGNING_KEY           base64 of a PEM private key, or a gcpkms:// key version, used when
                                 --sign-key is not given
  EXCHANGE_SIGNING_KEY_PASSWORD  the password of an encrypted PEM private key
  EXCHANGE_KMS_ENDPOINT          http(s)://host:port of a Cloud KMS stand-in (tests), talked to anonymously
  GCLOUD_SERVICE_ACCOUNT         base64 service-account JSON for KMS too; else Application Default Credentials
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from ..confined import NotConfined, read_small_file
from ..errors import ExchangeError, UsageError
from .keys import ECDSA_P256, ED25519, MAX_KEY_BYTES, PublicKey, algorithm_of

SIGNING_KEY_ENV = "EXCHANGE_SIGNING_KEY"
SIGNING_KEY_PASSWORD_ENV = "EXCHANGE_SIGNING_KEY_PASSWORD"
KMS_ENDPOINT_ENV = "EXCHANGE_KMS_ENDPOINT"
KMS_SCHEME = "gcpkms://"
# cosign writes .../cryptoKeys/K/versions/N; Cloud KMS names it .../cryptoKeys/K/cryptoKeyVersions/N.
_KMS_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/(?:cryptoKeyVersions|versions)/\d+")
# Cloud KMS algorithm names of the keys the exchange signs with.
KMS_ALGORITHMS = {"EC_SIGN_ED25519": ED25519, "EC_SIGN_P256_SHA256": ECDSA_P256}

if TYPE_CHECKING:  # cryptography is imported where a key is loaded or used (keys.py says why)
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey  # what algorithm_of accepts of private keys


class SigningKeyError(UsageError):
    """A signing-key setting that cannot be used; never shows the key."""


class SigningFailed(ExchangeError):
    """The signer refused or returned something that does not verify: nothing is published."""


class Signer(Protocol):
    @property
    def description(self) -> str:
        """Where the key is, safe to print (a path, a variable name, a KMS resource): never the key."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """Ed25519: the 64-byte signature of `data`; ECDSA P-256: DER signature over SHA-256(`data`)."""


@dataclass(frozen=True)
class LocalKeySigner:
    """A private key held in memory, read from a PEM file or from the environment."""

    description: str
    _key: SigningKey = field(repr=False, compare=False)
    public_key: PublicKey = field(compare=False)

    @classmethod
    def from_pem(cls, pem: bytes, description: str, password: bytes | None = None) -> LocalKeySigner:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except TypeError:  # encrypted without a password, or a password for a plain key
            hint = (f"it is encrypted: set {SIGNING_KEY_PASSWORD_ENV}" if password is None
                    else f"it is not encrypted: unset {SIGNING_KEY_PASSWORD_ENV}")
            raise SigningKeyError(f"{description}: cannot load the private key, {hint}") from None
        except (ValueError, binascii.Error):
            raise SigningKeyError(f"{description}: not a PEM private key (or a wrong password); "
                                  "give an unencrypted PKCS#8 or SEC1 PEM Ed25519 or ECDSA P-256 key") from None
        except Exception:  # noqa: BLE001 - whatever the parser raised may quote the input
            raise SigningKeyError(f"{description}: the private key cannot be loaded") from None
        algorithm_of(key, description)  # refuses RSA, other curves, …
        return cls(description, cast("SigningKey", key), PublicKey.of(key.public_key(), description))

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


class KmsClient(Protocol):
    """What KmsSigner uses of google.cloud.kms.KeyManagementServiceClient."""

    def get_public_key(self, request: dict[str, Any]) -> Any: ...

    def asymmetric_sign(self, request: dict[str, Any]) -> Any: ...


@dataclass
class KmsSigner:
    """A Cloud KMS asymmetric signing key version. The public key is fetched once; every request and
    response carries a CRC32C, checked both ways, as Google recommends for KMS integrity."""

    name: str  # projects/…/cryptoKeyVersions/N
    client: KmsClient = field(repr=False)
    _public_key: PublicKey | None = field(default=None, repr=False)
    _algorithm: str | None = field(default=None, repr=False)

    @property
    def description(self) -> str:
        return f"{KMS_SCHEME}{self.name}"

    @property
    def public_key(self) -> PublicKey:
        if self._public_key is None:
            response = self._call("read the public key of", self.client.get_public_key, {"name": self.name})
            algorithm = KMS_ALGORITHMS.get(_enum_name(response.algorithm))
            if algorithm is None:
                raise SigningKeyError(f"{self.description}: a {_enum_name(response.algorithm)} key; the exchange "
                                      "signs with EC_SIGN_ED25519 or EC_SIGN_P256_SHA256 keys")
            pem = response.pem.encode()
            if _crc32c(pem) != int(response.pem_crc32c or 0):
                raise SigningFailed(f"{self.description}: the public key was corrupted in transit (CRC32C mismatch)")
            key = PublicKey.from_pem(pem, self.description)
            if key.algorithm != algorithm:
                raise SigningFailed(f"{self.description}: KMS says {_enum_name(response.algorithm)} but sent "
                                    f"a {key.algorithm} public key")
            self._public_key, self._algorithm = key, algorithm
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        key = self.public_key
        if self._algorithm == ED25519:  # pure Ed25519 signs the message itself
            request: dict[str, Any] = {"name": self.name, "data": data, "data_crc32c": _crc32c(data)}
            verified = "verified_data_crc32c"
        else:  # ECDSA P-256 signs a SHA-256 digest computed here
            from cryptography.hazmat.primitives import hashes

            digest = hashes.Hash(hashes.SHA256())
            digest.update(data)
            sha256 = digest.finalize()
            request = {"name": self.name, "digest": {"sha256": sha256}, "digest_crc32c": _crc32c(sha256)}
            verified = "verified_digest_crc32c"
        response = self._call("sign with", self.client.asymmetric_sign, request)
        if not getattr(response, verified) or response.name != self.name:
            raise SigningFailed(f"{self.description}: KMS did not confirm receiving the request intact; nothing signed")
        signature = bytes(response.signature)
        if _crc32c(signature) != int(response.signature_crc32c or 0):
            raise SigningFailed(f"{self.description}: the signature was corrupted in transit (CRC32C mismatch)")
        if not key.verifies(signature, data):
            raise SigningFailed(f"{self.description}: KMS returned a signature its own public key does not verify")
        return signature

    def _call(self, what: str, method: Callable[..., Any], request: dict[str, Any]) -> Any:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            return method(request=request)
        except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as error:
            reason = getattr(error, "message", None) or type(error).__name__
            code = getattr(error, "code", None)
            shown = f"HTTP {int(code)} " if isinstance(code, int) else ""
            raise SigningFailed(f"cannot {what} {self.description}: {shown}{reason}") from None


def _enum_name(value: Any) -> str:
    return getattr(value, "name", str(value))


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


def parse_kms_reference(reference: str) -> str:
    """gcpkms://projects/…/cryptoKeyVersions/N (or cosign's …/versions/N) -> the key version's resource name."""
    name = reference.removeprefix(KMS_SCHEME).strip("/")
    if not _KMS_NAME.fullmatch(name):
        raise SigningKeyError(f"{reference}: expected gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/"
                              "cryptoKeyVersions/N (a key version, not a key)")
    return name.replace("/versions/", "/cryptoKeyVersions/")


def kms_client(env: Mapping[str, str]) -> KmsClient:
    """The REST client (no gRPC channel to keep alive). Credentials as for the bucket: the emulator-style
    endpoint anonymously, else GCLOUD_SERVICE_ACCOUNT, else Application Default Credentials."""
    from google.cloud import kms

    from ..storage.settings import SERVICE_ACCOUNT_ENV, service_account_credentials

    endpoint = (env.get(KMS_ENDPOINT_ENV) or "").strip()
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SigningKeyError(f"{KMS_ENDPOINT_ENV} must be http(s)://host:port")
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth leaves __init__ untyped
        transport = kms.KeyManagementServiceClient.get_transport_class("rest")(
            host=parts.netloc, credentials=anonymous, url_scheme=parts.scheme)
        return kms.KeyManagementServiceClient(transport=transport, client_options=ClientOptions())
    from google.auth import exceptions as auth_exceptions

    encoded = (env.get(SERVICE_ACCOUNT_ENV) or "").strip()
    credentials = service_account_credentials(encoded) if encoded else None
    try:
        return kms.KeyManagementServiceClient(credentials=credentials, transport="rest")
    except auth_exceptions.GoogleAuthError as error:  # no Application Default Credentials on this machine
        raise SigningKeyError(f"no Google credentials to sign with Cloud KMS ({type(error).__name__}): set "
                              f"{SERVICE_ACCOUNT_ENV} (base64 of a service-account JSON key), or run "
                              "`gcloud auth application-default login`") from None


def open_signer(reference: str | None, env: Mapping[str, str] = os.environ) -> Signer | None:
    """--sign-key REF (a PEM file or gcpkms://…), else EXCHANGE_SIGNING_KEY; None: signing is off."""
    password = env.get(SIGNING_KEY_PASSWORD_ENV) or None
    secret = password.encode() if password else None
    if reference is not None and reference.strip():
        reference = reference.strip()
        if reference.startswith(KMS_SCHEME):
            return KmsSigner(parse_kms_reference(reference), kms_client(env))
        path = Path(reference).expanduser()
        try:
            pem = read_small_file(path, limit=MAX_KEY_BYTES)
        except NotConfined as refused:
            raise SigningKeyError(f"--sign-key {path} {refused.reason}; a PEM private key is a regular file under "
                                  f"{MAX_KEY_BYTES // 1024} KiB") from None
        except OSError as error:
            raise SigningKeyError(f"--sign-key {path}: {error.strerror}") from None
        return LocalKeySigner.from_pem(pem, f"key file {path}", secret)
    value = (env.get(SIGNING_KEY_ENV) or "").strip()
    if not value:
        return None
    if value.startswith(KMS_SCHEME):
        return KmsSigner(parse_kms_reference(value), kms_client(env))
    try:
        pem = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(f"{SIGNING_KEY_ENV} is set but is not base64 (base64 -w0 key.pem) "
                              "nor a gcpkms:// key version") from None
    return LocalKeySigner.from_pem(pem, SIGNING_KEY_ENV, secret)


def generate_private_key(algorithm: str) -> bytes:
    """A new PEM (PKCS#8, unencrypted) private key, for `exchange keys init --generate` and the demo."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = ed25519.Ed25519PrivateKey.generate() if algorithm == ED25519 else ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())

"""Where the exchange publishes and how it authenticates: options, else the environment, checked up front.

Environment:
  EXCHANGE_BUCKET_URI     gs://bucket[/prefix] or file:///absolute/path (when no option is given)
  EXCHANGE_DOWNLOAD_URL   public base URL of the objects (default: https://storage.googleapis.com/<bucket>/<prefix>,
                          or the file:// URL of the directory)
  GCLOUD_SERVICE_ACCOUNT  base64 of a service-account JSON key; decoded in memory only. Without it,
                          Application Default Credentials are used.
  STORAGE_EMULATOR_HOST   talk to a GCS emulator there, anonymously (real credentials are never sent to it)
  EXCHANGE_GCS_RETRY_SECONDS  how long a failing GCS request is retried before the run gives up (default 120)
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from exchange_cli.errors import CredentialsError, UsageError
from exchange_cli.jsonpos import NotStrictJson, strict_data
from exchange_cli.storage.bucket import (
    SUPPORTED_URIS,
    Bucket,
    BucketLocation,
    GcsLocation,
    open_bucket,
    parse_bucket_uri,
)

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

BUCKET_URI_ENV = "EXCHANGE_BUCKET_URI"
DOWNLOAD_URL_ENV = "EXCHANGE_DOWNLOAD_URL"
SERVICE_ACCOUNT_ENV = "GCLOUD_SERVICE_ACCOUNT"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
RETRY_SECONDS_ENV = "EXCHANGE_GCS_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0  # google-cloud-storage's own default deadline
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


class StorageSettingsError(UsageError):
    pass


@dataclass(frozen=True)
class StorageSettings:
    location: BucketLocation
    download_url: str  # base URL; an object's URL is <download_url>/<name>
    # None: Application Default Credentials, looked up on first use. Never shown in reprs.
    credentials: Credentials | None = field(default=None, repr=False, compare=False)
    retry_seconds: float | None = None  # GCS only

    @property
    def bucket_uri(self) -> str:
        return self.location.uri

    @classmethod
    def from_options(cls, bucket_uri: str | None, download_url: str | None,
                     env: Mapping[str, str] = os.environ) -> StorageSettings:
        uri = _given(bucket_uri) or _given(env.get(BUCKET_URI_ENV))
        if uri is None:
            raise StorageSettingsError(f"no bucket: pass --bucket or set {BUCKET_URI_ENV} ({SUPPORTED_URIS})")
        location = parse_bucket_uri(uri)
        base_url = _given(download_url) or _given(env.get(DOWNLOAD_URL_ENV)) or location.default_download_url()
        _check_download_url(base_url)
        if not isinstance(location, GcsLocation):
            return cls(location, base_url.rstrip("/"))
        return cls(location, base_url.rstrip("/"), gcs_credentials(env), gcs_retry_seconds(env))

    def open_bucket(self) -> Bucket:
        return open_bucket(self.location.uri, download_url=self.download_url, credentials=self.credentials,
                           retry_seconds=self.retry_seconds)


def gcs_credentials(env: Mapping[str, str]) -> Credentials | None:
    """Credentials the environment configures; None means Application Default Credentials."""
    if _given(env.get(EMULATOR_ENV)):
        from google.auth.credentials import AnonymousCredentials

        # google-auth ships py.typed but leaves this constructor unannotated.
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    encoded = _given(env.get(SERVICE_ACCOUNT_ENV))
    return None if encoded is None else service_account_credentials(encoded)


def gcs_retry_seconds(env: Mapping[str, str]) -> float:
    text = _given(env.get(RETRY_SECONDS_ENV))
    if text is None:
        return DEFAULT_RETRY_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise StorageSettingsError(f"{RETRY_SECONDS_ENV}={text!r}: give a number of seconds greater than 0")
    return seconds


def service_account_credentials(encoded: str) -> Credentials:
    """Decode a base64 service-account JSON key in memory. Errors say what is wrong, never the value,
    and drop the underlying exception, whose text or attributes may hold parts of it."""
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    try:
        # Tolerate the line wrapping `base64` adds; anything else that is not base64 is an error.
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_service_account("it is not valid base64") from None
    try:
        info = strict_data(raw)
    except NotStrictJson:  # its message would quote the secret: never shown
        raise _bad_service_account("it does not decode to JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise _bad_service_account('it is not a service-account key (its "type" must be "service_account")') from None
    missing = [name for name in _SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(name), str) or not info.get(name)]
    if missing:
        raise _bad_service_account(f"the key lacks {', '.join(missing)}") from None
    try:
        # google-auth ships py.typed but leaves this constructor unannotated.
        load = service_account.Credentials.from_service_account_info
        credentials: Credentials = load(info)  # type: ignore[no-untyped-call]
        return credentials
    except (ValueError, TypeError, KeyError, GoogleAuthError):
        raise _bad_service_account("its private key cannot be loaded") from None


def _bad_service_account(problem: str) -> CredentialsError:
    return CredentialsError(
        f"{SERVICE_ACCOUNT_ENV} is set but unusable: {problem}. "
        "Set it to the base64-encoded JSON key of a service account (base64 -w0 key.json), or unset it."
    )


def _check_download_url(url: str) -> None:
    parts = urlsplit(url)
    # The URL itself is never echoed: these parts are where a download base carries a credential.
    if "@" in parts.netloc:
        raise StorageSettingsError(
            f"download URL (--download-url or {DOWNLOAD_URL_ENV}) carries credentials (user:password@host); "
            "it is published in every manifest's rootfs-url and in run reports, so it must be the public "
            "URL of the objects, without them")
    if parts.query or parts.fragment:
        raise StorageSettingsError(
            f"download URL (--download-url or {DOWNLOAD_URL_ENV}) has a query or fragment (a signed-URL "
            "token?); objects are published at <download URL>/<name>, so give the public base URL alone")
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    if parts.scheme == "file" and parts.path.startswith("/"):
        return
    raise StorageSettingsError(
        f"download URL (--download-url or {DOWNLOAD_URL_ENV}) must be an http(s):// URL with a host "
        "or a file:///absolute/path URL"
    )


def _given(value: str | None) -> str | None:
    """Options and variables that are set but empty count as not given."""
    return value.strip() if value is not None and value.strip() else None

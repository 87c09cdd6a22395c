"""Which exchange owns a bucket: deleting needs proof of ownership.

`verify-storage --delete-orphans` deletes every object that the manifests it reads do not reference.
Run in the wrong repository (any git checkout, with EXCHANGE_BUCKET_URI set in the shell), or at a
directory that is not a bucket, that is every object. So the first `process` run writes an ownership
record, `.exchange-owner.json`, a control object (never listed, never an orphan) created only if absent:
the exchange's remote (normalised: `git@host:org/x.git` and `https://host/org/x` are the same exchange)
and its branch. Deletion is refused without a record, or when the record names another exchange.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import git as gitpython

from . import git
from .errors import UsageError, redact
from .jsonpos import strict_document
from .storage.bucket import MAX_CONTROL_BYTES, Bucket, ObjectExists

OWNER_RECORD = ".exchange-owner.json"
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).*)$")


class NotTheOwner(UsageError):
    """The bucket belongs to another exchange, or to none we can prove: nothing is deleted."""


@dataclass(frozen=True)
class Ownership:
    exchange: str  # the remote, normalised
    branch: str

    def describe(self) -> str:
        return f"{self.exchange} ({self.branch})"

    def as_bytes(self) -> bytes:
        record = {"exchange": self.exchange, "branch": self.branch,
                  "claimed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": "exchange process"}
        return (json.dumps(record, indent=2) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> Ownership | None:
        try:
            record = strict_document(data, OWNER_RECORD, ValueError, limit=MAX_CONTROL_BYTES)
        except ValueError:
            return None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("exchange", "branch")):
            return None
        return cls(record["exchange"], record["branch"])


def normalised_remote(url: str) -> str:
    """One name per repository, whatever the transport: `host/org/repo`, or the absolute path of a local
    one; credentials, `.git`, trailing slashes and the scheme dropped, the host lower-cased."""
    url = url.strip()
    scp = _SCP_LIKE.match(url) if "://" not in url else None
    if scp is not None:
        host, path = scp["host"], scp["path"]
    else:
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            return str(PurePosixPath(parts.path or url)).removesuffix("/").removesuffix(".git")
        host, path = parts.hostname or "", parts.path
        if parts.port and parts.scheme not in ("ssh", "git+ssh"):
            host = f"{host}:{parts.port}"
    path = path.strip("/").removesuffix(".git").removesuffix("/")
    return f"{host.lower()}/{path}"


def exchange_identity(repo: gitpython.Repo, remote: str, branch: str) -> Ownership:
    url = git.remote_url(repo, remote)
    if url is None:
        if "://" in remote or remote.startswith("/"):
            url = remote
        else:
            raise UsageError(f"no git remote {remote!r}: the bucket's owner is named by the exchange's remote "
                             "(use --remote)")
    return Ownership(normalised_remote(url), branch)


def read_owner(bucket: Bucket) -> Ownership | None:
    found = bucket.read_control(OWNER_RECORD)
    if found is None:
        return None
    data, _ = found
    owner = Ownership.parse(data)
    if owner is None:
        raise NotTheOwner(f"{bucket.uri}: {OWNER_RECORD} is not an ownership record; nothing is deleted "
                          "(a maintainer can remove the record, and the next process run writes it again)")
    return owner


def claim(bucket: Bucket, identity: Ownership, log: Callable[[str], None],
          warn: Callable[[str], None]) -> None:
    """Record `identity` as the bucket's owner unless a record exists. A record naming another remote or
    branch is said, not fatal: publishing adds objects and deletes none of another's (a run pushing to a
    second remote, a repository that moved); only deleting needs the record to match."""
    try:
        bucket.create_control(OWNER_RECORD, identity.as_bytes())
    except ObjectExists:
        pass
    else:
        log(f"{bucket.uri}: recorded {identity.describe()} as the bucket's owner ({OWNER_RECORD})")
        return
    try:
        owner = read_owner(bucket)
    except NotTheOwner as unreadable:
        warn(str(unreadable))
        return
    if owner is not None and owner != identity:
        warn(redact(f"{bucket.uri} is recorded as the bucket of {owner.describe()}, not of {identity.describe()}: "
                    f"verify-storage --delete-orphans deletes only from its owner's checkout ({OWNER_RECORD})"))


def require_owner(bucket: Bucket, identity: Ownership) -> None:
    """Deleting is allowed only in a bucket whose record names this exchange."""
    owner = read_owner(bucket)
    if owner is None:
        raise NotTheOwner(redact(
            f"{bucket.uri} has no ownership record ({OWNER_RECORD}): it is not an exchange's bucket, or no "
            f"`exchange process` has run with it yet; nothing is deleted (a process run of {identity.describe()} "
            "records it)"))
    if owner != identity:
        raise NotTheOwner(redact(f"{bucket.uri} belongs to {owner.describe()}, not to this exchange, "
                                 f"{identity.describe()}; nothing is deleted"))

"""The publish lease: at most one exchange run changes a bucket at a time.

A run creates the control object ``.exchange-lease.json`` create-only (a local directory: under an
advisory file lock; GCS: ``ifGenerationMatch=0``) before its first upload, renews it while it works
(every ttl/4, each write conditional on the generation it last wrote), and deletes it once its push is
confirmed and checked, or its rollback is done. A run that finds the lease held waits for it; it
breaks a lease only when it is stale: expired (with a grace for clocks that disagree) or held by a
process that is certainly gone (storage/owner.py). A run whose renewal finds the lease taken by
someone else has lost it, and stops before it pushes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import ExchangeError, UsageError
from ..jsonpos import strict_document
from . import DEFAULT_WAIT_SECONDS, WAIT_ENV
from .bucket import MAX_CONTROL_BYTES, Bucket, ObjectChanged, ObjectExists, StorageError
from .owner import Owner

LEASE_OBJECT = ".exchange-lease.json"
DEFAULT_TTL_SECONDS = 300.0
CLOCK_GRACE_SECONDS = 60.0  # another machine's clock may run ahead of the holder's by this much
POLL_SECONDS = 2.0


class LeaseUnavailable(UsageError):
    """Another run holds the lease and kept it for longer than we were willing to wait."""


class LeaseLost(ExchangeError):
    """Our lease was broken or replaced while we worked: we must not publish."""


@dataclass(frozen=True)
class Confirming:
    """Manifests the holder is pushing, then checking that their objects are in the bucket (restoring
    those that are not): if the holder dies, whoever breaks its lease finishes the check for those the
    remote has. `commit`: where the run started, for messages."""

    commit: str
    manifests: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"commit": self.commit, "manifests": list(self.manifests)}

    @classmethod
    def from_json(cls, data: object) -> Confirming | None:
        if not isinstance(data, dict) or not isinstance(data.get("commit"), str):
            return None
        manifests = data.get("manifests")
        if not isinstance(manifests, list) or not all(isinstance(path, str) for path in manifests):
            return None
        return cls(data["commit"], tuple(manifests))


_LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z: later, and time.strftime cannot show it


def _plausible_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value <= _LATEST_TIME


@dataclass(frozen=True)
class LeaseRecord:
    token: str
    owner: Owner
    purpose: str
    expires: float  # seconds since the epoch
    confirming: Confirming | None = None

    def as_bytes(self) -> bytes:
        document = {"token": self.token, "owner": self.owner.as_json(), "purpose": self.purpose,
                    "expires": self.expires, "expires-at": _shown(self.expires)}
        if self.confirming is not None:
            document["confirming"] = self.confirming.as_json()
        return json.dumps(document, indent=2).encode()

    @classmethod
    def parse(cls, data: bytes) -> LeaseRecord | None:
        """The record, or None when it is not one (unreadable: broken as stale, see BucketLease). Read as
        every document from outside is (jsonpos): no NaN, no Infinity, no 10,000 levels."""
        try:
            document = strict_document(data, "the lease", ValueError, limit=MAX_CONTROL_BYTES)
            owner = Owner.from_json(document["owner"])
            expires = document["expires"]
            if owner is None or not _plausible_time(expires):
                return None
            return cls(str(document["token"]), owner, str(document["purpose"]), float(expires),
                       Confirming.from_json(document.get("confirming")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def stale_because(self, now: float) -> str | None:
        if now > self.expires + CLOCK_GRACE_SECONDS:
            return f"it expired at {_shown(self.expires)}"
        if self.owner.is_gone():
            return f"its owner, {self.owner}, is gone"
        return None


class BucketLease:
    def __init__(self, bucket: Bucket, *, purpose: str, log: Callable[[str], None],
                 ttl: float = DEFAULT_TTL_SECONDS, wait: float = DEFAULT_WAIT_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.bucket, self.purpose, self.log, self.ttl, self.wait, self.clock = bucket, purpose, log, ttl, wait, clock
        self.token = uuid.uuid4().hex
        self._generation: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._writing = threading.Lock()  # the renewer and `confirming` both replace the record
        self._confirming: Confirming | None = None
        self.inherited: list[Confirming] = []  # checks that dead holders of leases we broke left unfinished

    @property
    def held(self) -> bool:
        return self._generation is not None

    def acquire(self) -> None:
        """Hold the lease (a no-op when held): wait while another live run holds it, break it when stale."""
        if self.held:
            return
        deadline, announced = self.clock() + self.wait, False
        while True:
            try:
                self._generation = self.bucket.create_control(LEASE_OBJECT, self._record().as_bytes())
                break
            except ObjectExists:
                pass
            broken = break_abandoned_lease(self.bucket, self.log, clock=self.clock)
            if broken is not None:
                self.inherit(broken)
                continue
            found = self.bucket.read_control(LEASE_OBJECT)
            holder = None if found is None else LeaseRecord.parse(found[0])
            if holder is None:
                continue  # released (or broken) since we looked: try again
            if self.clock() >= deadline:
                raise LeaseUnavailable(
                    f"{self.bucket.uri} is leased by another exchange run ({holder.owner}, {holder.purpose}) "
                    f"until {_shown(holder.expires)}; waited {self.wait:.0f} s. Try again when it is done "
                    f"(--lease-wait sets how long to wait)")
            if not announced:
                self.log(f"waiting for the lease on {self.bucket.uri}: another exchange run ({holder.owner}, "
                         f"{holder.purpose}) holds it until {_shown(holder.expires)}")
                announced = True
            time.sleep(POLL_SECONDS)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="lease-renewer", daemon=True)
        self._renewer.start()

    def inherit(self, broken: BrokenLease) -> None:
        if broken.confirming is not None and broken.confirming not in self.inherited:
            self.inherited.append(broken.confirming)

    def confirming(self, confirming: Confirming | None) -> None:
        """Say in the lease (now, not at the next renewal) which manifests we push and check; None: done."""
        self._confirming = confirming
        if self.held and self._lost is None:
            with contextlib.suppress(StorageError):  # a passing failure: the next renewal writes it
                self._rewrite()

    def ensure_held(self) -> None:
        """LeaseLost when a renewal found the lease taken over: publishing now could race another run."""
        if self._lost is not None:
            raise LeaseLost(f"the lease on {self.bucket.uri} was lost ({self._lost}); nothing more is published")

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        generation, self._generation = self._generation, None
        if self._lost is None and generation is not None:  # held: not None
            try:
                self.bucket.delete_control(LEASE_OBJECT, generation)
            except (ObjectChanged, StorageError) as error:
                self.log(f"could not release the lease on {self.bucket.uri} ({error}); it expires by itself")

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not self._rewrite():
                    return
            except StorageError:
                continue  # a passing failure: the lease lasts ttl, there are more chances before it expires

    def _rewrite(self) -> bool:
        """Write our record again, conditional on our last write; False (and lost) when someone replaced it."""
        with self._writing:
            generation = self._generation
            if generation is None:  # released: nothing of ours to rewrite (an unconditional write would recreate it)
                return False
            try:
                self._generation = self.bucket.replace_control(LEASE_OBJECT, self._record().as_bytes(), generation)
            except ObjectChanged as error:
                self._lost = str(error)
                return False
            return True

    def _record(self) -> LeaseRecord:
        return LeaseRecord(self.token, Owner.current(), self.purpose, self.clock() + self.ttl, self._confirming)


def _shown(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class BrokenLease:
    """A stale lease we deleted, and the check after a push its holder had not finished, if any."""

    confirming: Confirming | None


def break_abandoned_lease(bucket: Bucket, log: Callable[[str], None], *,
                          clock: Callable[[], float] = time.time) -> BrokenLease | None:
    """Delete the lease when it is stale (a killed run's); None when none was broken."""
    found = bucket.read_control(LEASE_OBJECT)
    if found is None:
        return None
    data, generation = found
    holder = LeaseRecord.parse(data)
    stale = "it cannot be read" if holder is None else holder.stale_because(clock())
    if stale is None:
        return None
    log(f"breaking the lease on {bucket.uri}: {stale}")
    try:
        if not bucket.delete_control(LEASE_OBJECT, generation):
            return None
    except ObjectChanged:
        return None  # renewed, released or broken by someone else meanwhile
    return BrokenLease(None if holder is None else holder.confirming)


@contextmanager
def leased(bucket: Bucket, purpose: str, *, enabled: bool = True,
           log: Callable[[str], None] = lambda line: None) -> Iterator[None]:
    """Hold the bucket's lease around a block (when `enabled`), waiting up to $EXCHANGE_LEASE_WAIT seconds."""
    lease = BucketLease(bucket, purpose=purpose, log=log, wait=_wait_from_env())
    if enabled:
        lease.acquire()
        for pending in lease.inherited:  # only `exchange process` can export an image again
            log(f"the lease we broke says its run died while pushing or checking {len(pending.manifests)} "
                "manifest(s); run `exchange process` to finish that check (`verify-storage` shows what is missing)")
    try:
        yield
    finally:
        lease.release()


def _wait_from_env() -> float:
    text = os.environ.get(WAIT_ENV, "").strip()
    try:
        return max(float(text), 0.0) if text else DEFAULT_WAIT_SECONDS
    except ValueError:
        raise UsageError(f"{WAIT_ENV}={text!r} is not a number of seconds") from None

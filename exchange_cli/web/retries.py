"""Which failures of a request are worth another attempt, and how many attempts, how far apart.

Transient: 5xx and 429 answers (`TRANSIENT_STATUSES`, honouring Retry-After), a dropped connection, a
timeout; the caller raises `Transient` for them. 401, 403 and 404 are final. Every attempt stays within the
transfer's deadline (deadlines.py): retries are no way around it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import UsageError

if TYPE_CHECKING:
    import requests

TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
T = TypeVar("T")


RETRY_SECONDS_ENV = "EXCHANGE_REGISTRY_RETRY_SECONDS"


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries, with doubling pauses between them from `base_delay` up to `max_delay` (longer
    when a Retry-After asks, up to `max_delay`). `from_environment`: the pauses are scaled so that they
    add up to EXCHANGE_REGISTRY_RETRY_SECONDS, read when a pause is due (unset: as given, 7.5 s)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    from_environment: bool = False

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        policy = self.within(retry_seconds(self)) if self.from_environment else self
        backoff: float = policy.base_delay * 2 ** (failed_attempt - 1)
        return min(policy.max_delay, max(backoff, retry_after or 0.0))

    def total_pause(self) -> float:
        """How long the pauses of a request that fails every attempt add up to, without Retry-After."""
        return sum(min(self.max_delay, self.base_delay * 2.0 ** attempt) for attempt in range(self.attempts - 1))

    def within(self, seconds: float) -> RetryPolicy:
        """The same schedule, every pause scaled so that they add up to `seconds`."""
        total = self.total_pause()
        scale = seconds / total if total else 0.0
        return RetryPolicy(self.attempts, self.base_delay * scale, self.max_delay * scale)


def retry_seconds(policy: RetryPolicy) -> float:
    """EXCHANGE_REGISTRY_RETRY_SECONDS (0 or more), or `policy`'s own total pause when it is unset."""
    text = os.environ.get(RETRY_SECONDS_ENV, "").strip()
    if not text:
        return policy.total_pause()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"{RETRY_SECONDS_ENV}={text!r}: give a number of seconds, 0 or more")
    return seconds


# 0.5 + 1 + 2 + 4 = 7.5 s of pauses between five attempts, unless EXCHANGE_REGISTRY_RETRY_SECONDS says otherwise.
DEFAULT_RETRY = RetryPolicy(from_environment=True)


class Transient(Exception):
    """A failure worth another attempt. Not an OSError, so nothing on the way up mistakes it for bad data."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def with_retries(policy: RetryPolicy, action: Callable[[], T], *, failure: str, error: Callable[[str], Exception],
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action` until it succeeds, or until `policy` runs out; then `error` of a message starting with
    `failure`."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except Transient as exc:
            if attempt == policy.attempts:
                raise error(f"{failure}: gave up after {attempt} attempts: {exc.reason}") from exc
            sleep(policy.delay(attempt, exc.retry_after))
    raise AssertionError("unreachable")


def retry_after(response: requests.Response) -> float | None:
    """The answer's Retry-After in seconds, when it gives them."""
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None

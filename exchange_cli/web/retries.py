"""Which failures of a request are worth another attempt, and how many attempts, how far apart.

Transient: 5xx and 429 answers (`TRANSIENT_STATUSES`, honouring Retry-After), a dropped connection, a
timeout; the caller raises `Transient` for them. 401, 403 and 404 are final. Every attempt stays within the
transfer's deadline (deadlines.py): retries are no way around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import requests

TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        backoff: float = self.base_delay * 2 ** (failed_attempt - 1)
        return min(self.max_delay, max(backoff, retry_after or 0.0))


DEFAULT_RETRY = RetryPolicy()


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

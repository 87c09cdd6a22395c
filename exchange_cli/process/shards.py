"""Which machine exports which spec: a deterministic split of the changed specs into N shares.

Every shard computes the whole split itself from the same inputs (the plan and the image sizes), so
no machine has to hand the assignment to the others. Shares are balanced by image size when every
size is known (largest first, each to the lightest shard so far); otherwise each spec weighs the
same, which deals the specs out round-robin in path order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..image.resolve import ExportOptions
    from .plan import SpecJob

CIRCLE_INDEX_ENV = "CIRCLE_NODE_INDEX"
CIRCLE_TOTAL_ENV = "CIRCLE_NODE_TOTAL"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `total`, counted from 1 (CircleCI's CIRCLE_NODE_INDEX counts from 0)."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1 or not 1 <= self.index <= self.total:
            raise UsageError(f"shard {self.index}/{self.total}: use I/N with 1 <= I <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def label(self) -> str:
        """For file names: shard-2-of-4."""
        return f"shard-{self.index}-of-{self.total}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.fullmatch(text)
        if match is None:
            raise UsageError(f"--shard {text!r}: expected I/N, such as 2/4")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_circleci(cls, env: Mapping[str, str] = os.environ) -> Shard | None:
        index, total = env.get(CIRCLE_INDEX_ENV, "").strip(), env.get(CIRCLE_TOTAL_ENV, "").strip()
        if not index or not total:
            return None
        if not index.isdigit() or not total.isdigit():
            raise UsageError(f"{CIRCLE_INDEX_ENV}={index!r} and {CIRCLE_TOTAL_ENV}={total!r} are not numbers")
        return cls(int(index) + 1, int(total))


def assign(jobs: Sequence[SpecJob], total: int, sizes: Mapping[str, int | None]) -> dict[str, int]:
    """Spec path -> shard index (from 1). `sizes` maps spec paths to image sizes, None when unknown."""
    balanced = bool(jobs) and all(sizes.get(job.relative_path) is not None for job in jobs)
    weight = {job.relative_path: (sizes[job.relative_path] if balanced else 1) for job in jobs}
    # Heaviest first; ties in path order, so every machine sorts identically.
    order = sorted(weight, key=lambda path: (-weight[path], path))  # type: ignore[operator]
    loads = [0] * total
    assignment: dict[str, int] = {}
    for path in order:
        lightest = min(range(total), key=lambda shard: (loads[shard], shard))
        loads[lightest] += weight[path]  # type: ignore[operator]
        assignment[path] = lightest + 1
    return assignment


def share_of(jobs: Sequence[SpecJob], shard: Shard, assignment: Mapping[str, int]) -> list[SpecJob]:
    """The shard's jobs, in plan order."""
    return [job for job in jobs if assignment[job.relative_path] == shard.index]


@dataclass(frozen=True)
class Share:
    """A shard's part of the plan, in plan order, and the whole split as this shard computed it (its record
    carries it: finalize checks that the shards agree)."""

    jobs: list[SpecJob]
    assignment: dict[str, int]
    by_size: bool  # False: every image's size was not known, so the split counts specs

    def describe(self, shard: Shard, planned: int) -> str:
        return (f"shard {shard}: {len(self.jobs)} of {planned} spec(s), "
                f"split by {'image size' if self.by_size else 'count'}")


def share_for(shard: Shard, jobs: Sequence[SpecJob], export_options: ExportOptions) -> Share:
    from .image_sizes import image_sizes  # the registry client, only for a shard's split (not process --help)

    sizes = image_sizes(jobs, export_options) if jobs else {}
    assignment = assign(jobs, shard.total, sizes)
    by_size = bool(jobs) and all(size is not None for size in sizes.values())
    return Share(share_of(jobs, shard, assignment), assignment, by_size)

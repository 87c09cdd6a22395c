"""Stage 2, check: resolve every planned image once and check it against its spec (conformance rules).

Runs before anything is exported or uploaded; one failure stops the run. The resolved `Image` (its
layers verified in the blob cache) is what the artifacts stage exports or delivers: an image is
fetched and read once per run. So is pass 1 over its layers' headers: the tree the checks look at
is the flattener's index, handed to the export with the image (within MAX_KEPT_TREE_ENTRIES).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from ..conformance.check import check_image, open_source_image
from ..errors import ExchangeError, UsageError
from ..image.model import Image
from ..image.resolve import ExportOptions
from ..progress import Progress
from ..rootfs.index import BackgroundIndex, LayerIndex
from ..validation.problems import Problem, Report, SpecResult, Status
from .delivery.settings import DeliverySettings, delivers_image
from .plan import SpecJob, ValidationFailed

# The checked trees kept for their exports hold at most this many entries in all (about 150 bytes
# each, so some 300 MB); an image past it has its tree dropped after its check and built again by
# its export, reading its layers' headers a second time, rather than the run growing without bound.
MAX_KEPT_TREE_ENTRIES = 2_000_000


@dataclass(frozen=True)
class CheckedJob:
    job: SpecJob
    image: Image  # resolved and checked; its layers are in the blob cache
    # Pass 1 of its layers, the tree the checks read, for the export to emit from; whoever uses it
    # closes it, and the run closes any left (`close_trees`). None when dropped (see above).
    index: LayerIndex | None = None


def close_trees(checked: Sequence[CheckedJob]) -> None:
    for item in checked:
        if item.index is not None:
            item.index.close()


class _TreeBudget:
    def __init__(self, entries: int) -> None:
        self._left = entries
        self._lock = threading.Lock()

    def keep(self, index: LayerIndex) -> bool:
        with self._lock:
            if index.entries > self._left:
                return False
            self._left -= index.entries
            return True


_Inspected = tuple[CheckedJob, list[Problem]]


class ConformanceFailed(ValidationFailed):
    """Some planned image fails its spec's conformance checks: nothing is exported, uploaded or committed."""

    def __init__(self, report: Report) -> None:
        ExchangeError.__init__(self, f"{report.count(Status.FAILED)} image(s) failed the conformance checks; "
                                     "nothing was processed (--skip-check RULE makes an exception)")
        self.report = report


def check_jobs(jobs: Sequence[SpecJob], settings: DeliverySettings, export_options: ExportOptions,
               progress: Progress, log: Callable[[str], None], *, workers: int = 1) -> list[CheckedJob]:
    """Every job with its resolved image, in plan order; ConformanceFailed (with the report) when any fails."""
    needs_mirror = [job.relative_path for job in jobs if delivers_image(job.spec) and settings.mirror_registry is None]
    if needs_mirror:
        raise UsageError(f"{', '.join(needs_mirror)}: custom.flywheel.beta_exchange gears are delivered as images; "
                         "give --mirror-registry HOST/PATH")

    budget = _TreeBudget(MAX_KEPT_TREE_ENTRIES)

    def inspect(job: SpecJob) -> tuple[CheckedJob, list[Problem]]:
        log(f"checking {job.title} image {job.image}")
        # Each layer is indexed as soon as it and those below it are stored, as export does.
        index = BackgroundIndex()
        try:
            with progress.row(job.ref, "fetch", done="fetched") as row:
                image = open_source_image(job.image, export_options, row, index.stored)
            problems = check_image(job.spec, job.kind, image, skipped=settings.skipped_checks, index=index)
        except BaseException:
            index.close()
            raise
        if delivers_image(job.spec) or not budget.keep(index):  # a delivered image is not exported
            index.close()
            return CheckedJob(job, image), problems
        return CheckedJob(job, image, index), problems

    inspected = _inspect_all(jobs, inspect, workers)
    report = Report(noun="image")
    for job, (_, problems) in zip(jobs, inspected, strict=True):
        report.results.append(SpecResult(job.relative_path, job.kind.value, job.location.org, job.name,
                                         job.version, problems))
    checked = [item for item, _ in inspected]
    if not report.ok:
        close_trees(checked)
        raise ConformanceFailed(report)
    return checked


def _inspect_all(jobs: Sequence[SpecJob], inspect: Callable[[SpecJob], _Inspected],
                 workers: int) -> list[_Inspected]:
    """`inspect` of every job, in plan order; when one fails, the trees the others kept are closed."""
    if workers <= 1 or len(jobs) <= 1:
        done: list[_Inspected] = []
        try:
            for job in jobs:
                done.append(inspect(job))
        except BaseException:
            close_trees([item for item, _ in done])
            raise
        return done
    # Resolving an image fetches its layers: as many at once as the run exports at once.
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="check") as pool:
        futures = [pool.submit(inspect, job) for job in jobs]
        wait(futures)
    failed = next((future.exception() for future in futures if future.exception() is not None), None)
    if failed is not None:
        close_trees([future.result()[0] for future in futures if future.exception() is None])
        raise failed
    return [future.result() for future in futures]

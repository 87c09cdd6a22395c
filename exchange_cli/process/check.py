"""Stage 2, check: resolve every planned image once and check it against its spec (conformance rules).

Runs before anything is exported or uploaded; one failure stops the run. The resolved `Image` (its
layers verified in the blob cache) is what the artifacts stage exports or delivers: an image is
fetched and read once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..conformance.check import check_image, open_source_image
from ..errors import ExchangeError, UsageError
from ..export import ExportOptions
from ..image.model import Image
from ..progress import Progress
from ..validation.problems import Problem, Report, SpecResult, Status
from .delivery.settings import DeliverySettings, delivers_image
from .plan import SpecJob, ValidationFailed


@dataclass(frozen=True)
class CheckedJob:
    job: SpecJob
    image: Image  # resolved and checked; its layers are in the blob cache


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

    def inspect(job: SpecJob) -> tuple[Image, list[Problem]]:
        log(f"checking {job.title} image {job.image}")
        with progress.row(job.ref, "fetch", done="fetched") as row:
            image = open_source_image(job.image, export_options, row)
        return image, check_image(job.spec, job.kind, image, skipped=settings.skipped_checks)

    # Resolving an image fetches its layers: as many at once as the run exports at once.
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="check") as pool:
            inspected = list(pool.map(inspect, jobs))
    else:
        inspected = [inspect(job) for job in jobs]
    report = Report(noun="image")
    for job, (_, problems) in zip(jobs, inspected, strict=True):
        report.results.append(SpecResult(job.relative_path, job.kind.value, job.location.org, job.name,
                                         job.version, problems))
    if not report.ok:
        raise ConformanceFailed(report)
    return [CheckedJob(job, image) for job, (image, _) in zip(jobs, inspected, strict=True)]

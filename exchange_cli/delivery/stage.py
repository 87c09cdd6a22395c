"""The test and deliver stages of `exchange process`, around the export of each spec.

Test: before anything is exported or uploaded, every planned spec's image is checked against its
spec (conformance rules); one failure stops the run. Deliver: after the export, the image is copied
into the mirror registry, and a gear marked ``custom.flywheel.beta_exchange`` is delivered as that
image instead of a rootfs tarball. A failed run deletes the mirrored tags it created.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..conformance.check import check_image, open_source_image, parse_skipped_checks
from ..errors import ExchangeError, UsageError
from ..export import ExportOptions
from ..image.model import Image
from ..process.artifacts import Artifact
from ..process.ledger import RollbackResult
from ..process.plan import SpecJob, ValidationFailed
from ..progress import Progress
from ..validation.problems import Problem, Report, SpecResult, Status
from .mirror import CreatedTag, ImageMirror, delete_tags

Log = Callable[[str], None]


@dataclass(frozen=True)
class DeliverySettings:
    skipped_checks: tuple[str, ...] = ()
    mirror_registry: str | None = None  # HOST[/PATH]

    @classmethod
    def from_options(cls, skip_checks: Iterable[str], mirror_registry: str | None) -> DeliverySettings:
        return cls(parse_skipped_checks(skip_checks), mirror_registry or None)


class ConformanceFailed(ValidationFailed):
    """Some planned image fails its spec's conformance checks: nothing is exported, uploaded or committed."""

    def __init__(self, report: Report) -> None:
        ExchangeError.__init__(self, f"{report.count(Status.FAILED)} image(s) failed the conformance checks; "
                                     "nothing was processed (--skip-check RULE makes an exception)")
        self.report = report


def delivers_image(spec: dict[str, Any]) -> bool:
    """A gear that sets custom.flywheel.beta_exchange: true is delivered as an image, as existing exchanges do."""
    custom = spec.get("custom") if isinstance(spec.get("custom"), dict) else {}
    flywheel = custom.get("flywheel") if isinstance(custom.get("flywheel"), dict) else {}
    return flywheel.get("beta_exchange") is True


class Delivery:
    def __init__(self, settings: DeliverySettings, export_options: ExportOptions, log: Log) -> None:
        self.settings, self.export_options, self.log = settings, export_options, log
        self.mirror = (ImageMirror(settings.mirror_registry, insecure_registries=export_options.insecure_registries)
                       if settings.mirror_registry else None)
        self._checked: dict[str, Image] = {}
        self._adopted: list[CreatedTag] = []

    def check(self, jobs: Iterable[SpecJob], progress: Progress, *, workers: int = 1) -> None:
        """Resolve and check every job's image not checked yet; ConformanceFailed (with the report) when any fails."""
        jobs = [job for job in jobs if job.relative_path not in self._checked]
        needs_mirror = [job.relative_path for job in jobs if delivers_image(job.spec) and self.mirror is None]
        if needs_mirror:
            raise UsageError(f"{', '.join(needs_mirror)}: custom.flywheel.beta_exchange gears are delivered as images; "
                             "give --mirror-registry HOST/PATH")
        def inspect(job: SpecJob) -> tuple[Image, list[Problem]]:
            self.log(f"checking {job.title} image {job.image}")
            image = open_source_image(job.image, self.export_options, progress)
            return image, check_image(job.spec, job.kind, image, skipped=self.settings.skipped_checks)

        # Resolving an image fetches its layers: as many at once as the run exports at once.
        if workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="check") as pool:
                inspected = list(pool.map(inspect, jobs))
        else:
            inspected = [inspect(job) for job in jobs]
        report = Report(noun="image")
        for job, (image, problems) in zip(jobs, inspected):
            self._checked[job.relative_path] = image
            report.results.append(SpecResult(job.relative_path, job.kind.value, job.location.org, job.name,
                                             job.version, problems))
        if not report.ok:
            raise ConformanceFailed(report)

    def deliver(self, job: SpecJob, produce: Callable[[], Artifact]) -> Artifact:
        """The job's artifact: its image for beta gears, else what `produce` exports; mirrored when asked."""
        checked = self._checked[job.relative_path]
        if delivers_image(job.spec):
            return self._deliver_image(job, checked)
        artifact = produce()
        if artifact.image.config_digest != checked.config_digest:
            raise ExchangeError(f"{job.image}: changed between its check ({checked.config_digest}) "
                                f"and its export ({artifact.image.config_digest}); run again")
        mirrored = None
        if self.mirror is not None:
            self.log(f"mirroring {job.image} to {self.settings.mirror_registry}")
            mirrored = self.mirror.copy(artifact.image, job.location.artifact_base, job.version).digest_reference
        return replace(artifact, mirrored_reference=mirrored, skipped_checks=self.settings.skipped_checks)

    def created_tags(self) -> list[CreatedTag]:
        return self.mirror.created_tags() if self.mirror is not None else []

    def adopt_tags(self, tags: list[CreatedTag]) -> None:
        """Tags other machines (shards) created, to delete if this run rolls back."""
        self._adopted.extend(tags)

    def rollback(self, result: RollbackResult) -> None:
        if self.mirror is not None:
            self.mirror.rollback(result)
        adopted, self._adopted = list(reversed(self._adopted)), []
        delete_tags(adopted, result, insecure_registries=self.export_options.insecure_registries)

    def _deliver_image(self, job: SpecJob, image: Image) -> Artifact:
        assert self.mirror is not None, "check() refuses image delivery without a mirror"
        self.log(f"delivering {job.title} as an image: mirroring {job.image} to {self.settings.mirror_registry}")
        started = time.monotonic()
        mirrored = self.mirror.copy(image, job.location.artifact_base, job.version)
        return Artifact(job, mirrored.tag_reference, "", mirrored.size, f"docker://{mirrored.digest_reference}", image,
                        mirrored.created, 0.0, time.monotonic() - started, delivered_digest=mirrored.digest,
                        mirrored_reference=mirrored.digest_reference, skipped_checks=self.settings.skipped_checks)

"""The deliver step of the artifacts stage: mirror each processed image, or deliver a gear as an image.

After the export, the image is copied into the mirror registry, and a gear marked
``custom.flywheel.beta_exchange`` is delivered as that image instead of a rootfs tarball. One
`Delivery` per run, made by the orchestrator; a failed run deletes the mirrored tags it created
(and, at fan-in, those the shards created). The conformance check is stage 2 (process/check.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..artifacts import Artifact
from ..ledger import CreatedTag, RollbackResult
from .settings import DeliverySettings, delivers_image

if TYPE_CHECKING:
    from ..check import CheckedJob
    from .mirror import ImageMirror

Log = Callable[[str], None]

__all__ = ["Delivery", "DeliverySettings", "delivers_image"]


class Delivery:
    def __init__(self, settings: DeliverySettings, insecure_registries: tuple[str, ...], log: Log) -> None:
        self.settings, self.insecure_registries, self.log = settings, insecure_registries, log
        self.mirror: ImageMirror | None = None
        if settings.mirror_registry:
            from .mirror import ImageMirror  # the registry client: only a run with a mirror talks to one

            self.mirror = ImageMirror(settings.mirror_registry, insecure_registries=insecure_registries)
        self._adopted: list[CreatedTag] = []

    def deliver(self, checked: CheckedJob, produce: Callable[[CheckedJob], Artifact]) -> Artifact:
        """The job's artifact: its image for beta gears, else what `produce` exports; mirrored when asked."""
        job = checked.job
        if delivers_image(job.spec):
            return self._deliver_image(checked)
        artifact = produce(checked)
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

    def rollback(self) -> RollbackResult:
        """Delete the mirrored tags this run created, then those it adopted from shards."""
        created = self.mirror.rollback() if self.mirror is not None else RollbackResult()
        adopted, self._adopted = list(reversed(self._adopted)), []
        if not adopted:
            return created
        from .mirror import delete_tags

        return created.plus(delete_tags(adopted, insecure_registries=self.insecure_registries))

    def _deliver_image(self, checked: CheckedJob) -> Artifact:
        job, image = checked.job, checked.image
        assert self.mirror is not None, "the check stage refuses image delivery without a mirror"
        self.log(f"delivering {job.title} as an image: mirroring {job.image} to {self.settings.mirror_registry}")
        started = time.monotonic()
        mirrored = self.mirror.copy(image, job.location.artifact_base, job.version)
        return Artifact(job, mirrored.tag_reference, "", mirrored.size, f"docker://{mirrored.digest_reference}", image,
                        mirrored.created, 0.0, time.monotonic() - started, delivered_digest=mirrored.digest,
                        mirrored_reference=mirrored.digest_reference, skipped_checks=self.settings.skipped_checks)

"""One spec's rootfs artifact: export the image, name it by its hash, upload it unless it is there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..export import ExportOptions, export_rootfs
from ..image.model import Image
from ..progress import Progress
from .ledger import CreatedObjects
from .plan import SpecJob


@dataclass(frozen=True)
class Artifact:
    job: SpecJob
    object_name: str
    sha384: str
    size: int
    url: str
    image: Image
    created: bool
    export_seconds: float
    upload_seconds: float
    # Set by delivery (exchange_cli/delivery): an image-delivered gear's manifest digest replaces the
    # tarball's hash; the mirrored copy and the skipped conformance checks go into the manifest.
    delivered_digest: str | None = None
    mirrored_reference: str | None = None
    skipped_checks: tuple[str, ...] = ()

    @property
    def rootfs_hash(self) -> str:
        return self.delivered_digest or f"sha384:{self.sha384}"


def artifact_name(job: SpecJob, sha384: str) -> str:
    return f"{job.location.artifact_base}-sha384-{sha384}.tgz"


def produce_artifact(job: SpecJob, *, bucket, export_options: ExportOptions, work_dir: Path,  # noqa: ANN001
                     ledger: CreatedObjects, progress: Progress) -> Artifact:
    """Export to a temp file (the only copy written), upload it, record what was created, drop the file."""
    temp = work_dir / f"{job.location.artifact_base}.tgz"
    started = time.monotonic()
    exported = export_rootfs(job.image, temp, options=export_options, progress=progress)
    exported_at = time.monotonic()
    name = artifact_name(job, exported.sha384)
    try:
        with progress.task(f"upload {name}", exported.size) as task:
            outcome = bucket.upload(name, temp, size=exported.size, sha384=exported.sha384, progress_task=task)
        if outcome.created:
            ledger.record(name, outcome.info.generation)
    finally:
        temp.unlink(missing_ok=True)
    return Artifact(job, name, exported.sha384, exported.size, bucket.download_url(name), exported.image,
                    outcome.created, exported_at - started, time.monotonic() - exported_at)

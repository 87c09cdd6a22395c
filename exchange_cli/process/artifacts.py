"""Stage 3, artifacts: export each checked image, name the tarball by its hash, upload it unless it is there.

(The other way to get artifacts is fan_in.py: read them from the shards' records.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..image.model import Image
from ..progress import Progress, format_bytes
from ..storage.bucket import Bucket
from .ledger import CreatedObjects
from .plan import SpecJob

if TYPE_CHECKING:
    from ..export import ExportResult, SquashfsImage
    from ..image.resolve import ExportOptions
    from ..rootfs.squashfs import Tar2sqfs
    from .check import CheckedJob

Log = Callable[[str], None]
SBOM_SUFFIX = ".sbom.json"
SQUASHFS_SUFFIX = ".sqfs"


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
    # The tarball's sha256 too, when the run signs: an in-toto subject carries both (cosign checks sha256).
    sha256: str | None = None
    # The SBOM uploaded beside the tarball (`<object>.sbom.json`): its URL and sha256 hex go into the manifest.
    sbom_url: str | None = None
    sbom_sha256: str | None = None
    sbom_packages: int | None = None  # components of the SBOM, the OS aside: for the catalog
    sbom_os: str | None = None  # "debian 12", from its os-release
    # The squashfs image uploaded beside the tarball, when the policy asks for it (docs/squashfs.md).
    squashfs_url: str | None = None
    squashfs_sha384: str | None = None  # hex
    squashfs_size: int | None = None
    squashfs_sha256: str | None = None  # when the run signs: the statement's second subject carries both

    @property
    def rootfs_hash(self) -> str:
        return self.delivered_digest or f"sha384:{self.sha384}"

    @property
    def in_bucket(self) -> bool:
        """Image-delivered gears have no bucket object: their artifact is the mirrored image."""
        return self.delivered_digest is None


def artifact_name(job: SpecJob, sha384: str) -> str:
    return f"{job.location.artifact_base}-sha384-{sha384}.tgz"


def squashfs_name(job: SpecJob, sha384: str) -> str:
    """The squashfs image's object: content-addressed by its own sha384, like the tarball."""
    return f"{job.location.artifact_base}-sha384-{sha384}{SQUASHFS_SUFFIX}"


def sbom_name(object_name: str) -> str:
    """The SBOM's object, beside the rootfs object it describes."""
    return f"{object_name}{SBOM_SUFFIX}"


@dataclass
class RunWork:
    """What one run's workers share: the objects created so far, the cancel flag, a scratch directory."""

    ledger: CreatedObjects
    cancelled: threading.Event
    work_dir: Path


def produce_artifact(checked: CheckedJob, *, bucket: Bucket, work: RunWork, progress: Progress,
                     with_sha256: bool = False, squashfs: Tar2sqfs | None = None) -> Artifact:
    """Export to a temp file (the only copy written), upload it, record what was created, drop the file.
    `with_sha256`: also hash the file with sha256 (for the signed statement) before it is dropped;
    `squashfs`: also write the squashfs image in the same pass, and upload it beside the tarball."""
    # The exporter, loaded by the first export: every stage reads the Artifact record and its names above.
    from ..export import SquashfsRequest, export_image

    job = checked.job
    temp = work.work_dir / f"{job.location.artifact_base}.tgz"
    image_temp = work.work_dir / f"{job.location.artifact_base}{SQUASHFS_SUFFIX}"
    request = SquashfsRequest(image_temp, squashfs) if squashfs is not None else None
    started = time.monotonic()
    try:
        try:
            with progress.row(job.ref, "write", done="written") as row:
                exported = export_image(checked.image, temp, progress=row, shown_as=job.image, index=checked.index,
                                        sbom=True, squashfs=request)
        finally:
            if checked.index is not None:  # the check stage's tree, emitted: its memory goes back now
                checked.index.close()
        artifact = _upload(job, exported, temp, started, bucket=bucket, work=work, progress=progress,
                           with_sha256=with_sha256)
    finally:
        image_temp.unlink(missing_ok=True)
    return artifact


def _upload(job: SpecJob, exported: ExportResult, temp: Path, started: float, *, bucket: Bucket, work: RunWork,
            progress: Progress, with_sha256: bool) -> Artifact:
    from ..sbom.query import read as read_sbom

    exported_at = time.monotonic()
    name = artifact_name(job, exported.sha384)
    sha256 = None
    try:
        if with_sha256:
            sha256 = _sha256_of(temp)
        with progress.row(job.ref, "upload", done="uploaded", unchanged="in bucket") as row, \
                row.task(f"upload {name}", exported.size) as task:
            outcome = bucket.upload(name, temp, size=exported.size, sha384=exported.sha384, progress_task=task)
        if outcome.created:
            work.ledger.record(name, outcome.info.generation)
        sbom = _upload_sbom(exported.sbom, name, bucket, work.ledger)
        summary = read_sbom(sbom)  # ours, just made: it reads
        image = _upload_squashfs(exported.squashfs, job, name, bucket, work.ledger)
        image_sha256 = _sha256_of(exported.squashfs.output) if with_sha256 and exported.squashfs else None
    finally:
        temp.unlink(missing_ok=True)
    return Artifact(job, name, exported.sha384, exported.size, bucket.download_url(name), exported.image,
                    outcome.created, exported_at - started, time.monotonic() - exported_at, sha256=sha256,
                    sbom_url=bucket.download_url(sbom_name(name)), sbom_sha256=hashlib.sha256(sbom).hexdigest(),
                    sbom_packages=len(summary.components), sbom_os=summary.os,
                    squashfs_url=bucket.download_url(image.output.name) if image else None,
                    squashfs_sha384=image.sha384 if image else None, squashfs_size=image.size if image else None,
                    squashfs_sha256=image_sha256)


def _sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _upload_squashfs(image: SquashfsImage | None, job: SpecJob, object_name: str, bucket: Bucket,
                     ledger: CreatedObjects) -> SquashfsImage | None:
    """Upload the squashfs image under its content address, created and rolled back with the tarball;
    returns it named by its object."""
    if image is None:
        return None
    name = squashfs_name(job, image.sha384)
    outcome = bucket.upload(name, image.output, size=image.size, sha384=image.sha384)
    if outcome.created:
        ledger.record(name, outcome.info.generation, beside=object_name)
    return dataclasses.replace(image, output=Path(name))


def _upload_sbom(document: bytes | None, object_name: str, bucket: Bucket, ledger: CreatedObjects) -> bytes:
    """Upload the SBOM beside its rootfs, created and rolled back with it (the same rules as the envelope)."""
    assert document is not None, "export_image was asked for the SBOM"
    name = sbom_name(object_name)
    uploaded = bucket.upload_bytes(name, document)
    if uploaded.created:
        ledger.record(name, uploaded.info.generation, beside=object_name)
    return document


def build_artifacts(checked: Sequence[CheckedJob], make: Callable[[CheckedJob], Artifact], *, work: RunWork,
                    export_options: ExportOptions, jobs: int, log: Log,
                    on_artifact: Callable[[Artifact], None] = lambda artifact: None) -> list[Artifact]:
    """`make` turns one checked job into its artifact (delivery wraps produce_artifact); plan order kept."""
    pending = _PendingLayers(checked)

    def one(item: CheckedJob) -> Artifact:
        log(f"exporting {item.job.title} from {item.job.image}")
        artifact = make(item)
        verb = "uploaded" if artifact.created else "already in the bucket:"
        log(f"{verb} {artifact.object_name} ({format_bytes(artifact.size)})")
        # The images still to export were resolved by the check stage: their layers stay cached.
        export_options.cache.evict(keep=pending.done(item))
        on_artifact(artifact)
        return artifact

    if jobs <= 1:
        return [one(item) for item in checked]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="export") as pool:
        futures = [pool.submit(one, item) for item in checked]
        try:
            return [future.result() for future in futures]  # plan order, whatever finishes first
        except BaseException:
            work.cancelled.set()
            for future in futures:
                future.cancel()
            raise


class _PendingLayers:
    """The layers of the images not exported yet, which trimming the cache must keep."""

    def __init__(self, checked: Sequence[CheckedJob]) -> None:
        self._lock = threading.Lock()
        self._pending = {id(item): item for item in checked}

    def done(self, item: CheckedJob) -> set[str]:
        with self._lock:
            self._pending.pop(id(item), None)
            return {layer.diff_id for other in self._pending.values() for layer in other.image.layers}

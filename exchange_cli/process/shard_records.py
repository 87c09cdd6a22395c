"""A shard's record: what one fan-out machine exported and uploaded, for the finalize step to publish.

One JSON file per shard, `shard-<I>-of-<N>.json`, in a directory CI carries from the shards to the
finalize job. It holds everything a manifest needs (so finalize never exports) and every object the
shard created (so finalize can delete them all when the run fails).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..confined import NotConfined, read_small_file
from ..durable import write_atomically
from ..errors import ExchangeError
from ..image.model import Image, Platform
from ..jsonpos import strict_data
from .artifacts import Artifact
from .ledger import CreatedObject, CreatedTag
from .plan import SpecJob
from .shards import Shard

RECORD_FORMAT = "exchange-shard-record/1"
RECORD_GLOB = "shard-*.json"
# A record lists a shard's artifacts (a few hundred bytes each): room for tens of thousands.
MAX_RECORD_BYTES = 64 * 1024**2


class ShardRecordError(ExchangeError):
    """A record that cannot be read: the finalize step publishes nothing."""


@dataclass(frozen=True)
class ArtifactEntry:
    spec: str
    artifact: str
    sha384: str
    size: int
    image: str
    image_digest_reference: str | None
    image_config_digest: str
    image_manifest_digest: str | None
    platform: str
    uploaded: bool
    export_seconds: float
    upload_seconds: float
    url: str
    # What delivery (exchange_cli/delivery) adds: see Artifact.
    delivered_digest: str | None = None
    mirrored_reference: str | None = None
    skipped_checks: tuple[str, ...] = ()
    sha256: str | None = None  # when the shard ran with signing on: finalize signs with it
    sbom_url: str | None = None  # the SBOM the shard uploaded beside the artifact (see Artifact)
    sbom_sha256: str | None = None
    sbom_packages: int | None = None
    sbom_os: str | None = None
    squashfs_url: str | None = None  # the squashfs image the shard uploaded (see Artifact)
    squashfs_sha384: str | None = None
    squashfs_size: int | None = None
    squashfs_sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skipped_checks", tuple(self.skipped_checks))  # a list, once read from JSON

    @property
    def in_bucket(self) -> bool:
        """Image-delivered gears have no bucket object: their artifact is the mirrored image."""
        return self.delivered_digest is None

    @classmethod
    def of(cls, artifact: Artifact) -> ArtifactEntry:
        image = artifact.image
        return cls(artifact.job.relative_path, artifact.object_name, artifact.sha384, artifact.size, artifact.job.image,
                   image.pinned_reference, image.config_digest, image.manifest_digest, str(image.platform),
                   artifact.created, round(artifact.export_seconds, 3), round(artifact.upload_seconds, 3), artifact.url,
                   artifact.delivered_digest, artifact.mirrored_reference, artifact.skipped_checks, artifact.sha256,
                   artifact.sbom_url, artifact.sbom_sha256, artifact.sbom_packages, artifact.sbom_os,
                   artifact.squashfs_url, artifact.squashfs_sha384, artifact.squashfs_size, artifact.squashfs_sha256)

    def artifact_for(self, job: SpecJob, url: str) -> Artifact:
        """The Artifact the shard had, rebuilt for the manifest: layers are not needed any more."""
        image = Image(reference=self.image, platform=Platform.parse(self.platform), config={},
                      config_digest=self.image_config_digest, manifest_digest=self.image_manifest_digest,
                      pinned_reference=self.image_digest_reference)
        return Artifact(job, self.artifact, self.sha384, self.size, url, image, self.uploaded, self.export_seconds,
                        self.upload_seconds, self.delivered_digest, self.mirrored_reference, self.skipped_checks,
                        self.sha256, self.sbom_url, self.sbom_sha256, self.sbom_packages, self.sbom_os,
                        self.squashfs_url, self.squashfs_sha384, self.squashfs_size, self.squashfs_sha256)


@dataclass(frozen=True)
class ShardRecord:
    source_commit: str
    shard: Shard
    bucket: str
    assignment: dict[str, int]  # the whole split as this shard computed it: shards must agree
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    created: list[CreatedObject] = field(default_factory=list)
    created_tags: list[CreatedTag] = field(default_factory=list)  # mirrored tags, deleted if finalize fails
    path: Path | None = None  # where it was read from

    def as_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "source-commit": self.source_commit, "shard": self.shard.index,
                "total": self.shard.total, "bucket": self.bucket, "assignment": self.assignment,
                "artifacts": [asdict(entry) for entry in self.artifacts],
                "created-objects": [asdict(created) for created in self.created],
                "created-tags": [tag.as_json() for tag in self.created_tags]}

    @property
    def file_name(self) -> str:
        """The file it was read from, or the one `write` gives it."""
        return self.path.name if self.path is not None else f"{self.shard.label}.json"

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.shard.label}.json"
        write_atomically(path, json.dumps(self.as_json(), indent=2) + "\n")
        return path


def read_records(directory: Path) -> list[ShardRecord]:
    if not directory.is_dir():
        raise ShardRecordError(f"no shard records: {directory} is not a directory")
    return [_read(path) for path in sorted(directory.glob(RECORD_GLOB))]


def _read(path: Path) -> ShardRecord:
    try:
        document = strict_data(read_small_file(path, limit=MAX_RECORD_BYTES))
        if document.get("format") != RECORD_FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, not {RECORD_FORMAT!r}")
        return ShardRecord(
            source_commit=str(document["source-commit"]),
            shard=Shard(int(document["shard"]), int(document["total"])),
            bucket=str(document["bucket"]),
            assignment={str(spec): int(index) for spec, index in document["assignment"].items()},
            artifacts=[ArtifactEntry(**entry) for entry in document["artifacts"]],
            created=[CreatedObject(**created) for created in document["created-objects"]],
            created_tags=[CreatedTag.from_json(tag) for tag in document.get("created-tags", [])],
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ExchangeError, NotConfined) as error:
        raise ShardRecordError(f"shard record {path} is unreadable: {error}") from None

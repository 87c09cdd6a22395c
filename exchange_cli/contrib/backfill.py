"""`exchange backfill-sbom`: SBOMs for manifests published before SBOMs, from their rootfs in the bucket.

For each such manifest the rootfs object is read once, as a stream (never unpacked, never written to
disk), hashed as it is read and refused unless it is exactly the sha384 its manifest pins; its SBOM is
uploaded beside it (`<object>.sbom.json`, create-only: an identical one already there is kept, another
is an error) and the manifest gets the keys a run gives it (sbom-url, sbom-sha256, sbom-packages,
sbom-os). One commit for all, which the maintainer pushes; nothing is signed (a signature needs the
run's key and facts: the next run of that version, if any, signs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .. import git
from ..commit_identity import commit_env
from ..errors import ExchangeError
from ..manifests import ProcessedManifest, manifest_text
from ..process.artifacts import sbom_name
from ..repository import Exchange
from ..sbom.query import read
from ..sbom.tarball import document_of_stored_rootfs
from ..storage.bucket import Bucket

COMMIT_MESSAGE = "Backfill SBOMs"


@dataclass
class Backfill:
    done: list[str] = field(default_factory=list)  # manifests given an SBOM
    failed: dict[str, str] = field(default_factory=dict)  # manifest -> why not
    commit: str | None = None


def needs_sbom(manifest: ProcessedManifest) -> bool:
    """A rootfs in the bucket (sha384) and no SBOM yet."""
    return manifest.sbom_object is None and manifest.bucket_object is not None and manifest.rootfs_sha384 is not None


def backfill(exchange: Exchange, manifests: list[ProcessedManifest], bucket: Bucket) -> Backfill:
    outcome = Backfill()
    for manifest in manifests:
        try:
            _backfill_one(exchange, manifest, bucket)
        except ExchangeError as error:
            outcome.failed[manifest.relative] = str(error)
        else:
            outcome.done.append(manifest.relative)
    if outcome.done:
        outcome.commit = git.commit_paths(exchange.repo, outcome.done,
                                          f"{COMMIT_MESSAGE} for {len(outcome.done)} manifest(s)",
                                          commit_env(exchange.repo))
    return outcome


def _backfill_one(exchange: Exchange, manifest: ProcessedManifest, bucket: Bucket) -> None:
    name, sha384 = manifest.bucket_object, manifest.rootfs_sha384
    assert name is not None and sha384 is not None, "needs_sbom chose it"
    document = document_of_stored_rootfs(bucket, name, sha384, manifest.exchange.get("rootfs-size"))
    bucket.upload_bytes(sbom_name(name), document)  # create-only: an identical one is kept, another refused
    summary = read(document)
    content = json.loads(manifest.path.read_text(encoding="utf-8"))
    content["exchange"].update({"sbom-url": bucket.download_url(sbom_name(name)),
                                "sbom-sha256": hashlib.sha256(document).hexdigest(),
                                "sbom-packages": len(summary.components)} | ({"sbom-os": summary.os} if summary.os else {}))
    manifest.path.write_text(manifest_text(content), encoding="utf-8")

"""What a process run did, for people (text) and for tools (JSON)."""

from __future__ import annotations

from typing import Any, TextIO

from ..progress import format_bytes
from ..quoting import printable
from .artifacts import Artifact, artifact_name
from .context import ProcessOutcome
from .plan import SpecJob


def job_fields(job: SpecJob) -> dict[str, Any]:
    return {"spec": job.relative_path, "kind": job.kind.value, "org": job.location.org, "name": job.name,
            "version": job.version, "image": job.image}


def artifact_fields(artifact: Artifact) -> dict[str, Any]:
    return {"image-digest-reference": artifact.image.pinned_reference,
            "image-config-digest": artifact.image.config_digest, "artifact": artifact.object_name,
            "rootfs-hash": artifact.rootfs_hash, "rootfs-size": artifact.size, "rootfs-url": artifact.url,
            "uploaded": artifact.created, "export-seconds": round(artifact.export_seconds, 3),
            "upload-seconds": round(artifact.upload_seconds, 3),
            # What was published beside the tarball (None where nothing was): the manifest's names for them.
            "sbom-url": artifact.sbom_url, "sbom-sha256": artifact.sbom_sha256,
            "sbom-packages": artifact.sbom_packages, "sbom-os": artifact.sbom_os,
            "squashfs-url": artifact.squashfs_url, "squashfs-sha384": artifact.squashfs_sha384 and f"sha384:{artifact.squashfs_sha384}",
            "squashfs-size": artifact.squashfs_size}


def outcome_as_json(outcome: ProcessOutcome) -> dict[str, Any]:
    by_path = {made.artifact.job.relative_path: made for made in outcome.commits if made.artifact is not None}
    specs = []
    for artifact in outcome.artifacts:
        made = by_path.get(artifact.job.relative_path)
        specs.append({**job_fields(artifact.job), **artifact_fields(artifact),
                      "manifest": made.manifest_path if made else None, "commit": made.commit if made else None})
    return {
        "source-commit": outcome.plan.source_commit,
        "planned": [{"spec": job.relative_path, "title": job.title, "image": job.image} for job in outcome.plan.jobs],
        "already-processed": outcome.plan.already_processed,
        "specs": specs,
        "pushed": outcome.pushed,
        "replays": outcome.replays,
        "shard": str(outcome.shard) if outcome.shard else None,
        "shard-record": str(outcome.record_path) if outcome.record_path else None,
        "catalog": catalog_fields(outcome),
    }


def catalog_fields(outcome: ProcessOutcome) -> dict[str, Any] | None:
    """--publish-index: whether the catalog reached its branch (a failure does not fail the run)."""
    publication = outcome.catalog
    if publication is None:
        return None
    return {"branch": publication.branch, "published": publication.ok, "error": publication.error,
            "commit": publication.outcome.commit if publication.outcome else None,
            "pushed": publication.outcome.pushed if publication.outcome else False,
            "left-out": list(publication.left_out)}


def render_outcome(outcome: ProcessOutcome, stream: TextIO, *, dry_run: bool) -> None:
    plan = outcome.plan
    for path in plan.already_processed:
        _lines(stream, f"already processed: {path}")
    if dry_run:
        for job in outcome.selected_jobs:
            pending = artifact_name(job, "<sha384 after export>")
            _lines(stream, f"would process {job.title}: {job.relative_path}", f"  image    {job.image}",
                   f"  artifact {pending}")
        _lines(stream, f"dry run: {len(outcome.selected_jobs)} spec(s) to process{_shard_note(outcome)}; "
                       "nothing was changed")
        return
    if outcome.shard is not None:
        _render_shard(outcome, stream)
        return
    if outcome.catalog is not None:
        _lines(stream, outcome.catalog.describe())
    if not plan.jobs:
        _lines(stream, "nothing to process")
        return
    for made in outcome.commits:
        artifact = made.artifact
        if artifact is None:  # an earlier run's commit (resume.py): never among a run's own
            continue
        state = "uploaded" if artifact.created else "reused"
        _lines(stream, artifact.job.title, f"  manifest {made.manifest_path}",
               f"  artifact {artifact.object_name} ({format_bytes(artifact.size)}, {state})",
               f"  rootfs   {artifact.rootfs_hash}", f"  commit   {made.commit}")
    pushed = "pushed" if outcome.pushed else "not pushed"
    _lines(stream, f"{len(outcome.commits)} spec(s) processed and {pushed}")


def _lines(stream: TextIO, *lines: str) -> None:
    """Each line whole, on its own line: a name in it can neither start another nor move the cursor."""
    for line in lines:
        print(printable(line), file=stream)


def _shard_note(outcome: ProcessOutcome) -> str:
    return "" if outcome.shard is None else f" in shard {outcome.shard} (of {len(outcome.plan.jobs)} in all)"


def _render_shard(outcome: ProcessOutcome, stream: TextIO) -> None:
    for artifact in outcome.artifacts:
        state = "uploaded" if artifact.created else "reused"
        _lines(stream, artifact.job.title, f"  artifact {artifact.object_name} ({format_bytes(artifact.size)}, {state})",
               f"  rootfs   {artifact.rootfs_hash}")
    _lines(stream, f"shard {outcome.shard}: {len(outcome.artifacts)} spec(s) exported; record {outcome.record_path}")

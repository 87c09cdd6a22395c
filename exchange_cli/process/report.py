"""What a process run did, for people (text) and for tools (JSON)."""

from __future__ import annotations

from typing import Any, TextIO

from ..progress import format_bytes
from .artifacts import Artifact, artifact_name
from .plan import SpecJob
from .context import ProcessOutcome


def job_fields(job: SpecJob) -> dict[str, Any]:
    return {"spec": job.relative_path, "kind": job.kind.value, "org": job.location.org, "name": job.name,
            "version": job.version, "image": job.image}


def artifact_fields(artifact: Artifact) -> dict[str, Any]:
    return {"image-digest-reference": artifact.image.pinned_reference,
            "image-config-digest": artifact.image.config_digest, "artifact": artifact.object_name,
            "rootfs-hash": artifact.rootfs_hash, "rootfs-size": artifact.size, "rootfs-url": artifact.url,
            "uploaded": artifact.created, "export-seconds": round(artifact.export_seconds, 3),
            "upload-seconds": round(artifact.upload_seconds, 3)}


def outcome_as_json(outcome: ProcessOutcome) -> dict[str, Any]:
    by_path = {made.artifact.job.relative_path: made for made in outcome.commits}
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
        print(f"already processed: {path}", file=stream)
    if dry_run:
        for job in outcome.selected_jobs:
            pending = artifact_name(job, "<sha384 after export>")
            print(f"would process {job.title}: {job.relative_path}\n  image    {job.image}\n  artifact {pending}", file=stream)
        print(f"dry run: {len(outcome.selected_jobs)} spec(s) to process{_shard_note(outcome)}; nothing was changed",
              file=stream)
        return
    if outcome.shard is not None:
        _render_shard(outcome, stream)
        return
    if outcome.catalog is not None:
        print(outcome.catalog.describe(), file=stream)
    if not plan.jobs:
        print("nothing to process", file=stream)
        return
    for made in outcome.commits:
        artifact = made.artifact
        state = "uploaded" if artifact.created else "reused"
        print(f"{artifact.job.title}\n  manifest {made.manifest_path}\n  artifact {artifact.object_name} "
              f"({format_bytes(artifact.size)}, {state})\n  rootfs   {artifact.rootfs_hash}\n  commit   {made.commit}", file=stream)
    pushed = "pushed" if outcome.pushed else "not pushed"
    print(f"{len(outcome.commits)} spec(s) processed and {pushed}", file=stream)


def _shard_note(outcome: ProcessOutcome) -> str:
    return "" if outcome.shard is None else f" in shard {outcome.shard} (of {len(outcome.plan.jobs)} in all)"


def _render_shard(outcome: ProcessOutcome, stream: TextIO) -> None:
    for artifact in outcome.artifacts:
        state = "uploaded" if artifact.created else "reused"
        print(f"{artifact.job.title}\n  artifact {artifact.object_name} ({format_bytes(artifact.size)}, {state})\n"
              f"  rootfs   {artifact.rootfs_hash}", file=stream)
    print(f"shard {outcome.shard}: {len(outcome.artifacts)} spec(s) exported; record {outcome.record_path}", file=stream)

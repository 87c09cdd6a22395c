"""What a process run did, for people (text) and for tools (JSON)."""

from __future__ import annotations

from typing import Any, TextIO

from .artifacts import artifact_name
from .run import ProcessOutcome


def outcome_as_json(outcome: ProcessOutcome) -> dict[str, Any]:
    by_path = {made.artifact.job.relative_path: made for made in outcome.commits}
    specs = []
    for artifact in outcome.artifacts:
        job = artifact.job
        made = by_path.get(job.relative_path)
        specs.append({
            "spec": job.relative_path, "kind": job.kind.value, "org": job.location.org, "name": job.name,
            "version": job.version, "image": job.image, "image-digest-reference": artifact.image.pinned_reference,
            "image-config-digest": artifact.image.config_digest, "artifact": artifact.object_name,
            "rootfs-hash": artifact.rootfs_hash, "rootfs-size": artifact.size, "rootfs-url": artifact.url,
            "uploaded": artifact.created, "export-seconds": round(artifact.export_seconds, 3),
            "upload-seconds": round(artifact.upload_seconds, 3),
            "manifest": made.manifest_path if made else None, "commit": made.commit if made else None,
        })
    return {
        "source-commit": outcome.plan.source_commit,
        "planned": [{"spec": job.relative_path, "title": job.title, "image": job.image} for job in outcome.plan.jobs],
        "already-processed": outcome.plan.already_processed,
        "specs": specs,
        "pushed": outcome.pushed,
        "replays": outcome.replays,
    }


def render_outcome(outcome: ProcessOutcome, stream: TextIO, *, dry_run: bool) -> None:
    plan = outcome.plan
    for path in plan.already_processed:
        print(f"already processed: {path}", file=stream)
    if dry_run:
        for job in plan.jobs:
            pending = artifact_name(job, "<sha384 after export>")
            print(f"would process {job.title}: {job.relative_path}\n  image    {job.image}\n  artifact {pending}", file=stream)
        print(f"dry run: {len(plan.jobs)} spec(s) to process; nothing was changed", file=stream)
        return
    if not plan.jobs:
        print("nothing to process", file=stream)
        return
    for made in outcome.commits:
        artifact = made.artifact
        state = "uploaded" if artifact.created else "reused"
        print(f"{artifact.job.title}\n  manifest {made.manifest_path}\n  artifact {artifact.object_name} "
              f"({artifact.size} bytes, {state})\n  rootfs   {artifact.rootfs_hash}\n  commit   {made.commit}", file=stream)
    pushed = "pushed" if outcome.pushed else "not pushed"
    print(f"{len(outcome.commits)} spec(s) processed and {pushed}", file=stream)

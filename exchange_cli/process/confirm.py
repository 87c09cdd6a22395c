"""After the push: every object the pushed manifests reference is in the bucket, with its size and hash.

The lease keeps other exchange runs from deleting anything meanwhile, but not a run whose bucket does
not honour conditional writes, an older tool, or a person. So the pushed manifests are read back (at
the pushed commit, with the same reader as everything else) and each object they reference is looked
at; one that is missing is exported again from its image and uploaded (objects are content-addressed,
so a re-upload is always safe: the same name can only hold the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import git as gitpython

from ..conformance.check import open_source_image
from ..errors import ExchangeError
from ..export import ExportOptions, export_image
from ..progress import Progress
from .artifacts import Artifact
from .references import referenced_by, stored_problem


class PublishedButIncomplete(ExchangeError):
    """The push landed, but an object its manifests reference is missing or wrong and could not be restored."""


def confirm_published(repo: gitpython.Repo, head: str, manifest_paths: Sequence[str], artifacts: Sequence[Artifact],
                      bucket, export_options: ExportOptions, work_dir: Path, progress: Progress,  # noqa: ANN001
                      log: Callable[[str], None]) -> list[str]:
    """The objects restored; PublishedButIncomplete naming each problem left."""
    by_name = {artifact.object_name: artifact for artifact in artifacts}
    restored: list[str] = []
    problems: list[str] = []
    for item in referenced_by(repo, head, list(manifest_paths)):
        if bucket.stat(item.object_name) is None:
            artifact = by_name.get(item.object_name)
            try:
                if artifact is None:
                    raise ExchangeError("no artifact of this run makes it")
                _restore(artifact, bucket, export_options, work_dir, progress)
            except ExchangeError as error:
                problems.append(f"{item.object_name} is missing and could not be restored: {error}")
                continue
            log(f"restored {item.object_name}: it was gone from the bucket after the push")
            restored.append(item.object_name)
        problem = stored_problem(bucket, item)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise PublishedButIncomplete(f"pushed {head[:12]}, but its manifests reference objects that are not right "
                                     "(run `exchange verify-storage`):\n  " + "\n  ".join(problems))
    return restored


def _restore(artifact: Artifact, bucket, export_options: ExportOptions, work_dir: Path,  # noqa: ANN001
             progress: Progress) -> None:
    """Export the artifact's image again (the same bytes: the export is deterministic) and upload it."""
    image = artifact.image
    if not image.layers or not all(layer.tar_path.exists() for layer in image.layers):
        # A fan-in artifact carries no layers, and the cache may have dropped them: resolve by digest.
        image = open_source_image(image.pinned_reference or artifact.job.image, export_options, progress)
    temp = work_dir / f"restore-{artifact.object_name}"
    try:
        exported = export_image(image, temp, progress=progress, shown_as=artifact.job.image)
        if exported.sha384 != artifact.sha384:
            raise ExchangeError(f"exporting {artifact.job.image} again gives sha384 {exported.sha384}, "
                                f"not {artifact.sha384}")
        bucket.upload(artifact.object_name, temp, size=exported.size, sha384=exported.sha384)
    finally:
        temp.unlink(missing_ok=True)

"""Every bucket object (and mirrored tag) this run created, so a failed run deletes exactly those and nothing
else."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..reference import ImageReference, parse_reference
from ..storage.bucket import Bucket


@dataclass(frozen=True)
class CreatedObject:
    name: str
    generation: str | None


@dataclass(frozen=True)
class CreatedTag:
    reference: ImageReference
    digest: str
    manifest_was_new: bool  # nothing else in the repository named this manifest before the run

    def __str__(self) -> str:
        return f"docker://{self.reference}"

    def as_json(self) -> dict[str, object]:
        return {"reference": str(self.reference), "digest": self.digest, "manifest-was-new": self.manifest_was_new}

    @classmethod
    def from_json(cls, document: dict[str, object]) -> CreatedTag:
        reference = parse_reference(str(document["reference"]))
        if reference.tag is None:  # a rollback may delete it by its tag: a record without one is not ours
            raise ValueError(f"created tag {reference} names no tag")
        return cls(reference, str(document["digest"]), bool(document["manifest-was-new"]))


@dataclass
class RollbackResult:
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)  # created by the run, but not safe to delete: why

    def plus(self, other: RollbackResult) -> RollbackResult:
        """Both undoings, this one's first: each part of a rollback returns its own result."""
        return RollbackResult([*self.deleted, *other.deleted], {**self.failed, **other.failed},
                              {**self.kept, **other.kept})


class CreatedObjects:
    """Thread-safe: exports and uploads run in parallel workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, CreatedObject] = {}
        self._beside: dict[str, set[str]] = {}  # artifact -> objects created beside it (its envelope)

    def record(self, name: str, generation: str | None, *, beside: str | None = None) -> None:
        """`beside`: the artifact this object belongs to; it is forgotten with that artifact."""
        with self._lock:
            self._objects[name] = CreatedObject(name, generation)
            if beside is not None:
                self._beside.setdefault(beside, set()).add(name)

    def forget(self, name: str) -> None:
        """Another run's manifest now references it (and what lies beside it): no longer ours to delete."""
        with self._lock:
            self._objects.pop(name, None)
            for companion in self._beside.pop(name, set()):
                self._objects.pop(companion, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def objects(self) -> list[CreatedObject]:
        with self._lock:
            return sorted(self._objects.values(), key=lambda created: created.name)

    def delete_all(self, bucket: Bucket, *, keeps: Callable[[str], str | None] = lambda name: None) -> RollbackResult:
        """Delete every object created, except those for which `keeps` gives a reason to keep them."""
        result = RollbackResult()
        for created in self.objects():
            reason = keeps(created.name)
            if reason is not None:
                result.kept[created.name] = reason
                self.forget(created.name)
                continue
            try:
                bucket.delete(created.name, generation=created.generation)
                result.deleted.append(created.name)
                self.forget(created.name)
            except Exception as error:  # noqa: BLE001 - report every object that could not be removed
                result.failed[created.name] = str(error)
        return result

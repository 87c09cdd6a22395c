"""Every bucket object this run created, so a failed run deletes exactly those and nothing else."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CreatedObject:
    name: str
    generation: str | None


@dataclass
class RollbackResult:
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class CreatedObjects:
    """Thread-safe: exports and uploads run in parallel workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, CreatedObject] = {}

    def record(self, name: str, generation: str | None) -> None:
        with self._lock:
            self._objects[name] = CreatedObject(name, generation)

    def forget(self, name: str) -> None:
        """Another run's manifest now references it: no longer ours to delete."""
        with self._lock:
            self._objects.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def objects(self) -> list[CreatedObject]:
        with self._lock:
            return sorted(self._objects.values(), key=lambda created: created.name)

    def delete_all(self, bucket) -> RollbackResult:  # noqa: ANN001 - a storage.Bucket
        result = RollbackResult()
        for created in self.objects():
            try:
                bucket.delete(created.name, generation=created.generation)
                result.deleted.append(created.name)
                self.forget(created.name)
            except Exception as error:  # noqa: BLE001 - report every object that could not be removed
                result.failed[created.name] = str(error)
        return result

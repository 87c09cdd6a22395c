"""Is there an executable at a path, or on a PATH, of the rootfs? Answers as problems with rule ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..validation.problems import Problem
from .rootfs_view import Resolution, RootfsView

# What Docker puts in a container's environment when the image sets no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYMLINK_RULE = "rootfs-symlink"


@dataclass(frozen=True)
class Lookup:
    """Where a name was looked for and what each place held."""

    found: Resolution | None
    tried: tuple[Resolution, ...]

    @property
    def broken_links(self) -> list[Resolution]:
        return [r for r in self.tried if r.outcome.is_symlink_failure]


def image_path(config: dict[str, Any]) -> str:
    """The PATH a container of this image starts with."""
    env = (config.get("config") or {}).get("Env") or []
    for entry in env:
        if isinstance(entry, str) and entry.startswith("PATH="):
            return entry[len("PATH="):]
    return DEFAULT_PATH


def find_executable(view: RootfsView, candidates: Iterable[str]) -> Lookup:
    """The first candidate path that resolves to an executable regular file."""
    tried = []
    for candidate in candidates:
        resolution = view.resolve(candidate)
        tried.append(resolution)
        if resolution.found and view.is_executable_file(resolution.node):
            return Lookup(resolution, tuple(tried))
    return Lookup(None, tuple(tried))


def on_path(name: str, search_path: str) -> list[str]:
    return [f"{directory.rstrip('/')}/{name}" for directory in search_path.split(":") if directory.startswith("/")]


def executable_problems(view: RootfsView, path: str, *, rule: str, what: str) -> list[Problem]:
    """Problems with the executable `what` at `path`: missing, not a file, not executable, a broken link."""
    resolution = view.resolve(path)
    if resolution.outcome.is_symlink_failure:
        return [Problem(SYMLINK_RULE, f"{what}: {resolution.explain()}", path)]
    if not resolution.found:
        return [Problem(rule, f"{what}: {resolution.explain()}", path)]
    header = view.header(resolution.node)  # type: ignore[arg-type]
    if header is None or not header.isreg():
        return [Problem(rule, f"{what}: {_where(resolution)} is not a regular file", path)]
    if not header.mode & 0o111:
        return [Problem(rule, f"{what}: {_where(resolution)} is not executable (mode {header.mode & 0o7777:04o})", path)]
    return []


def _where(resolution: Resolution) -> str:
    if resolution.path == resolution.requested:
        return resolution.requested
    return f"{resolution.requested} (-> {resolution.path})"

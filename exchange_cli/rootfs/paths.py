"""Entry names as layer tars spell them, turned into safe paths inside the root filesystem.

Layer tars are untrusted: a name may start with ``/`` or ``./``, repeat slashes, or climb out of the
root with ``..``. The flattener works on normalised paths (``a/b/c``, the root is ``""``) and
classifies OCI whiteout names here, so the tree code never sees a raw name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# AUFS bookkeeping (".wh..wh.plnk/", ".wh..wh.aufs" at the layer root); never part of the rootfs.
AUFS_META_PREFIX = ".wh..wh."
AUFS_LINK_DIR = ".wh..wh.plnk"


class UnsafePath(ValueError):
    """The name cannot be placed inside the root; the message says why."""


def normalise(name: str) -> str:
    """``./a//b/./c/`` -> ``a/b/c``; the root is ``""``. Raises UnsafePath for ``..`` or NUL."""
    return "/".join(normal_components(name))


def normal_components(name: str) -> list[str]:
    """``./a//b/./c/`` -> ``["a", "b", "c"]``; the root is ``[]``. Raises UnsafePath for ``..`` or NUL."""
    if "\0" in name:
        raise UnsafePath("the name contains a NUL byte")
    components = name.split("/")
    if "" in components or "." in components:  # most names are already normal: skip the copy
        components = [part for part in components if part not in ("", ".")]
    if ".." in components:
        raise UnsafePath("the name has a '..' component, which would leave the root filesystem")
    return components


def split(path: str) -> list[str]:
    return path.split("/") if path else []


class NameKind(Enum):
    ENTRY = "entry"
    WHITEOUT = "whiteout"  # deletes the named sibling from lower layers
    OPAQUE = "opaque"  # hides every lower-layer child of its directory
    AUFS_META = "aufs-meta"  # ignored, except AUFS hard-link sources


@dataclass(frozen=True)
class ClassifiedName:
    kind: NameKind
    path: str  # ENTRY: the entry; WHITEOUT: the deleted path; OPAQUE: the directory; AUFS_META: the entry


def may_be_marker(name: str) -> bool:
    """False when `classify` is sure to say ENTRY: every marker has a component starting with .wh."""
    return WHITEOUT_PREFIX in name


def classify(path: str) -> ClassifiedName:
    """Say what a normalised path means under the OCI whiteout rules."""
    components = split(path)
    if not components:
        return ClassifiedName(NameKind.ENTRY, path)
    base = components[-1]
    parent = "/".join(components[:-1])
    if base == OPAQUE_MARKER:
        return ClassifiedName(NameKind.OPAQUE, parent)
    if any(part.startswith(AUFS_META_PREFIX) for part in components):
        return ClassifiedName(NameKind.AUFS_META, path)
    if any(part.startswith(WHITEOUT_PREFIX) for part in components[:-1]):
        raise UnsafePath("a directory in the path is named like a whiteout ('.wh.' prefix)")
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise UnsafePath(f"the whiteout names no valid file ({target!r})")
        return ClassifiedName(NameKind.WHITEOUT, f"{parent}/{target}" if parent else target)
    return ClassifiedName(NameKind.ENTRY, path)

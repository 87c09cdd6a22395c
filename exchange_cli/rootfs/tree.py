"""The final root filesystem as an in-memory tree of where each entry's header lives.

Pass 1 of the flattener applies each layer's changes here, bottom layer first. A node records only
which layer holds its header and at which offset, so memory grows with the number of entries and
never with file sizes. Paths that are hard links to each other share one `Inode` object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import LayerError
from .paths import AUFS_LINK_DIR, split

IMPLIED = -1  # the layer of a directory no layer has an entry for; see `Directory.implied`


class Directory:
    __slots__ = ("layer", "offset", "children")

    def __init__(self, layer: int = IMPLIED, offset: int = IMPLIED) -> None:
        self.layer, self.offset = layer, offset
        self.children: dict[str, Directory | Inode] = {}

    @property
    def implied(self) -> bool:
        """Created only because a deeper path needed it: emitted as 0755 root:root, mtime 0."""
        return self.layer == IMPLIED


class Inode:
    """Any non-directory: the header of the entry that created it, and whether a hard link shares it."""

    __slots__ = ("layer", "offset", "type", "shared")

    def __init__(self, layer: int, offset: int, type: bytes) -> None:
        self.layer, self.offset, self.type = layer, offset, type
        self.shared = False


Node = Directory | Inode


class ChangeKind(Enum):
    DIRECTORY = "directory"
    NODE = "node"  # regular file, symlink, device or fifo
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"
    OPAQUE = "opaque"
    AUFS_LINK_SOURCE = "aufs-link-source"  # a file in .wh..wh.plnk/, reachable only as a hard-link target


@dataclass(slots=True)
class Change:
    kind: ChangeKind
    path: str  # normalised; for AUFS_LINK_SOURCE the file's base name
    offset: int  # of the entry's first header block in its layer
    type: bytes = b""  # NODE: the tar type flag
    target: str = ""  # HARDLINK: the normalised link target
    entry: str = ""  # WHITEOUT, OPAQUE: the marker's own normalised name, for errors


@dataclass
class LayerChanges:
    """One layer's changes, split so that whiteouts apply before the layer's own entries."""

    digest: str
    whiteouts: list[Change] = field(default_factory=list)
    entries: list[Change] = field(default_factory=list)


_TYPE_NAMES = {b"2": "a symlink", b"3": "a character device", b"4": "a block device", b"6": "a fifo"}


class RootTree:
    def __init__(self) -> None:
        self.root = Directory()

    def apply(self, layer: int, changes: LayerChanges) -> None:
        applier = _LayerApplier(self.root, layer, changes.digest)
        for change in changes.whiteouts:
            applier.apply_whiteout(change)
        for change in changes.entries:
            applier.apply_entry(change)


class _LayerApplier:
    def __init__(self, root: Directory, layer: int, digest: str) -> None:
        self.root, self.layer, self.digest = root, layer, digest
        self.aufs_link_sources: dict[str, Inode] = {}

    def apply_whiteout(self, change: Change) -> None:
        if change.kind is ChangeKind.AUFS_LINK_SOURCE:
            self.aufs_link_sources[change.path] = Inode(self.layer, change.offset, b"0")
            return
        components = split(change.path)
        if change.kind is ChangeKind.OPAQUE:
            if not components:
                self.root.children.clear()
                return
            parent = self._parent(components, change.entry)
            directory = parent.children.get(components[-1])
            if directory is None:
                parent.children[components[-1]] = Directory()
            elif isinstance(directory, Directory):
                directory.children.clear()
            # An opaque marker over a lower non-directory hides nothing: this layer's directory entry
            # replaces the file (overlayfs marks a directory created over a whiteout opaque).
            return
        self._parent(components, change.entry).children.pop(components[-1], None)

    def apply_entry(self, change: Change) -> None:
        components = split(change.path)
        if not components:
            if change.kind is not ChangeKind.DIRECTORY:
                raise self._error("/", "the root of the filesystem must be a directory")
            return  # the root directory entry is never emitted
        parent = self._parent(components, change.path)
        name = components[-1]
        if change.kind is ChangeKind.DIRECTORY:
            existing = parent.children.get(name)
            if isinstance(existing, Directory):
                existing.layer, existing.offset = self.layer, change.offset  # merge: upper metadata
            else:
                parent.children[name] = Directory(self.layer, change.offset)
        elif change.kind is ChangeKind.NODE:
            parent.children[name] = Inode(self.layer, change.offset, change.type)
        elif change.kind is ChangeKind.HARDLINK:
            inode = self._link_target(change)
            inode.shared = True
            parent.children[name] = inode
        else:
            raise AssertionError(f"not an entry change: {change.kind}")

    def _parent(self, components: list[str], entry: str) -> Directory:
        """The parent directory of `components`, implying missing directories as Docker does."""
        directory = self.root
        for depth, name in enumerate(components[:-1], start=1):
            child = directory.children.get(name)
            if child is None:
                child = directory.children[name] = Directory()
            elif not isinstance(child, Directory):
                raise self._error(entry, f"its parent {'/'.join(components[:depth])!r} is "
                                         f"{_describe(child)}, not a directory; writing through it "
                                         "could leave the root filesystem")
            directory = child
        return directory

    def _link_target(self, change: Change) -> Inode:
        components = split(change.target)
        if components and components[0] == AUFS_LINK_DIR:
            source = self.aufs_link_sources.get(components[-1])
            if source is None:
                raise self._error(change.path, f"hard link target {change.target!r} is not in this "
                                               "layer's AUFS link directory")
            return source
        node: Node = self.root
        for depth, name in enumerate(components, start=1):
            if not isinstance(node, Directory):
                raise self._error(change.path, f"hard link target {change.target!r} passes through "
                                               f"{'/'.join(components[:depth - 1])!r}, which is {_describe(node)}")
            child = node.children.get(name)
            if child is None:
                raise self._error(change.path, f"hard link target {change.target!r} does not exist "
                                               "in this or a lower layer at this point")
            node = child
        if isinstance(node, Directory):
            raise self._error(change.path, f"hard link target {change.target or '/'!r} is a directory")
        return node

    def _error(self, entry: str, reason: str) -> LayerError:
        return LayerError(self.digest, entry, reason)


def _describe(node: Node) -> str:
    if isinstance(node, Directory):
        return "a directory"
    return _TYPE_NAMES.get(node.type, "a regular file")

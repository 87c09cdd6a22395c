"""The final root filesystem as an in-memory tree of where each entry's header lives.

Pass 1 of the flattener applies each layer's changes here, bottom layer first. A node records only
which layer holds its header and at which offset, so memory grows with the number of entries and
never with file sizes. A file is a bare int (`ref`: layer, offset and kind packed together), since a
Python object per file would cost more than the rest of the tree; a path hard-linked to others
shares one `Inode` object with them; a directory is a `Directory`.

A layer's whiteouts apply before its own entries, and never to each other: all their removals act on
the lower layers' tree (`remove_lower`), then the directories they sit in are created
(`imply_for_marker`), so their order in the archive does not matter; then the entries
(`apply_entry`) in archive order. Indexing may
also apply a layer in archive order (`LayerApplier(eager=True)`), which needs no list of the
layer's changes: every node remembers the layer that created it, so a whiteout arriving after
entries of its own layer can tell whether it touches anything they made. If it does, or if an
entry fails in that order, the applier raises `OrderMatters` and the caller starts again with
whiteouts first, which then gives the exact result or error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import cast

from .errors import LayerError
from .paths import AUFS_LINK_DIR, split
from .tarheader import BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, REGULAR_TYPES, SYMTYPE

IMPLIED = -1  # the `entry` of a directory no layer has an entry for; see `Directory.implied`

# ref = offset << OFFSET_SHIFT | layer << 4 | EXTENDED? | kind
KIND_REGULAR, KIND_SYMLINK, KIND_CHAR, KIND_BLOCK, KIND_FIFO, KIND_DIRECTORY = range(6)
KIND_MASK = 7
EXTENDED = 8  # extended headers precede the entry's ustar block
LAYER_SHIFT, LAYER_MASK = 4, 0xFFFF
OFFSET_SHIFT = 20
MAX_LAYERS = LAYER_MASK + 1
KIND_OF_TYPE = {**dict.fromkeys(REGULAR_TYPES, KIND_REGULAR), SYMTYPE: KIND_SYMLINK, CHRTYPE: KIND_CHAR,
                BLKTYPE: KIND_BLOCK, FIFOTYPE: KIND_FIFO, DIRTYPE: KIND_DIRECTORY}


def pack_ref(layer: int, offset: int, kind: int, extended: bool) -> int:
    return offset << OFFSET_SHIFT | layer << LAYER_SHIFT | (EXTENDED if extended else 0) | kind


def ref_layer(ref: int) -> int:
    return ref >> LAYER_SHIFT & LAYER_MASK


def ref_offset(ref: int) -> int:
    return ref >> OFFSET_SHIFT


def node_ref(node: Node) -> int | None:
    """Where the header of `node` is; None for a directory no layer has an entry for."""
    if type(node) is int:
        return node
    if type(node) is Directory:
        return None if node.implied else node.entry
    return cast(Inode, node).ref  # the checks above leave an Inode; mypy narrows `type(x) is` only where it holds


class Directory:
    __slots__ = ("entry", "born", "children")

    def __init__(self, entry: int = IMPLIED, born: int = 0) -> None:
        self.entry = entry  # the ref of the header giving its metadata, or IMPLIED
        self.born = born  # the layer that created this object
        self.children: dict[str, Node] = {}

    @property
    def implied(self) -> bool:
        """Created only because a deeper path needed it: emitted as 0755 root:root, mtime 0."""
        return self.entry == IMPLIED


class Inode:
    """A non-directory that hard links (or an AUFS link source) share: the ref of its header."""

    __slots__ = ("ref", "shared", "linked")

    def __init__(self, ref: int) -> None:
        self.ref = ref
        self.shared = False
        self.linked = -1  # the last layer that made a hard link to it


Node = Directory | Inode | int


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
    ref: int = 0  # DIRECTORY, NODE, AUFS_LINK_SOURCE: where the header is
    target: str = ""  # HARDLINK: the normalised link target
    entry: str = ""  # WHITEOUT, OPAQUE: the marker's own normalised name, for errors


@dataclass
class LayerChanges:
    """One layer's changes, split so that whiteouts apply before the layer's own entries."""

    digest: str
    whiteouts: list[Change] = field(default_factory=list)
    entries: list[Change] = field(default_factory=list)


class OrderMatters(Exception):
    """Applying a layer in archive order could differ from whiteouts first: start again that way."""


_KIND_NAMES = {KIND_SYMLINK: "a symlink", KIND_CHAR: "a character device", KIND_BLOCK: "a block device",
               KIND_FIFO: "a fifo"}


class RootTree:
    def __init__(self) -> None:
        self.root = Directory()

    def apply(self, layer: int, changes: LayerChanges) -> None:
        """Apply a layer whose changes were all read first: its whiteouts, then its entries."""
        applier = LayerApplier(self.root, layer, changes.digest)
        for change in changes.whiteouts:
            applier.remove_lower(change)
        for change in changes.whiteouts:
            applier.imply_for_marker(change)
        for change in changes.entries:
            applier.apply_change(change)


class LayerApplier:
    def __init__(self, root: Directory, layer: int, digest: str, *, eager: bool = False) -> None:
        if layer >= MAX_LAYERS:
            raise LayerError(digest, "/", f"an image of more than {MAX_LAYERS} layers is not supported")
        self.root, self.layer, self.digest, self.eager = root, layer, digest, eager
        self.aufs_link_sources: dict[str, Inode] = {}
        self.dirty = False  # eager: an entry of this layer has been applied
        self.linked = False  # eager: a hard link of this layer has been applied
        # eager: an entry replaced a lower directory into which a hard link of this layer reached
        self.replaced_linked_directory = False
        # eager: the directories this layer's markers so far sit in (and opaque ones' own), prefix-closed;
        # whiteouts first would create them after every removal, so a later marker must not remove them
        self.marker_dirs: set[str] = set()
        # The last parent looked up: archives list a directory's entries together, so most lookups
        # repeat the one before. Forgotten whenever a directory leaves the tree.
        self._parent_key: list[str] | None = None
        self._parent_directory = root

    # --- whiteouts -----------------------------------------------------------------------------

    def apply_marker(self, change: Change) -> None:
        """A whiteout, opaque marker or AUFS link source met while applying in archive order.

        Handled as a late marker even before any entry: a marker must not act on the directories an
        earlier marker of this layer implied (whiteouts act on lower layers only)."""
        if change.kind is ChangeKind.AUFS_LINK_SOURCE and not self.dirty:
            self.aufs_link_sources[change.path] = Inode(change.ref)
        else:
            self._apply_late_marker(change)

    def remove_lower(self, change: Change) -> None:
        """What a whiteout or opaque marker removes, applied before anything else of this layer."""
        self._parent_key = None
        if change.kind is ChangeKind.AUFS_LINK_SOURCE:
            self.aufs_link_sources[change.path] = Inode(change.ref)
            return
        components = split(change.path)
        if not components:  # an opaque root
            self.root.children.clear()
            return
        parent = self._existing_parent(components)
        if parent is None:
            return  # nothing below to remove; `imply_for_marker` says whether the path is allowed
        if change.kind is ChangeKind.OPAQUE:
            directory = parent.children.get(components[-1])
            if type(directory) is Directory:
                directory.children.clear()
            # An opaque marker over a lower non-directory hides nothing: this layer's directory entry
            # replaces the file (overlayfs marks a directory created over a whiteout opaque).
            return
        parent.children.pop(components[-1], None)

    def imply_for_marker(self, change: Change) -> None:
        """The directories a marker sits in (and an opaque marker's own) exist in this layer, as Docker makes them."""
        components = split(change.path)
        if change.kind is ChangeKind.AUFS_LINK_SOURCE or not components:
            return
        parent = self._parent(components, change.entry)
        if change.kind is ChangeKind.OPAQUE and components[-1] not in parent.children:
            parent.children[components[-1]] = Directory(born=self.layer)

    def _existing_parent(self, components: list[str]) -> Directory | None:
        directory = self.root
        for name in components[:-1]:
            child = directory.children.get(name)
            if type(child) is not Directory:
                return None
            directory = child
        return directory

    def _apply_late_marker(self, change: Change) -> None:
        """A marker applied in archive order: only where nothing of this layer is touched, else OrderMatters."""
        self._parent_key = None
        if change.kind is ChangeKind.AUFS_LINK_SOURCE:
            raise OrderMatters  # a hard link read before it may have needed it
        components = split(change.path)
        if not components:  # an opaque root
            if self.marker_dirs or any(self._touched(child) for child in self.root.children.values()):
                raise OrderMatters
            self.root.children.clear()
            return
        if change.path in self.marker_dirs:
            raise OrderMatters  # it would remove what an earlier marker of this layer sits in
        parent = self._lower_parent(components)
        name = components[-1]
        node = parent.children.get(name)
        self.marker_dirs.update("/".join(components[:depth]) for depth in range(1, len(components)))
        if change.kind is ChangeKind.OPAQUE:
            self.marker_dirs.add(change.path)
            if node is None:
                parent.children[name] = Directory(born=self.layer)
            elif type(node) is Directory and node.born == self.layer:
                # This layer made it, so below it was missing or not a directory, and whiteouts first
                # would have hidden nothing: the common "rm f; mkdir f" shape. Unless it replaced a
                # lower directory, into which a hard link of this layer may have reached.
                if self.replaced_linked_directory:
                    raise OrderMatters
            elif type(node) is Directory:
                if any(self._touched(child) for child in node.children.values()):
                    raise OrderMatters
                node.children.clear()
            elif self._touched(node):
                raise OrderMatters  # a non-directory this layer made or linked, maybe over a lower directory
            return
        if node is not None:
            if self._touched(node):
                raise OrderMatters
            del parent.children[name]

    def _lower_parent(self, components: list[str]) -> Directory:
        """The parent of `components` as it was below this layer (missing ones implied), or OrderMatters."""
        directory = self.root
        for name in components[:-1]:
            child = directory.children.get(name)
            if child is None:
                child = directory.children[name] = Directory(born=self.layer)
            elif type(child) is not Directory or child.born == self.layer:
                raise OrderMatters  # made by this layer, or an error whiteouts-first would report
            directory = child
        return directory

    def _touched(self, node: Node) -> bool:
        """Whether this layer made, changed or linked anything in `node`'s subtree. Before the layer's
        first entry only its markers have made directories, and `marker_dirs` already guards those."""
        return self.dirty and not self._untouched(node)

    def _untouched(self, node: Node) -> bool:
        """Nothing in `node`'s subtree was created, given metadata or hard-linked by this layer."""
        layer = self.layer
        pending = [node]
        while pending:
            node = pending.pop()
            if type(node) is int:
                if ref_layer(node) == layer:
                    return False
            elif type(node) is Directory:
                if node.born == layer or (node.entry != IMPLIED and ref_layer(node.entry) == layer):
                    return False
                pending.extend(node.children.values())
            else:
                inode = cast(Inode, node)  # neither int nor Directory (mypy narrows `type(x) is` only where it holds)
                if ref_layer(inode.ref) == layer or inode.linked == layer:
                    return False
        return True

    # --- entries -------------------------------------------------------------------------------

    def apply_change(self, change: Change) -> None:
        components = split(change.path)
        if change.kind is ChangeKind.HARDLINK:
            self.apply_hardlink(components, change.path, change.target)
        elif change.kind is ChangeKind.DIRECTORY or change.kind is ChangeKind.NODE:
            self.apply_entry(components, change.ref, change.path)
        else:
            raise AssertionError(f"not an entry change: {change.kind}")

    def apply_entry(self, components: list[str], ref: int, path: str | None = None) -> None:
        """A directory or a node at `components` (a normalised path), its header at `ref`."""
        self.dirty = True
        if not components:
            if ref & KIND_MASK != KIND_DIRECTORY:
                raise self._error("/", "the root of the filesystem must be a directory")
            return  # the root directory entry is never emitted
        parent = self._parent(components, path)
        name = components[-1]
        if ref & KIND_MASK == KIND_DIRECTORY:
            existing = parent.children.get(name)
            if type(existing) is Directory:
                existing.entry = ref  # merge: upper metadata
            else:
                parent.children[name] = Directory(ref, self.layer)
        else:
            self._replace(parent, name, ref)

    def apply_hardlink(self, components: list[str], path: str, target: str) -> None:
        self.dirty = True
        if not components:
            raise self._error("/", "the root of the filesystem must be a directory")
        parent = self._parent(components, path)
        inode = self._link_target(target, path)
        inode.shared = True
        inode.linked = self.layer
        self.linked = True
        self._replace(parent, components[-1], inode)

    def _replace(self, parent: Directory, name: str, node: Inode | int) -> None:
        existing = parent.children.get(name)
        if type(existing) is Directory:
            self._parent_key = None
            if self.linked and existing.born != self.layer and not self._untouched(existing):
                self.replaced_linked_directory = True
        parent.children[name] = node

    def _parent(self, components: list[str], entry: str | None) -> Directory:
        """The parent directory of `components`, implying missing directories as Docker does."""
        key = components[:-1]
        if key == self._parent_key:
            return self._parent_directory
        directory = self.root
        for depth in range(len(components) - 1):
            name = components[depth]
            child = directory.children.get(name)
            if child is None:
                child = directory.children[name] = Directory(born=self.layer)
            elif type(child) is not Directory:
                raise self._error(entry if entry is not None else "/".join(components),
                                  f"its parent {'/'.join(components[:depth + 1])!r} is {_describe(child)}, "
                                  "not a directory; writing through it could leave the root filesystem")
            directory = child
        self._parent_key, self._parent_directory = key, directory
        return directory

    def _link_target(self, target: str, path: str) -> Inode:
        components = split(target)
        if components and components[0] == AUFS_LINK_DIR:
            source = self.aufs_link_sources.get(components[-1])
            if source is None:
                raise self._error(path, f"hard link target {target!r} is not in this layer's AUFS link directory")
            return source
        parent: Directory | None = None
        node: Node = self.root
        for depth, name in enumerate(components, start=1):
            if type(node) is not Directory:
                raise self._error(path, f"hard link target {target!r} passes through "
                                        f"{'/'.join(components[:depth - 1])!r}, which is {_describe(node)}")
            child = node.children.get(name)
            if child is None:
                raise self._error(path, f"hard link target {target!r} does not exist in this or a lower "
                                        "layer at this point")
            parent, node = node, child
        if type(node) is Directory:
            raise self._error(path, f"hard link target {target or '/'!r} is a directory")
        if type(node) is int:  # the first link to this file: it becomes a shared object
            assert parent is not None
            node = parent.children[components[-1]] = Inode(node)
        return cast(Inode, node)  # neither a Directory nor an int: see the checks above

    def _error(self, entry: str, reason: str) -> Exception:
        if self.eager:
            return OrderMatters()  # whiteouts first may avoid it, or report another: let that decide
        return LayerError(self.digest, entry, reason)


def _describe(node: Node) -> str:
    if type(node) is Directory:
        return "a directory"
    ref = node if type(node) is int else cast(Inode, node).ref  # neither Directory nor int: an Inode
    return _KIND_NAMES.get(ref & KIND_MASK, "a regular file")

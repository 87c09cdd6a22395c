"""Pass 1 of the flattener: read every layer's headers (never their data) into the tree.

Each header is read once, and a layer is applied as it is read (`LayerApplier(eager=True)`), so
no list of its changes is kept. Should a layer's whiteouts and entries interfere in a way that
makes archive order differ from whiteouts first (`OrderMatters`: never the case in layers Docker
or BuildKit write), the tree is built again from scratch the reference way: each layer's changes
read first, its whiteouts applied before its entries.
"""

from __future__ import annotations

from typing import Sequence

from .layertar import LayerTar
from .paths import AUFS_LINK_DIR, NameKind, UnsafePath, classify, may_be_marker, normal_components, normalise, split
from .tarheader import DIRTYPE, LNKTYPE, REGULAR_TYPES, LayerEntry
from .tree import (KIND_OF_TYPE, KIND_REGULAR, Change, ChangeKind, Directory, LayerApplier, LayerChanges, OrderMatters,
                   RootTree, pack_ref)


def build_tree(tars: Sequence[LayerTar]) -> Directory:
    """The root of the final tree of `tars` (bottom layer first)."""
    try:
        tree = RootTree()
        for layer, tar in enumerate(tars):
            _apply_in_archive_order(tree, layer, tar)
    except OrderMatters:
        tree = RootTree()
        for layer, tar in enumerate(tars):
            tree.apply(layer, read_changes(layer, tar))
    return tree.root


def _apply_in_archive_order(tree: RootTree, layer: int, tar: LayerTar) -> None:
    applier = LayerApplier(tree.root, layer, tar.blob.digest, eager=True)
    for entry in tar.entries():
        name = entry.name
        try:
            components = normal_components(name)
        except UnsafePath as unsafe:
            raise tar.error(name, str(unsafe)) from None
        if may_be_marker(name):
            change = _classified_change(tar, layer, entry, "/".join(components))
            if change is None:
                continue
            if change.kind in _MARKERS:
                applier.apply_marker(change)
                continue
        if entry.type == LNKTYPE:
            applier.apply_hardlink(components, "/".join(components), _link_target(tar, entry))
        else:
            applier.apply_entry(components, _ref(layer, entry))


def read_changes(layer: int, tar: LayerTar) -> LayerChanges:
    """Every change of one layer, whiteouts apart, for applying whiteouts first."""
    changes = LayerChanges(tar.blob.digest)
    for entry in tar.entries():
        try:
            path = normalise(entry.name)
        except UnsafePath as unsafe:
            raise tar.error(entry.name, str(unsafe)) from None
        change = _classified_change(tar, layer, entry, path)
        if change is not None:
            (changes.whiteouts if change.kind in _MARKERS else changes.entries).append(change)
    return changes


_MARKERS = frozenset((ChangeKind.WHITEOUT, ChangeKind.OPAQUE, ChangeKind.AUFS_LINK_SOURCE))


def _classified_change(tar: LayerTar, layer: int, entry: LayerEntry, path: str) -> Change | None:
    """The change `entry` (at normalised `path`) makes; None for AUFS bookkeeping, which makes none."""
    try:
        named = classify(path)
    except UnsafePath as unsafe:
        raise tar.error(entry.name, str(unsafe)) from None
    if named.kind is NameKind.WHITEOUT:
        return Change(ChangeKind.WHITEOUT, named.path, entry=path)
    if named.kind is NameKind.OPAQUE:
        return Change(ChangeKind.OPAQUE, named.path, entry=path)
    if named.kind is NameKind.AUFS_META:
        components = split(path)
        if len(components) == 2 and components[0] == AUFS_LINK_DIR and entry.type in REGULAR_TYPES:
            return Change(ChangeKind.AUFS_LINK_SOURCE, components[1],
                          ref=pack_ref(layer, entry.offset, KIND_REGULAR, entry.extended))
        return None
    if entry.type == LNKTYPE:
        return Change(ChangeKind.HARDLINK, path, target=_link_target(tar, entry))
    kind = ChangeKind.DIRECTORY if entry.type == DIRTYPE else ChangeKind.NODE
    return Change(kind, path, ref=_ref(layer, entry))


def _ref(layer: int, entry: LayerEntry) -> int:
    return pack_ref(layer, entry.offset, KIND_OF_TYPE[entry.type], entry.extended)


def _link_target(tar: LayerTar, entry: LayerEntry) -> str:
    try:
        return normalise(entry.linkname)
    except UnsafePath as unsafe:
        raise tar.error(entry.name, f"hard link target {entry.linkname!r}: {unsafe}") from None

"""Pass 1 of the flattener: read a layer's headers (never its data) into the changes it makes."""

from __future__ import annotations

from .layertar import LayerTar
from .paths import AUFS_LINK_DIR, NameKind, UnsafePath, classify, normalise, split
from .tarheader import DIRTYPE, LNKTYPE, REGTYPE, REGULAR_TYPES, Header
from .tree import Change, ChangeKind, LayerChanges


def read_changes(layer: LayerTar) -> LayerChanges:
    changes = LayerChanges(layer.blob.digest)
    for header in layer.headers():
        try:
            path = normalise(header.name)
            named = classify(path)
        except UnsafePath as unsafe:
            raise layer.error(header.name, str(unsafe)) from None
        if named.kind is NameKind.WHITEOUT:
            changes.whiteouts.append(Change(ChangeKind.WHITEOUT, named.path, header.offset, entry=path))
        elif named.kind is NameKind.OPAQUE:
            changes.whiteouts.append(Change(ChangeKind.OPAQUE, named.path, header.offset, entry=path))
        elif named.kind is NameKind.AUFS_META:
            components = split(path)
            if len(components) == 2 and components[0] == AUFS_LINK_DIR and header.type in REGULAR_TYPES:
                changes.whiteouts.append(Change(ChangeKind.AUFS_LINK_SOURCE, components[1], header.offset))
        else:
            changes.entries.append(_entry_change(layer, header, path))
    return changes


def _entry_change(layer: LayerTar, header: Header, path: str) -> Change:
    if header.type == DIRTYPE:
        return Change(ChangeKind.DIRECTORY, path, header.offset)
    if header.type == LNKTYPE:
        try:
            target = normalise(header.linkname)
        except UnsafePath as unsafe:
            raise layer.error(header.name, f"hard link target {header.linkname!r}: {unsafe}") from None
        return Change(ChangeKind.HARDLINK, path, header.offset, target=target)
    node_type = REGTYPE if header.type in REGULAR_TYPES else header.type
    return Change(ChangeKind.NODE, path, header.offset, type=node_type)

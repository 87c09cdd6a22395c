"""Pass 1 of the flattener: read every layer's headers (never their data) into the tree.

Each header is read once, and a layer is applied as it is read (`LayerApplier(eager=True)`), so
no list of its changes is kept. Should a layer's whiteouts and entries interfere in a way that
makes archive order differ from whiteouts first (`OrderMatters`: never the case in layers Docker
or BuildKit write), the tree is built again from scratch the reference way: each layer's changes
read first, its whiteouts applied before its entries.

Layers are indexed one at a time, bottom first (`TreeBuilder`), so a layer can be indexed as soon as
it is stored: `BackgroundIndex` does so on a thread while the layers above it still download.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Self

from ..image.model import LayerBlob
from .layertar import LayerTar
from .paths import AUFS_LINK_DIR, NameKind, UnsafePath, classify, may_be_marker, normal_components, normalise, split
from .tarheader import DIRTYPE, LNKTYPE, REGULAR_TYPES, LayerEntry
from .tree import (
    KIND_OF_TYPE,
    KIND_REGULAR,
    Change,
    ChangeKind,
    Directory,
    LayerApplier,
    LayerChanges,
    OrderMatters,
    RootTree,
    pack_ref,
)


class TreeBuilder:
    """The tree of the layers added so far, bottom first: a layer can be indexed as soon as it is
    stored, while those above it are still being fetched.

    Layers go in archive order while they can; at the first `OrderMatters`, the layers so far are
    applied again from scratch the reference way (whiteouts first), and so are all later ones: the
    same tree, or the same error, as reading every layer first."""

    def __init__(self) -> None:
        self.tree = RootTree()
        self.tars: list[LayerTar] = []
        self.in_archive_order = True

    @property
    def root(self) -> Directory:
        return self.tree.root

    def add(self, tar: LayerTar) -> None:
        layer = len(self.tars)
        self.tars.append(tar)
        if self.in_archive_order:
            try:
                _apply_in_archive_order(self.tree, layer, tar)
                return
            except OrderMatters:
                self.in_archive_order = False
                self.tree = RootTree()
                for lower, lower_tar in enumerate(self.tars[:layer]):
                    self.tree.apply(lower, read_changes(lower, lower_tar))
        self.tree.apply(layer, read_changes(layer, tar))


class LayerIndex:
    """Pass 1 for the layers of one image, added bottom first: each is opened (mapped) and indexed as
    it is added; `complete` adds the rest and hands over the open tars with the tree. Closing it
    closes the tars."""

    def __init__(self) -> None:
        self.builder = TreeBuilder()
        self.opened = ExitStack()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, blob: LayerBlob) -> None:
        self.builder.add(self.opened.enter_context(LayerTar(blob)))

    def complete(self, layers: Sequence[LayerBlob]) -> tuple[list[LayerTar], Directory]:
        indexed = [tar.blob for tar in self.builder.tars]
        if indexed != list(layers[:len(indexed)]):
            raise ValueError("the layers indexed so far are not the image's first layers")
        for blob in layers[len(indexed):]:
            self.add(blob)
        return self.builder.tars, self.builder.root

    @property
    def entries(self) -> int:
        """The entries of the layers indexed so far: what the tree's memory grows with (an upper bound
        of its nodes, as upper layers replace and delete)."""
        return sum(tar.entry_count for tar in self.builder.tars)

    def close(self) -> None:
        self.opened.close()


class BackgroundIndex(LayerIndex):
    """A LayerIndex that indexes, on a thread of its own, each layer a source reports stored
    (`stored(position, blob)`, from any thread, in any order) once those below it are indexed:
    on a cold cache, pass 1 then runs while the upper layers are still downloading.

    A failure stops the thread and is raised by `complete`, where indexing every layer at once
    would have raised it; a source that fails first keeps its own error, as before."""

    def __init__(self) -> None:
        super().__init__()
        self.ready: dict[int, LayerBlob] = {}
        self.changed = threading.Condition()
        self.stopping = False
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="layer-index", daemon=True)
        self.thread.start()

    def stored(self, position: int, blob: LayerBlob) -> None:
        with self.changed:
            self.ready[position] = blob
            self.changed.notify()

    def complete(self, layers: Sequence[LayerBlob]) -> tuple[list[LayerTar], Directory]:
        self._stop()
        if self.failure is not None:
            raise self.failure
        return super().complete(layers)

    def close(self) -> None:
        self._stop()
        super().close()

    def _stop(self) -> None:
        with self.changed:
            self.stopping = True
            self.changed.notify()
        self.thread.join()

    def _next(self) -> LayerBlob | None:
        with self.changed:
            position = len(self.builder.tars)
            while position not in self.ready and not self.stopping:
                self.changed.wait()
            return None if self.stopping else self.ready.pop(position)

    def _run(self) -> None:
        try:
            while (blob := self._next()) is not None:
                self.add(blob)
        except BaseException as error:  # noqa: BLE001 - raised again by `complete`
            self.failure = error


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

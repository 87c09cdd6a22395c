"""Indexing a layer in archive order gives the tree that whiteouts-first gives, or falls back to it.

`index.TreeBuilder` applies each layer's entries as it reads them, keeping no list of them. The OCI
rule is that a layer's whiteouts act on the lower layers only, as if they came first. These tests
generate layer stacks (seeded, so a failure replays) and compare the two ways node by node:

- stacks written the way Docker and BuildKit write layers (sorted walk order, a whiteout among its
  siblings, an opaque marker right after its directory, parents before children), where archive
  order must succeed without falling back;
- the same stacks with each layer's entries shuffled, where it may fall back but must still agree,
  results and errors alike.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exchange_cli.image.model import LayerBlob
from exchange_cli.rootfs import index
from exchange_cli.rootfs.errors import LayerError
from exchange_cli.rootfs.layertar import LayerTar
from exchange_cli.rootfs.tree import Directory, Inode, OrderMatters, RootTree
from tests.layers import Entry, directory, file, hardlink, make_layer, opaque, symlink, whiteout

NAMES = ("a", "b", "c", ".b", "-x", "d.d", "zz")  # ".b" and "-x" sort before a ".wh." marker


@dataclass
class DockerLikeStack:
    """Filesystem states layer by layer, each layer written as Docker writes a diff."""

    rng: random.Random
    state: dict[str, str] = field(default_factory=dict)  # path -> "dir", "file", "symlink" or "link:<target>"
    layers: list[list[Entry]] = field(default_factory=list)

    def add_layer(self, operations: int) -> None:
        lower = dict(self.state)
        changed: set[str] = set()
        deleted: set[str] = set()
        for _ in range(operations):
            self._operate(lower, changed, deleted)
        self.layers.append(self._render(changed, deleted))

    def _operate(self, lower: dict[str, str], changed: set[str], deleted: set[str]) -> None:
        rng, state = self.rng, self.state
        path = "/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 3)))
        action = rng.choice(["file", "file", "dir", "symlink", "delete", "delete", "recreate", "hardlink"])
        if action in ("delete", "recreate"):
            existing = [p for p in state if p in lower]
            if not existing:
                return
            path = rng.choice(existing)
            if action == "recreate" and state[path] != "dir":
                return
            self._delete(path, lower, changed, deleted)
            if action == "recreate":
                state[path] = "dir"
                changed.add(path)
            return
        if not self._make_parents(path, changed):
            return
        if state.get(path) == "dir" and action == "dir":
            changed.add(path)  # new metadata, children kept
            return
        if action == "hardlink":
            targets = [p for p in state if state[p] == "file" and p < path and p not in changed
                       and p != path and not p.startswith(path + "/")]
            if not targets:
                return
            kind = "link:" + rng.choice(targets)
        else:
            kind = action
        if path in state:
            self._delete(path, lower, changed, deleted)  # replaced: deleted, then made again
        state[path] = kind
        changed.add(path)

    def _make_parents(self, path: str, changed: set[str]) -> bool:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            kind = self.state.get(parent)
            if kind is None:
                self.state[parent] = "dir"
                changed.add(parent)
            elif kind != "dir":
                return False
        return True

    def _delete(self, path: str, lower: dict[str, str], changed: set[str], deleted: set[str]) -> None:
        """Delete `path` and its subtree as overlayfs does: one whiteout covers all below it."""
        subtree = [p for p in self.state if p == path or p.startswith(path + "/")]
        for other in subtree:
            self.state.pop(other)
            changed.discard(other)
        for linked, kind in list(self.state.items()):
            if kind.startswith("link:") and kind.removeprefix("link:") in subtree:
                self.state[linked] = "file"  # the other name keeps the inode, copied up: a plain file now
                changed.add(linked)
        deleted.difference_update([d for d in deleted if d.startswith(path + "/")])
        if path in lower:
            deleted.add(path)

    def _render(self, changed: set[str], deleted: set[str]) -> list[Entry]:
        shown = set(changed)
        for path in changed | deleted:  # Docker writes the parents of every change
            parts = path.split("/")
            shown.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        covered = {path for path in deleted if any(path.startswith(other + "/") for other in deleted)}
        markers = {path for path in deleted - covered if path not in self.state}
        listed = sorted(shown | markers, key=lambda p: [part.encode() for part in p.split("/")])
        entries: list[Entry] = []
        for path in _walk_order(listed, markers):
            if path in markers:
                entries.append(whiteout(path))
                continue
            kind = self.state.get(path)
            if kind is None:
                continue
            mtime = self.rng.randint(1, 10**9)
            if kind == "dir":
                entries.append(directory(path, mode=self.rng.choice([0o755, 0o700]), mtime=mtime))
                if path in deleted and path not in covered:  # deleted, then made again: overlayfs marks it opaque
                    entries.append(opaque(path))
            elif kind == "file":
                entries.append(file(path, path.encode() * self.rng.randint(0, 3), mtime=mtime))
            elif kind == "symlink":
                entries.append(symlink(path, "somewhere", mtime=mtime))
            else:
                entries.append(hardlink(path, kind.removeprefix("link:")))
        return entries


def _walk_order(paths: list[str], markers: set[str]) -> list[str]:
    """Sorted by the name each entry has in the tar: a whiteout sorts as ".wh.<name>" among siblings."""
    def key(path: str) -> list[bytes]:
        parts = path.split("/")
        if path in markers:
            parts[-1] = ".wh." + parts[-1]
        return [part.encode() for part in parts]
    return sorted(paths, key=key)


def _dump(root: Directory) -> list[tuple]:
    """The tree as comparable data: path, node kind, header ref, and hard-link groups by first path."""
    rows: list[tuple] = []
    groups: dict[int, str] = {}
    pending = [("", root)]
    while pending:
        prefix, directory_node = pending.pop()
        for name in sorted(directory_node.children):
            node = directory_node.children[name]
            path = prefix + name
            if type(node) is Directory:
                rows.append((path, "dir", node.entry))
                pending.append((path + "/", node))
            elif type(node) is Inode:
                rows.append((path, "inode", node.ref, groups.setdefault(id(node), path)))
            else:
                rows.append((path, "file", node))
    return sorted(rows)


def _both_ways(blobs: list[LayerBlob]) -> tuple[object, object, bool]:
    """(archive-order result, whiteouts-first result, whether archive order fell back)."""
    with ExitStack() as stack:
        tars = [stack.enter_context(LayerTar(blob)) for blob in blobs]
        try:
            builder = index.TreeBuilder()
            for tar in tars:
                builder.add(tar)
            fast: object = _dump(builder.root)
        except LayerError as error:
            fast = str(error)
        fell_back = False
        try:
            tree = RootTree()
            for layer, tar in enumerate(tars):
                index._apply_in_archive_order(tree, layer, tar)
        except OrderMatters:
            fell_back = True
        except LayerError:
            pass
        try:
            tree = RootTree()
            for layer, tar in enumerate(tars):
                tree.apply(layer, index.read_changes(layer, tar))
            reference: object = _dump(tree.root)
        except LayerError as error:
            reference = str(error)
    return fast, reference, fell_back


@pytest.mark.parametrize("seed", range(60))
def test_docker_ordered_layers_apply_in_archive_order_without_falling_back(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    stack = DockerLikeStack(rng)
    for _ in range(rng.randint(2, 5)):
        stack.add_layer(rng.randint(3, 25))
    blobs = [make_layer(tmp_path, entries) for entries in stack.layers]
    fast, reference, fell_back = _both_ways(blobs)
    assert fast == reference
    assert isinstance(reference, list), reference  # the generator writes valid stacks
    assert not fell_back


@pytest.mark.parametrize("seed", range(120))
def test_shuffled_layers_agree_with_whiteouts_first(tmp_path: Path, seed: int) -> None:
    rng = random.Random(1000 + seed)
    stack = DockerLikeStack(rng)
    for _ in range(rng.randint(2, 4)):
        stack.add_layer(rng.randint(3, 20))
    for entries in stack.layers[1:]:
        if rng.random() < 0.5:
            rng.shuffle(entries)
        else:  # a few neighbours swapped: nearly Docker's order
            for _ in range(3):
                at = rng.randrange(max(len(entries) - 1, 1))
                entries[at:at + 2] = entries[at:at + 2][::-1]
    blobs = [make_layer(tmp_path, entries) for entries in stack.layers]
    fast, reference, _ = _both_ways(blobs)
    assert fast == reference

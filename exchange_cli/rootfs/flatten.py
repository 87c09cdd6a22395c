"""Flatten image layers into one deterministic tar of the final root filesystem.

Two passes keep memory bounded by the number of entries, never their sizes:

1. index: read every layer's headers (skipping data) and apply the layer semantics of the OCI
   image spec (whiteouts, opaque directories, replacement, hard links) to an in-memory tree that
   records where each final entry's header lives (`tree.RootTree`);
2. emit: walk the tree in canonical order, re-read each entry's header from its layer, write a fresh
   PAX header for it and copy its data in 1 MiB chunks.

The canonical order sorts paths by their components (bytewise), so a parent precedes its children, a
directory's subtree is contiguous, and the first path of a hard-linked inode, which carries the
data, precedes the paths written as links to it. The same layers always give the same bytes.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Protocol, Sequence

from ..image.model import LayerBlob
from ..progress import Task
from .errors import LayerError
from .headers import HeaderError, encode, entry_from_layer, implied_directory
from .index import read_changes
from .layertar import CHUNK, LayerTar
from .tarheader import BLOCK
from .tree import Directory, Inode, Node, RootTree

__all__ = ["FlattenStats", "LayerError", "flatten"]

END_OF_ARCHIVE = bytes(2 * BLOCK)


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class FlattenStats:
    entries: int  # entries written, the root excluded
    file_bytes: int  # bytes of regular-file data
    tar_bytes: int  # size of the whole tar stream


def flatten(layers: Sequence[LayerBlob], sink: Sink | BinaryIO, *, progress_task: Task | None = None) -> FlattenStats:
    """Write the root filesystem of `layers` (bottom first) to `sink` as one uncompressed PAX tar."""
    with ExitStack() as stack:
        tars = [stack.enter_context(LayerTar(blob)) for blob in layers]
        tree = RootTree()
        for index, tar in enumerate(tars):
            tree.apply(index, read_changes(tar))
        return _Emitter(tars, _BlockWriter(sink), progress_task).emit(tree.root)


class _BlockWriter:
    """Coalesces headers and padding into large writes, so a compressing sink gets few big calls."""

    def __init__(self, sink: Sink | BinaryIO) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if len(self.buffer) + len(data) > CHUNK:
            self.flush()
        if len(data) >= CHUNK:
            self.sink.write(data)
        else:
            self.buffer += data

    def pad(self, size: int) -> None:
        if size % BLOCK:
            self.write(bytes(BLOCK - size % BLOCK))

    def flush(self) -> None:
        if self.buffer:
            # A fresh buffer, not clear(): the sink may keep a reference to what it was given.
            data, self.buffer = self.buffer, bytearray()
            self.sink.write(bytes(data))


class _Emitter:
    def __init__(self, tars: list[LayerTar], out: _BlockWriter, progress_task: Task | None) -> None:
        self.tars, self.out = tars, out
        self.advance = progress_task.advance if progress_task is not None else _ignore
        self.first_paths: dict[Inode, str] = {}  # hard-linked inodes already written, by identity
        self.entries = self.file_bytes = 0

    def emit(self, root: Directory) -> FlattenStats:
        for path, node in _canonical_walk(root):
            self._emit_node(path, node)
            self.entries += 1
        self.out.write(END_OF_ARCHIVE)
        self.out.flush()
        return FlattenStats(self.entries, self.file_bytes, self.out.total)

    def _emit_node(self, path: str, node: Node) -> None:
        if isinstance(node, Directory) and node.implied:
            self.out.write(encode(implied_directory(path)))
            return
        tar = self.tars[node.layer]
        source = tar.header_at(node.offset)
        link_to = self.first_paths.get(node) if isinstance(node, Inode) and node.shared else None
        try:
            header = encode(entry_from_layer(source, path, hardlink_to=link_to))
        except HeaderError as error:
            raise tar.error(source.name, str(error)) from None
        self.out.write(header)
        if link_to is not None:
            return
        if isinstance(node, Inode) and node.shared:
            self.first_paths[node] = path
        if not source.isreg():
            return
        tar.copy_data(source, self.out.write, self.advance)
        self.out.pad(source.size)
        self.file_bytes += source.size


def _canonical_walk(root: Directory) -> Iterator[tuple[str, Node]]:
    """Every path under `root` (root excluded), parents first, siblings in bytewise name order.

    Iterative, because a hostile layer can nest directories deeper than Python's recursion limit.
    """
    stack = [("", iter(_sorted_children(root)))]
    while stack:
        prefix, children = stack[-1]
        item = next(children, None)
        if item is None:
            stack.pop()
            continue
        name, node = item
        path = prefix + name
        yield path, node
        if isinstance(node, Directory) and node.children:
            stack.append((path + "/", iter(_sorted_children(node))))


def _sorted_children(directory: Directory) -> list[tuple[str, Node]]:
    return sorted(directory.children.items(), key=_name_key)


def _name_key(item: tuple[str, Node]) -> bytes:
    return item[0].encode("utf-8", "surrogateescape")


def _ignore(amount: int) -> None:
    pass

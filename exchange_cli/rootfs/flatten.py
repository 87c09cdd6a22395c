"""Flatten image layers into one deterministic tar of the final root filesystem.

Two passes keep memory bounded by the number of entries, never their sizes:

1. index: read every layer's headers (skipping data) and apply the layer semantics of the OCI
   image spec (whiteouts, opaque directories, replacement, hard links) to an in-memory tree that
   records where each final entry's header lives (`index.LayerIndex`);
2. emit: walk the tree in canonical order, write a fresh header for each entry (from a template
   when its layer header is a plain ustar block, see `headers.PlainHeaders`) and copy its data.

Output goes into fixed blocks of CHUNK bytes that the sink receives whole and may keep: a byte of
file data is copied once, from the layer (its memory map, or pread for large files) into its block.

The canonical order sorts paths by their components (bytewise), so a parent precedes its children, a
directory's subtree is contiguous, and the first path of a hard-linked inode, which carries the
data, precedes the paths written as links to it. The same layers always give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from ..image.model import LayerBlob
from ..progress import Task
from .errors import LayerError
from .headers import HeaderError, PlainHeaders, encode, entry_from_layer, implied_directory
from .index import LayerIndex
from .layertar import CHUNK, RELEASE_STEP, LayerTar
from .tarheader import BLOCK, DIRTYPE, FIFOTYPE, REGTYPE, SYMTYPE
from .tree import (
    EXTENDED,
    KIND_DIRECTORY,
    KIND_FIFO,
    KIND_MASK,
    KIND_REGULAR,
    KIND_SYMLINK,
    LAYER_MASK,
    LAYER_SHIFT,
    OFFSET_SHIFT,
    Directory,
    Inode,
    Node,
)

__all__ = ["FlattenStats", "LayerError", "flatten"]

END_OF_ARCHIVE = bytes(2 * BLOCK)
# The output type of the kinds a template can write (see PlainHeaders), by `ref & (EXTENDED | KIND_MASK)`;
# None for an extended header or a device, which take the general way, as hard links do.
_TEMPLATE_MASK = EXTENDED | KIND_MASK
_ZEROS = memoryview(bytes(BLOCK))
# Data this large is read into the output block by pread rather than copied from the memory map:
# one system call instead of a page fault every 64 KiB, and no pages to hand back afterwards.
_READ_DIRECTLY = 256 << 10
_TEMPLATE_TYPES: list[bytes | None] = [None] * (_TEMPLATE_MASK + 1)
for _kind, _type in ((KIND_REGULAR, REGTYPE), (KIND_SYMLINK, SYMTYPE), (KIND_FIFO, FIFOTYPE), (KIND_DIRECTORY, DIRTYPE)):
    _TEMPLATE_TYPES[_kind] = _type


class Sink(Protocol):
    def write(self, data: bytearray | memoryview, /) -> object: ...


class Watch(Protocol):
    """Who sees a few regular files' contents (the SBOM's collector), from the pass that writes the stream:
    no second pass over the layers.

    `wants` is asked about each non-directory entry whose name is in `names`, ends with one of
    `suffixes`, or whose directory ends with one of `directory_suffixes` (tested here, without a call:
    most entries are none of these) and that `could_want` (pure: no warning, no count) says yes to: the
    most bytes of that file it takes, 0 for none. `take_span` is told where a file within that lies:
    `size` bytes at `offset` of the layer's tar file, open as `fd` (open, and that file, until
    `all_shown`; the watch reads the bytes, or has them read, so the flattener copies none); `take`
    gets None with the size of a file that is larger. They are called in the stream's
    canonical order, before the stream's first byte is written (_Emitter._show_watched), and then
    `all_shown` once."""

    @property
    def names(self) -> frozenset[str]: ...

    @property
    def suffixes(self) -> tuple[str, ...]: ...

    @property
    def directory_suffixes(self) -> tuple[str, ...]: ...  # each ending in "/"

    def could_want(self, directory: str, name: str, /) -> bool: ...

    def wants(self, directory: str, name: str, /) -> int: ...

    def take(self, path: str, data: bytes | None, size: int, /) -> None: ...

    def take_span(self, path: str, fd: int, offset: int, size: int, /) -> None: ...

    def all_shown(self) -> None: ...


@dataclass(frozen=True)
class FlattenStats:
    entries: int  # entries written, the root excluded
    file_bytes: int  # bytes of regular-file data
    tar_bytes: int  # size of the whole tar stream


def flatten(layers: Sequence[LayerBlob], sink: Sink | BinaryIO, *, progress_task: Task | None = None,
            index: LayerIndex | None = None, watch: Watch | None = None) -> FlattenStats:
    """Write the root filesystem of `layers` (bottom first) to `sink` as one uncompressed PAX tar.

    The sink gets whole blocks of CHUNK bytes (bytearrays), and a shorter last one; it may keep
    them, as nothing writes to a block after handing it over. `index` may hold pass 1 of the first
    layers already (the caller closes it); by default pass 1 starts here. `watch` sees the regular
    files it wants, in canonical order, before the stream is written.
    """
    with ExitStack() as stack:
        if index is None:
            index = stack.enter_context(LayerIndex())
        tars, root = index.complete(layers)
        if progress_task is not None:
            # At most what pass 2 copies (files replaced or deleted by upper layers are not copied);
            # the exact figure once written, so the bar ends at 100% with the tarball.
            progress_task.set_total(sum(tar.data_bytes for tar in tars))
        stats = _Emitter(tars, BlockWriter(sink), progress_task, watch).emit(root)
        if progress_task is not None:
            progress_task.set_total(stats.file_bytes)
        return stats


class BlockWriter:
    """Fills blocks of CHUNK bytes and hands each to the sink once full.

    The blocks come from the sink's `new_block()` when it has one (it recycles what it is done
    with), else fresh: every byte of a block is written before it is handed over, padding included.
    Tar offsets are multiples of BLOCK, and so is CHUNK: a header never straddles two blocks.
    """

    def __init__(self, sink: Sink | BinaryIO) -> None:
        self.sink = sink
        self.new_block: Callable[[], bytearray] = getattr(sink, "new_block", _fresh_block)
        self.block = self.new_block()
        self.view = memoryview(self.block)
        self.position = 0
        self.handed_over = 0

    @property
    def total(self) -> int:
        return self.handed_over + self.position

    def write(self, data: bytes | memoryview) -> None:
        position = self.position
        end = position + len(data)
        if end < CHUNK:
            self.block[position:end] = data
            self.position = end
            return
        view = memoryview(data)
        room = CHUNK - position
        self.block[position:] = view[:room]
        self.hand_over()
        view = view[room:]
        while len(view) >= CHUNK:
            self.block[:] = view[:CHUNK]
            self.hand_over()
            view = view[CHUNK:]
        self.block[:len(view)] = view
        self.position = len(view)

    def read_from(self, fd: int, offset: int, size: int) -> None:
        """`size` bytes of file `fd` from `offset`, read straight into the blocks."""
        while size:
            piece = min(size, CHUNK - self.position)
            got = os.preadv(fd, [self.view[self.position:self.position + piece]], offset)
            if got <= 0:
                raise EOFError(f"the file ends {size} bytes early")
            self.position += got
            offset += got
            size -= got
            if self.position == CHUNK:
                self.hand_over()

    def pad(self, size: int) -> None:
        """Zeros up to the next BLOCK boundary after `size` bytes of data (never past a block's end)."""
        padding = -size % BLOCK
        if padding:
            self.block[self.position:self.position + padding] = _ZEROS[:padding]
            self.position += padding
            if self.position == CHUNK:
                self.hand_over()

    def finish(self) -> None:
        if self.position:
            self.sink.write(self.view[:self.position])
            self.handed_over += self.position
            self.position = 0

    def hand_over(self) -> None:
        # The sink may keep the block: a new one, never this one again (unless the sink returns it).
        self.sink.write(self.block)
        self.handed_over += CHUNK
        self.block = self.new_block()
        self.view = memoryview(self.block)
        self.position = 0


class _Emitter:
    def __init__(self, tars: list[LayerTar], out: BlockWriter, progress_task: Task | None,
                 watch: Watch | None = None) -> None:
        self.tars, self.out, self.watch = tars, out, watch
        self.advance = progress_task.advance if progress_task is not None else _ignore
        self.plain = PlainHeaders()
        self.first_paths: dict[Inode, str] = {}  # hard-linked inodes already written, by identity
        self.entries = self.file_bytes = 0
        self.unreported = 0  # file bytes not yet given to `advance`

    def emit(self, root: Directory) -> FlattenStats:
        if self.watch is not None:
            self._show_watched(root, self.watch)
        # The canonical walk, iterative because a hostile layer can nest directories deeper than
        # Python's recursion limit.
        stack = [("", iter(_sorted_names(root.children)), root.children)]
        while stack:
            prefix, names, children = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            node = children[name]
            path = prefix + name
            self.entries += 1
            if type(node) is Directory:
                if node.implied:
                    self.out.write(encode(implied_directory(path)))
                else:
                    self._emit_ref(path, node.entry)
                if node.children:
                    stack.append((path + "/", iter(_sorted_names(node.children)), node.children))
                continue
            if type(node) is int:
                self._emit_ref(path, node)
            else:  # neither int nor Directory: an Inode (mypy narrows `type(x) is` only where it holds)
                self._emit_inode(path, cast(Inode, node))
        self.out.write(END_OF_ARCHIVE)
        self.out.finish()
        self.advance(self.unreported)
        return FlattenStats(self.entries, self.file_bytes, self.out.total)

    def _emit_ref(self, path: str, ref: int) -> None:
        """The entry whose layer header `ref` points at, written at `path`."""
        output_type = _TEMPLATE_TYPES[ref & _TEMPLATE_MASK]
        if output_type is not None:
            tar = self.tars[ref >> LAYER_SHIFT & LAYER_MASK]
            offset = ref >> OFFSET_SHIFT
            name = path.encode("utf-8", "surrogateescape")
            if output_type is DIRTYPE:
                name += b"/"
            out = self.out
            size = self.plain.encode_into(out.block, out.position, name, tar.buffer[offset:offset + BLOCK], output_type)
            if size >= 0:
                out.position += BLOCK
                if out.position == CHUNK:
                    out.hand_over()
                if size:
                    self._copy_data(tar, offset + BLOCK, size)
                return
        self._emit_general(path, ref, None)

    def _show_watched(self, root: Directory, watch: Watch) -> None:
        """The files the watch may want, shown before the stream is written rather than as it passes them:
        the package databases sit near the end of the canonical order (usr/share/doc/, var/lib/dpkg/), so
        shown in passing they reached the SBOM's process in the export's last tenth, and the export waited
        for their parsing at its end. In canonical order, as the stream has them: the watch sees the same
        files, in the same order, as it did when they were shown in passing. The watch is told where each
        file's bytes lie rather than given them (Watch.take_span): the SBOM's process reads them from the
        layer files itself, so neither the copy nor its way to that process costs the flattener's
        interpreter, and no layer is read a second time (those files' bytes are read once more, as they
        were copied once more before)."""
        names, suffixes, directory_suffixes = watch.names, watch.suffixes, watch.directory_suffixes
        could_want = watch.could_want
        # The cheap test inline (a call per entry would cost more than the test), in the tree's own order,
        # the directory's part once per directory; then the watch's own, before the sort: what the cheap
        # test lets through but no collector reads is neither sorted nor asked about.
        candidates: list[tuple[str, str, int]] = []
        stack = [("", root.children)]
        while stack:
            prefix, children = stack.pop()
            every_file = prefix.endswith(directory_suffixes)
            for name, node in children.items():
                if type(node) is Directory:
                    if node.children:
                        stack.append((prefix + name + "/", node.children))
                elif (every_file or name in names or name.endswith(suffixes)) and could_want(prefix, name):
                    candidates.append((prefix, name, node if type(node) is int else cast(Inode, node).ref))
        candidates.sort(key=_canonical_key)
        for prefix, name, ref in candidates:
            if limit := watch.wants(prefix, name):
                self._show(watch, prefix + name, ref, limit)
        watch.all_shown()

    def _show(self, watch: Watch, path: str, ref: int, limit: int) -> None:
        """Where a regular file's data lies (if at most `limit` bytes, else only its size), to `watch`;
        links hold their target's."""
        if ref & KIND_MASK != KIND_REGULAR:
            return
        tar = self.tars[ref >> LAYER_SHIFT & LAYER_MASK]
        offset, size = tar.data_span_at(ref >> OFFSET_SHIFT)
        if size <= limit:
            watch.take_span(path, tar.fd, offset, size)
        else:
            watch.take(path, None, size)

    def _emit_inode(self, path: str, inode: Inode) -> None:
        link_to = self.first_paths.get(inode) if inode.shared else None
        if link_to is not None:
            self._emit_general(path, inode.ref, link_to)
            return
        if inode.shared:
            self.first_paths[inode] = path
        self._emit_ref(path, inode.ref)

    def _emit_general(self, path: str, ref: int, link_to: str | None) -> None:
        """Any entry, every field decoded: extended headers, devices, hard links, long or non-ASCII names."""
        tar = self.tars[ref >> LAYER_SHIFT & LAYER_MASK]
        source = tar.header_at(ref >> OFFSET_SHIFT)
        try:
            header = encode(entry_from_layer(source, path, hardlink_to=link_to))
        except HeaderError as error:
            raise tar.error(source.name, str(error)) from None
        self.out.write(header)
        if link_to is None and source.isreg() and source.size:
            self._copy_data(tar, source.offset_data, source.size)

    def _copy_data(self, tar: LayerTar, start: int, size: int) -> None:
        out = self.out
        if size >= _READ_DIRECTLY:
            try:
                out.read_from(tar.fd, start, size)
            except EOFError as error:  # not after pass one checked the size: the file cannot change
                raise tar.error(f"<data at byte {start}>", str(error)) from None
        else:
            out.write(tar.view[start:start + size])
        out.pad(size)
        self.file_bytes += size
        self.unreported += size
        if self.unreported >= RELEASE_STEP:
            self.advance(self.unreported)
            self.unreported = 0
            for layer in self.tars:
                layer.release()


def _sorted_names(children: dict[str, Node]) -> list[str]:
    """Names in bytewise order of their UTF-8: code point order, unless a name holds an undecodable byte."""
    names = list(children)
    if "".join(names).isascii():
        names.sort()
    else:
        names.sort(key=_name_key)
    return names


def _name_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _canonical_key(candidate: tuple[str, str, int]) -> tuple[bytes, ...]:
    """A path's place in the canonical order: its components, each compared bytewise (_sorted_names)."""
    prefix, name, _ = candidate
    return (*map(_name_key, prefix.split("/")[:-1]), _name_key(name))


def _fresh_block() -> bytearray:
    return bytearray(CHUNK)


def _ignore(amount: int) -> None:
    pass

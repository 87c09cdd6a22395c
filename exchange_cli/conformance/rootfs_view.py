"""Read-only lookups in an image's final file tree, built from the layers' headers alone.

The tree is the flattener's pass 1 (`rootfs.index` + `rootfs.tree`): nothing is extracted and no
tarball is written. Paths resolve as the kernel resolves them inside the container, following
symlinks with the rootfs as `/`; what stops a resolution (a dangling or escaping link, a loop) is
reported rather than raised, because it is exactly what the checks look for.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from typing import Self

from ..image.model import LayerBlob
from ..rootfs.index import LayerIndex
from ..rootfs.layertar import LayerTar
from ..rootfs.paths import split
from ..rootfs.tarheader import Header
from ..rootfs.tree import KIND_MASK, KIND_SYMLINK, Directory, Node, node_ref, ref_layer, ref_offset

MAX_SYMLINKS = 40  # Linux's limit before ELOOP


class Outcome(str, Enum):
    FOUND = "found"
    MISSING = "missing"  # no symlink involved: the path is simply not there
    DANGLING = "dangling"  # a symlink on the way points at nothing
    ESCAPES = "escapes"  # a symlink on the way climbs above the root with '..'
    LOOP = "loop"
    NOT_A_DIRECTORY = "not-a-directory"  # a component on the way is a file

    @property
    def is_symlink_failure(self) -> bool:
        return self in (Outcome.DANGLING, Outcome.ESCAPES, Outcome.LOOP)


@dataclass(frozen=True)
class Resolution:
    requested: str
    outcome: Outcome
    path: str = ""  # the canonical path reached (FOUND), or the one that is missing
    node: Node | None = None
    links: tuple[str, ...] = ()  # every symlink followed, as "/link -> target"

    @property
    def found(self) -> bool:
        return self.outcome is Outcome.FOUND

    def explain(self) -> str:
        """Why `requested` did not resolve, naming the symlinks on the way."""
        links = f" ({', '.join(self.links)})" if self.links else ""
        reasons = {
            Outcome.MISSING: f"{self.requested} does not exist",
            Outcome.DANGLING: f"{self.requested} is a dangling symlink{links}: {self.path} does not exist",
            Outcome.ESCAPES: f"{self.requested} is a symlink that climbs out of the root filesystem{links}",
            Outcome.LOOP: f"{self.requested} is a symlink loop, more than {MAX_SYMLINKS} links{links}",
            Outcome.NOT_A_DIRECTORY: f"{self.requested}: {self.path} is not a directory{links}",
            Outcome.FOUND: f"{self.requested} resolves to {self.path}{links}",
        }
        return reasons[self.outcome]


class RootfsView:
    """The final tree of `layers` (bottom first); use as a context manager.

    Built by `index` when given (pass 1 of the flattener, which the caller owns and may hand to the
    export afterwards: the layers' headers are read once per run); else by a LayerIndex of its own,
    closed with the view.
    """

    def __init__(self, layers: Sequence[LayerBlob], index: LayerIndex | None = None) -> None:
        self._stack = ExitStack()
        try:
            if index is None:
                index = self._stack.enter_context(LayerIndex())
            tars, self.root = index.complete(layers)
            self.tars: list[LayerTar] = list(tars)
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def header(self, node: Node) -> Header | None:
        """The layer header that made `node`; None for a directory only implied by deeper paths."""
        ref = node_ref(node)
        if ref is None:
            return None
        return self.tars[ref_layer(ref)].header_at(ref_offset(ref))

    def is_executable_file(self, node: Node | None) -> bool:
        header = self.header(node) if node is not None and not isinstance(node, Directory) else None
        return header is not None and header.isreg() and bool(header.mode & 0o111)

    def read_file(self, node: Node, limit: int) -> bytes | None:
        """A regular file's content; None when it is larger than `limit` bytes."""
        header = self.header(node)
        assert header is not None and header.isreg(), "read_file needs a regular file"
        if header.size > limit:
            return None
        tar = self.tars[ref_layer(node_ref(node))]  # type: ignore[arg-type]
        return bytes(tar.view[header.offset_data:header.offset_data + header.size])

    def resolve(self, path: str) -> Resolution:
        """Follow `path` (absolute, inside the rootfs) and every symlink on it, the last one included."""
        pending = split(path.strip("/"))
        names: list[str] = []  # the canonical path so far
        nodes: list[Node] = [self.root]
        links: list[str] = []
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    if links:
                        return Resolution(path, Outcome.ESCAPES, links=tuple(links))
                    continue
                names.pop()
                nodes.pop()
                continue
            parent = nodes[-1]
            here = "/" + "/".join(names + [name])
            if not isinstance(parent, Directory):
                return Resolution(path, Outcome.NOT_A_DIRECTORY, "/" + "/".join(names), links=tuple(links))
            child = parent.children.get(name)
            if child is None:
                outcome = Outcome.DANGLING if links else Outcome.MISSING
                return Resolution(path, outcome, here, links=tuple(links))
            if not isinstance(child, Directory) and node_ref(child) & KIND_MASK == KIND_SYMLINK:  # type: ignore[operator]
                if len(links) >= MAX_SYMLINKS:
                    return Resolution(path, Outcome.LOOP, here, links=tuple(links))
                target = self.header(child).linkname  # type: ignore[union-attr]
                links.append(f"{here} -> {target}")
                if target.startswith("/"):
                    names, nodes = [], [self.root]
                pending = split(target.strip("/")) + pending
                continue
            names.append(name)
            nodes.append(child)
        return Resolution(path, Outcome.FOUND, "/" + "/".join(names), nodes[-1], tuple(links))

"""Generated OCI layer stacks and the reference model of their semantics (the property test of the flattener,
tests/test_flatten_property.py, states both); shared by every test that wants many tricky stacks, such as
the squashfs export's comparison with GNU tar (tests/test_export_squashfs.py).

The generator writes real layer tars (ustar, GNU or PAX) with files, directories, symlinks, fifos, hard
links (within a layer and into lower layers), whiteouts, opaque whiteouts, and replacements of a directory
by a file and back, over a handful of names so that paths collide often."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from exchange_cli.rootfs import index
from exchange_cli.rootfs.tree import OrderMatters
from tests.infra import require_executable
from tests.layers import directory, fifo, file, hardlink, make_layer, opaque, symlink, whiteout

DIR_MODES = (0o755, 0o700, 0o1777, 0o2750)
FILE_MODES = (0o644, 0o600, 0o4755)
FORMATS = (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT)
# mode, uid, gid, mtime, user name, xattrs of a directory no layer has an entry for
IMPLIED_META = (0o755, 0, 0, 0, "", ())
USER_NAMES = ("", "root", "üser")
# Only PAX carries these: extended attributes (a binary capability among them), sub-second times,
# ids past ustar's 7 octal digits.
XATTRS = ((), (("user.note", "hello"),), (("security.capability", "\x01\x00\x00\x02\xff\udcfe"),),
          (("user.a", "1"), ("user.b", "")))
BIG_UID = 3_000_000


# --- the generated layers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One tar entry: kind is dir, file, symlink, fifo, hardlink, whiteout or opaque."""

    kind: str
    path: str
    mode: int = 0o644
    uid: int = 0
    mtime: float = 0
    data: bytes = b""
    target: str = ""  # symlink or hard link target
    uname: str = ""
    xattrs: tuple[tuple[str, str], ...] = ()

    @property
    def meta(self) -> tuple:
        return (0o777 if self.kind == "symlink" else self.mode, self.uid, 0, self.mtime, self.uname, self.xattrs)

    def entry(self, spelling: str, target_spelling: str = ""):
        meta = {"mode": self.mode, "uid": self.uid, "mtime": self.mtime, "uname": self.uname,
                "xattrs": dict(self.xattrs)}
        if self.kind == "dir":
            return directory(spelling, **meta)
        if self.kind == "file":
            return file(spelling, self.data, **meta)
        if self.kind == "symlink":
            return symlink(spelling, self.target, **meta)
        if self.kind == "fifo":
            return fifo(spelling, **meta)
        if self.kind == "hardlink":
            return hardlink(spelling, target_spelling or self.target, **meta)
        if self.kind == "whiteout":
            return whiteout(spelling)
        return opaque(spelling)


DIR_NAMES = ("a", "b", "L" * 100)  # a long name needs a PAX record, a GNU long name or a ustar prefix
LEAF_NAMES = ("a", "b", "x", "é", "\udcff")  # "\udcff": the byte 0xff, a name that is not UTF-8
ALL_PATHS = tuple("/".join(dirs + (leaf,)) for depth in range(3)
                  for dirs in itertools.product(DIR_NAMES, repeat=depth) for leaf in LEAF_NAMES)


@st.composite
def layer_stacks(draw) -> list[tuple[int, list[Op]]]:
    """Layers (bottom first). Generated against a running model, so that most stacks are valid (paths
    under directories, hard links to what exists at that point) and one in ten choices is anything."""
    model: Model | None = Model()
    stamps = itertools.count(1_600_000_000)
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        tar_format = draw(st.sampled_from(FORMATS))
        removals = [draw(removal_ops(model)) for _ in range(draw(st.integers(0, 2)))]
        model = _applied(model, removals, Model.remove_lower)
        model = _applied(model, removals, Model.imply_for_marker)
        entries = []
        for _ in range(draw(st.integers(0, 7))):
            op = draw(entry_ops(model, next(stamps), pax=tar_format == tarfile.PAX_FORMAT))
            model = _applied(model, [op], Model.apply)
            entries.append(op)
        # Where a whiteout sits in the tar does not matter: it acts on the lower layers only.
        slots = sorted(draw(st.lists(st.integers(0, len(entries)), min_size=len(removals), max_size=len(removals))))
        ops = list(entries)
        for offset, (slot, removal) in enumerate(zip(slots, removals, strict=True)):
            ops.insert(slot + offset, removal)
        layers.append((tar_format, ops))
    return layers


def _applied(model: Model | None, ops: list[Op], how) -> Model | None:
    if model is None:
        return None
    try:
        for op in ops:
            how(model, op)
    except Refused:
        return None  # this stack will be refused; later choices need no model
    return model


def valid_paths(model: Model | None) -> list[str]:
    if model is None:
        return list(ALL_PATHS)
    return [path for path in ALL_PATHS if model.can_hold(path)] or list(ALL_PATHS)


@st.composite
def removal_ops(draw, model: Model | None) -> Op:
    kind = draw(st.sampled_from(("whiteout", "whiteout", "opaque")))
    candidates = valid_paths(model) if draw(st.integers(0, 9)) else list(ALL_PATHS)
    if kind == "opaque" and not draw(st.integers(0, 9)):
        return Op(kind, "")  # the root made opaque: every lower layer hidden
    return Op(kind, draw(st.sampled_from(candidates)))


@st.composite
def entry_ops(draw, model: Model | None, stamp: int, *, pax: bool) -> Op:
    op = draw(plain_entry_ops(model, stamp))
    uname = draw(st.sampled_from(USER_NAMES))
    if not pax:
        return dataclasses.replace(op, uname=uname)
    return dataclasses.replace(op, uname=uname, xattrs=draw(st.sampled_from(XATTRS)),
                               mtime=op.mtime + draw(st.sampled_from((0, 0.5, 0.25))),
                               uid=draw(st.sampled_from((op.uid, BIG_UID))))


@st.composite
def plain_entry_ops(draw, model: Model | None, mtime: int) -> Op:
    kind = draw(st.sampled_from(("dir", "dir", "file", "file", "symlink", "fifo", "hardlink", "hardlink")))
    targets = [p for p, node in model.nodes.items() if node[0] == "inode"] if model is not None else []
    if kind == "hardlink" and not targets and draw(st.integers(0, 9)):
        kind = "file"  # mostly: a link to nothing is refused, and one refusal spoils the whole stack
    path = draw(st.sampled_from(valid_paths(model) if draw(st.integers(0, 9)) else list(ALL_PATHS)))
    uid = draw(st.sampled_from((0, 1)))
    if kind == "dir":
        return Op(kind, path, draw(st.sampled_from(DIR_MODES)), uid, mtime)
    if kind == "file":
        return Op(kind, path, draw(st.sampled_from(FILE_MODES)), uid, mtime, data=f"{path}@{mtime}".encode("utf-8", "surrogateescape"))
    if kind == "symlink":
        return Op(kind, path, 0o777, uid, mtime, target=draw(st.sampled_from(("/etc", "../a", "b/c"))))
    if kind == "fifo":
        return Op(kind, path, 0o644, uid, mtime)
    target = draw(st.sampled_from(targets)) if targets and draw(st.integers(0, 9)) else draw(st.sampled_from(ALL_PATHS))
    return Op(kind, path, 0o644, uid, mtime, target=target)


def spell(path: str, kind: str, style: int) -> str:
    """The same path as different tar writers spell it."""
    if kind == "dir" and style == 1:
        return path + "/"
    return {0: path, 1: path, 2: "./" + path, 3: "/" + path}[style]


# --- the reference model ----------------------------------------------------------------------------


class Refused(Exception):
    pass


@dataclass(eq=False)
class Inode:
    kind: str
    meta: tuple  # as IMPLIED_META
    data: bytes = b""
    target: str = ""


@dataclass
class Model:
    """path -> ("dir", meta) or ("inode", Inode); the root is implicit."""

    nodes: dict[str, tuple] = field(default_factory=dict)

    def delete(self, path: str) -> None:
        for existing in [p for p in self.nodes if p == path or p.startswith(path + "/")]:
            del self.nodes[existing]

    def can_hold(self, path: str) -> bool:
        """Whether no parent of `path` is a non-directory."""
        parts = path.split("/")
        return all(self.nodes.get("/".join(parts[:depth]), ("dir",))[0] == "dir" for depth in range(1, len(parts)))

    def make_parents(self, path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            node = self.nodes.get(parent)
            if node is None:
                self.nodes[parent] = ("dir", IMPLIED_META)
            elif node[0] != "dir":
                raise Refused(f"parent {parent} of {path} is not a directory")

    def remove_lower(self, op: Op) -> None:
        """A whiteout or opaque marker acting on what the lower layers made: nothing else exists yet."""
        if op.kind == "opaque":
            node = self.nodes.get(op.path) if op.path else ("dir",)
            if node is not None and node[0] == "dir":
                self.delete(op.path) if op.path else self.nodes.clear()
                if op.path:
                    self.nodes[op.path] = node
            return
        self.delete(op.path)

    def imply_for_marker(self, op: Op) -> None:
        """The directories a marker lives in exist in this layer (Docker creates them)."""
        if not op.path:
            return
        self.make_parents(op.path)
        if op.kind == "opaque" and op.path not in self.nodes:
            self.nodes[op.path] = ("dir", IMPLIED_META)

    def apply(self, op: Op) -> None:
        self.make_parents(op.path)
        meta = op.meta
        if op.kind == "dir":
            if self.nodes.get(op.path, ("",))[0] != "dir":
                self.delete(op.path)
            self.nodes[op.path] = ("dir", meta)
            return
        if op.kind == "hardlink":
            target = self.nodes.get(op.target)
            if target is None or target[0] == "dir":
                raise Refused(f"hard link {op.path} -> {op.target}: no usable target")
            self.delete(op.path)
            self.nodes[op.path] = target
            return
        self.delete(op.path)
        self.nodes[op.path] = ("inode", Inode(op.kind, meta, op.data, op.target))


def model_of(layers: list[tuple[int, list[Op]]]) -> Model:
    model = Model()
    for _, ops in layers:
        markers = [op for op in ops if op.kind in ("whiteout", "opaque")]
        # Markers act on the lower layers only, so not on each other: all removals, then their directories.
        for op in markers:
            model.remove_lower(op)
        for op in markers:
            model.imply_for_marker(op)
        for op in ops:
            if op.kind not in ("whiteout", "opaque"):
                model.apply(op)
    return model


# --- the flattener's output, read back --------------------------------------------------------------


def described(model: Model) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """path -> (kind, meta, data, target) and the groups of paths sharing an inode (two or more)."""
    tree, groups = {}, {}
    for path, node in model.nodes.items():
        if node[0] == "dir":
            tree[path] = ("dir", node[1], b"", "")
        else:
            inode = node[1]
            tree[path] = (inode.kind, inode.meta, inode.data, inode.target)
            groups.setdefault(id(inode), set()).add(path)
    return tree, {frozenset(g) for g in groups.values() if len(g) > 1}


KINDS = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.SYMTYPE: "symlink", tarfile.FIFOTYPE: "fifo"}


def read_output(data: bytes) -> tuple[dict[str, tuple], set[frozenset[str]], list[str]]:
    tree, groups, order = {}, {}, []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as archive:
        for member in archive:
            path = member.name.rstrip("/")
            assert path not in tree, f"{path} is written twice"
            order.append(path)
            if member.islnk():
                assert member.linkname in groups, f"hard link {path} precedes its target {member.linkname}"
                tree[path] = tree[member.linkname]
                groups[member.linkname].add(path)
                continue
            content = archive.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            xattrs = tuple(sorted((key.removeprefix("SCHILY.xattr."), value) for key, value in member.pax_headers.items()
                                  if key.startswith("SCHILY.xattr.")))
            meta = (member.mode, member.uid, member.gid, member.mtime, member.uname, xattrs)
            tree[path] = (KINDS[member.type], meta, content, member.linkname if member.issym() else "")
            groups[path] = {path}
    return tree, {frozenset(g) for g in groups.values() if len(g) > 1}, order


def extracted(data: bytes, into: Path) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """What GNU tar makes of the output on a real filesystem: path -> (kind, mode, uid, data, target)."""
    into.mkdir()
    subprocess.run([require_executable("tar"), "-x", "--numeric-owner", "-p", "-C", str(into)], input=data,
                   check=True, capture_output=True)
    tree, inodes = {}, {}
    for root, dirs, files in os.walk(into):
        for name in dirs + files:
            full = Path(root, name)
            path = str(full.relative_to(into))
            info = os.lstat(full)
            if stat.S_ISDIR(info.st_mode):
                tree[path] = ("dir", stat.S_IMODE(info.st_mode), info.st_uid, b"", "")
                continue
            kind = {stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}[stat.S_IFMT(info.st_mode)]
            tree[path] = (kind, stat.S_IMODE(info.st_mode) if kind != "symlink" else 0o777, info.st_uid,
                          full.read_bytes() if kind == "file" else b"", os.readlink(full) if kind == "symlink" else "")
            inodes.setdefault(info.st_ino, set()).add(path)
    return tree, {frozenset(g) for g in inodes.values() if len(g) > 1}


@contextlib.contextmanager
def only_whiteouts_first():
    """The flattener's exact path for layers whose archive order matters, taken for every layer: it
    must give the same result as the archive-order fast path it stands behind."""
    original = index._apply_in_archive_order

    def refuse(*args: object) -> None:
        raise OrderMatters

    index._apply_in_archive_order = refuse
    try:
        yield
    finally:
        index._apply_in_archive_order = original


def write_layer(directory_path: Path, entries: list, format_: int):
    try:
        return make_layer(directory_path, entries, format=format_)
    except ValueError:  # ustar cannot hold this name: write it as the next writer would
        return make_layer(directory_path, entries, format=tarfile.PAX_FORMAT)


def canonical(path: str) -> list[bytes]:
    return [part.encode("utf-8", "surrogateescape") for part in path.split("/")]


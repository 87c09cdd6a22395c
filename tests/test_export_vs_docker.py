"""Proof against the real thing: our rootfs of an image equals what Docker itself makes of that image.

Each image is built by a real dockerd from a Dockerfile that exercises one part of layer semantics
(deletions, type changes, hard links across layers, special modes and files, long names, symlinks).
Its rootfs, read from the engine, must have the same tree as `docker export` of a container created
from it: the same names, types, modes, owners, contents, link targets, device numbers, modification
times and extended attributes (but for what the engine itself writes when it creates a container, listed
in INJECTED and ENGINE_TOUCHED). Read from a registry (after `docker push`) and from a `docker save` file
it must be the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from tests.layers import file

LONG_A = "a" * 120
LONG_B = "b" * 140
LONG_FILE = "f" * 110
# cap_net_bind_service as security.capability holds it (VFS_CAP_REVISION_2, effective), as setcap writes it.
CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)
OLD = 981_173_106  # 2001-02-03 04:05:06 UTC
IMAGES = {
    "deletions": """
        RUN mkdir -p /srv/a/b /srv/keep && echo 1 > /srv/a/b/f && echo 2 > /srv/a/g && echo k > /srv/keep/k
        RUN rm -rf /srv/a/b && rm /srv/a/g
        RUN echo 3 > /srv/a/h && rm -rf /srv/keep && mkdir /srv/keep && echo again > /srv/keep/new
    """,
    "type-changes": """
        RUN mkdir -p /x/y && echo in > /x/y/z && echo plain > /f && ln -s /x /dirlink
        RUN rm -rf /x && echo now-a-file > /x && rm /f && mkdir -p /f/sub && echo deep > /f/sub/d
        RUN rm /dirlink && mkdir /dirlink && echo real > /dirlink/file
    """,
    "hard-links": """
        RUN echo data > /lower && echo keep > /keep && echo t > /t1 && ln /t1 /t2 && ln /t1 /t4
        RUN ln /lower /upper-link && ln /keep /keep2 && ln /t1 /t3
        RUN rm /lower && rm /t1 && echo appended >> /keep2
    """,
    "modes-and-specials": """
        RUN echo s > /suid && chmod 4755 /suid && mkdir /sgid && chmod 2775 /sgid \\
            && mkdir /sticky && chmod 1777 /sticky && echo o > /odd && chown 12345:54321 /odd \\
            && echo big > /big-ids && chown 3000000:4000000 /big-ids && chmod 0 /big-ids
        RUN mkfifo /fifo && chmod 0640 /fifo && (mknod /devnull c 1 3 && mknod /blk b 7 0 || true)
        RUN chmod 0700 /sticky && chown 1:1 /odd
    """,
    "names-and-symlinks": f"""
        RUN mkdir -p /long/{LONG_A}/{LONG_B} && echo long > /long/{LONG_A}/{LONG_B}/{LONG_FILE} \\
            && echo x > "/sp ace" && echo u > /ünïcødé && mkdir -p /t && echo target > /t/target
        RUN ln -s ../t/target /t/../rel-link && ln -s /t/target /abs-link && ln -s /nowhere /dangling \\
            && ln -s {LONG_A}/{LONG_B}/{LONG_FILE} /long/longlink && ln /long/{LONG_A}/{LONG_B}/{LONG_FILE} /long/hl
        COPY --chown=7:8 random.bin /data/random.bin
        RUN chmod 0604 /data/random.bin && ln -sf /t/target /abs-link
    """,
    # ADD extracts a tar, with its mtimes and its security.capability record, the one xattr Docker
    # carries into layers and `docker export`; a later layer changes a directory's mtime.
    "xattrs-and-times": """
        ADD caps.tar /
        RUN touch -d "2001-02-03 04:05:06" /opt/old && mkdir /opt/dir && touch -d "2001-02-03 04:05:06" /opt/dir
        RUN echo later > /opt/dir/new && touch -d "2001-02-03 04:05:06" /opt/dir/new
    """,
}
# What `docker export` shows that is not in the image: the daemon puts it into every container.
INJECTED = {".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys"}
# Directories whose modification time the engine changes when it creates a container (its init layer),
# so `docker export` cannot show the image's. (The root, where it adds /.dockerenv and the mount points
# /dev, /proc and /sys, is no entry of either tree.)
ENGINE_TOUCHED = {
    "etc": "the engine writes etc/hosts, etc/hostname and etc/resolv.conf (and etc/mtab) into it",
}


@dataclass(frozen=True)
class Node:
    kind: str
    mode: int
    uid: int
    gid: int
    target: str | None = None  # symlinks
    content: str | None = None  # sha256 of a regular file
    device: tuple[int, int] | None = None
    mtime: int = 0  # whole seconds: Docker's layers and `docker export` truncate to them
    xattrs: tuple[tuple[str, str], ...] = ()  # PAX SCHILY.xattr.* records, sorted


@dataclass
class Tree:
    nodes: dict[str, Node]
    hard_link_groups: set[frozenset[str]]

    def without(self, paths: set[str]) -> Tree:
        def dropped(path: str) -> bool:
            return any(path == p or path.startswith(f"{p}/") for p in paths)

        return Tree({p: n for p, n in self.nodes.items() if not dropped(p)},
                    {frozenset(p for p in g if not dropped(p)) for g in self.hard_link_groups} - {frozenset()})


KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}


def read_tree(path: Path) -> Tree:
    """Every entry of a tar (gzip or not) as a Node; hard links become groups of paths sharing an inode."""
    nodes: dict[str, Node] = {}
    groups: dict[str, set[str]] = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or name == ".":
                continue
            if member.islnk():
                target = member.linkname.removeprefix("./").rstrip("/")
                nodes[name] = nodes[target]
                groups.setdefault(target, {target}).add(name)
                continue
            content = None
            if member.isfile():
                content = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            device = (member.devmajor, member.devminor) if member.ischr() or member.isblk() else None
            # A symlink's permission bits mean nothing on Linux (lstat always shows 0777), so a layer
            # tar may say anything there; the comparison is of what a file system can hold.
            mode = 0o777 if member.issym() else member.mode & 0o7777
            xattrs = tuple(sorted((key, value) for key, value in member.pax_headers.items()
                                  if key.startswith(("SCHILY.xattr.", "LIBARCHIVE.xattr."))))
            nodes[name] = Node(KINDS.get(member.type, repr(member.type)), mode, member.uid, member.gid,
                               member.linkname if member.issym() else None, content, device, int(member.mtime), xattrs)
    return Tree(nodes, {frozenset(group) for group in groups.values()})


def caps_tar() -> bytes:
    """A tar for ADD: a file with a capability and an old mtime, in a directory with another mtime."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in (file("opt/capable", b"#!/bin/sh\n", mode=0o755, mtime=1_234_567_890,
                           xattrs={"security.capability": CAPABILITY}),
                      file("opt/plain", b"plain\n", mtime=1_300_000_000)):
            archive.addfile(entry.info, io.BytesIO(entry.data or b""))
    return out.getvalue()


def docker_tree(export_tar: Path, ours: Tree) -> Tree:
    tree = read_tree(export_tar)
    injected = set(INJECTED)
    if "etc/mtab" not in ours.nodes:
        injected.add("etc/mtab")
    return tree.without(injected)


def random_bytes(size: int, seed: int) -> bytes:
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


@pytest.fixture(scope="module")
def vs_docker_images(dockerd) -> dict[str, str]:
    files = {"random.bin": random_bytes(300_000, seed=1), "caps.tar": caps_tar()}
    tags = {}
    for name, steps in IMAGES.items():
        dockerfile = "FROM busybox-local:1\n" + "\n".join(line.strip() for line in steps.strip().splitlines())
        tags[name] = f"vs-docker/{name}:1"
        dockerd.build(dockerfile, tags[name], files)
    return tags


def export(image: str, output: Path, *, source: str, cache_dir: Path, insecure: tuple[str, ...] = ()) -> str:
    result = export_rootfs(image, output, options=ExportOptions(source=source, insecure_registries=insecure,
                                                                cache=BlobCache(cache_dir)))
    return result.sha384


def comparable(path: str, node: Node) -> Node:
    return dataclasses.replace(node, mtime=0) if path in ENGINE_TOUCHED else node


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_rootfs_tree_equals_docker_export(name: str, vs_docker_images: dict[str, str], dockerd, docker_host: str,
                                         tmp_path: Path) -> None:
    ours_path = tmp_path / "rootfs.tgz"
    export(vs_docker_images[name], ours_path, source="docker", cache_dir=tmp_path / "cache")
    ours = read_tree(ours_path)
    theirs = docker_tree(dockerd.export_container_fs(vs_docker_images[name], tmp_path / "export.tar"), ours)
    only_ours = sorted(set(ours.nodes) - set(theirs.nodes))
    only_theirs = sorted(set(theirs.nodes) - set(ours.nodes))
    assert (only_ours, only_theirs) == ([], [])
    differing = {p: (ours.nodes[p], theirs.nodes[p]) for p in ours.nodes
                 if comparable(p, ours.nodes[p]) != comparable(p, theirs.nodes[p])}
    assert differing == {}
    assert ours.hard_link_groups == theirs.hard_link_groups


def test_scenarios_exercise_what_they_claim(vs_docker_images: dict[str, str], docker_host: str, tmp_path: Path) -> None:
    """Guards the comparison above against vacuous images: the tricky entries really are there."""
    trees = {}
    for name in ("hard-links", "modes-and-specials", "names-and-symlinks", "xattrs-and-times"):
        export(vs_docker_images[name], tmp_path / f"{name}.tgz", source="docker", cache_dir=tmp_path / "cache")
        trees[name] = read_tree(tmp_path / f"{name}.tgz")
    links = trees["hard-links"]
    assert frozenset({"t2", "t4"}) in links.hard_link_groups  # the group outlives its first member
    assert "lower" not in links.nodes and links.nodes["upper-link"].content == hashlib.sha256(b"data\n").hexdigest()
    specials = trees["modes-and-specials"].nodes
    assert (specials["suid"].mode, specials["sgid"].mode, specials["sticky"].mode) == (0o4755, 0o2775, 0o700)
    assert (specials["big-ids"].uid, specials["big-ids"].gid) == (3000000, 4000000)
    assert specials["fifo"].kind == "fifo"
    assert (specials["devnull"].device, specials["blk"].kind) == ((1, 3), "block")  # mknod is permitted as root
    names = trees["names-and-symlinks"].nodes
    long_path = f"long/{LONG_A}/{LONG_B}/{LONG_FILE}"
    assert len(long_path) > 255 and names[long_path].kind == "file"
    assert names["rel-link"].target == "../t/target" and names["abs-link"].target == "/t/target"
    assert (names["data/random.bin"].uid, names["data/random.bin"].mode) == (7, 0o604)
    added = trees["xattrs-and-times"].nodes
    assert dict(added["opt/capable"].xattrs)["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAPABILITY
    assert (added["opt/capable"].mtime, added["opt/plain"].mtime) == (1_234_567_890, 1_300_000_000)
    assert (added["opt/old"].mtime, added["opt/dir/new"].mtime) == (OLD, OLD)
    assert added["opt/dir"].mtime > OLD, "a later layer's new file moved the directory's mtime"


def test_registry_engine_and_archive_give_the_same_bytes(vs_docker_images: dict[str, str], dockerd, docker_host: str,
                                                         registry, tmp_path: Path) -> None:
    for name, local_tag in vs_docker_images.items():
        remote = f"{registry.host}/{local_tag}"
        dockerd.client.images.get(local_tag).tag(remote)
        pushed_digest = dockerd.push(remote)
        outputs = {
            "engine": export(local_tag, tmp_path / f"{name}-engine.tgz", source="docker", cache_dir=tmp_path / "c1"),
            "engine again": export(local_tag, tmp_path / f"{name}-engine2.tgz", source="docker",
                                   cache_dir=tmp_path / "c1"),
            "registry": export(remote, tmp_path / f"{name}-registry.tgz", source="registry", cache_dir=tmp_path / "c2",
                               insecure=(registry.host,)),
            "auto (pushed: registry)": export(remote, tmp_path / f"{name}-auto.tgz", source="auto",
                                              cache_dir=tmp_path / "c3", insecure=(registry.host,)),
            "docker save": export(f"docker-archive:{dockerd.save(local_tag, tmp_path / f'{name}.tar')}",
                                  tmp_path / f"{name}-archive.tgz", source="auto", cache_dir=tmp_path / "c4"),
        }
        assert len(set(outputs.values())) == 1, (name, outputs)
        contents = {(tmp_path / f"{name}-{kind}.tgz").read_bytes() for kind in ("engine", "engine2", "registry",
                                                                                  "auto", "archive")}
        assert len(contents) == 1, name
        result = export_rootfs(remote, tmp_path / f"{name}-pinned.tgz", options=ExportOptions(
            source="registry", insecure_registries=(registry.host,), cache=BlobCache(tmp_path / "c2")))
        assert result.image.manifest_digest == pushed_digest

"""The squashfs artifact (`export --artifact squashfs`), judged by tools that share no code with its writer.

tar2sqfs (squashfs-tools-ng) writes the image from the flattened tar stream; `unsquashfs` (Debian's
squashfs-tools, another implementation) extracts it, and GNU tar extracts the tarball exported from
the same image in the same run: the two trees must be equal in paths, types, modes, owners, whole-second
mtimes (squashfs keeps no fractions), link targets, device numbers, hard-link groups, xattrs and bytes.
Both extractions run as root, so owners and trusted.* xattrs are kept.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchange_cli.export import ExportOptions, SquashfsRequest, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from exchange_cli.rootfs import squashfs
from exchange_cli.rootfs.errors import LayerError
from exchange_cli.rootfs.squashfs import SquashfsError, SquashfsSink, find_tar2sqfs
from exchange_cli.rootfs.tarball import write_rootfs
from exchange_cli.testgates import GATES_ENV
from tests.infra import missing_component, require_executable
from tests.infra.commands import exchange_here
from tests.infra.image_files import OciLayout
from tests.infra.layer_stacks import layer_stacks, spell, write_layer
from tests.layers import (
    Entry,
    blockdev,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    opaque,
    symlink,
    whiteout,
    write_layer_tar,
    zeros,
)


@pytest.fixture(autouse=True)
def tools() -> None:
    require_executable("tar2sqfs")
    require_executable("unsquashfs")
    require_executable("tar")
    if os.geteuid() != 0:
        missing_component("root, to extract owners, devices and trusted.* xattrs as they are")


def layer_bytes(tmp_path: Path, entries: list[Entry]) -> bytes:
    path = tmp_path / f"layer-{len(list(tmp_path.glob('layer-*.tar')))}.tar"
    return write_layer_tar(path, entries).read_bytes()


# Each stack: layers bottom first. Together they cover the layer semantics the flattener applies.
def everything_once() -> list[list[Entry]]:
    return [[
        directory("etc", uid=7, gid=8, mode=0o750, mtime=1_500_000_000),
        file("etc/passwd", b"root:x:0:0\n", xattrs={"user.origin": "base", "trusted.mark": b"\x00\x01\xff"}),
        file("etc/shadow", b"secret\n", mode=0o600, uid=0, gid=42),
        hardlink("etc/passwd-", "etc/passwd"),
        symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        symlink("dangling", "nowhere/at/all"),
        fifo("run/initctl", mode=0o600),
        chardev("dev/null", 1, 3),
        blockdev("dev/loop0", 7, 0),
        file("bin/tool", b"\x7fELF" + bytes(range(256)) * 100, mode=0o4755),
        file("sticky/tmp-file", b"t"),
        directory("sticky", mode=0o1777),
        file("odd/tab\there", b"tab"),
        file("odd/new\nline", b"newline"),
        file("odd/ünïcödé ✓", b"utf-8"),
        file("odd/" + "long-" * 40, b"long name"),
        file("odd/fraction", b"f", mtime=1_234_567_890.75),
        file("empty", b""),
        zeros("big/zeros", 3 * squashfs.BLOCK_SIZE + 17),  # whole blocks and a tail: the pinned block size
        file("big/exact-block", b"b" * squashfs.BLOCK_SIZE),
        file("big/random", hashlib.sha512(b"seed").digest() * 5000),
    ]]


def whiteouts_and_links() -> list[list[Entry]]:
    return [
        [directory("usr"), directory("usr/lib"), file("usr/lib/a.so", b"A" * 5000, xattrs={"user.v": "1"}),
         file("usr/lib/b.so", b"B"), directory("opt/app"), file("opt/app/old", b"old"), file("opt/app/keep", b"k"),
         file("var/log/x", b"x"), file("gone/file", b"gone"), file("srv/data", b"lower data")],
        [whiteout("usr/lib/b.so"), opaque("opt/app"), file("opt/app/new", b"new"),
         hardlink("usr/lib/a-link.so", "usr/lib/a.so"), whiteout("gone"),
         directory("var/log", mode=0o700, uid=5), hardlink("srv/data-link", "srv/data")],
        [file("usr/lib/a.so", b"replaced", xattrs={"user.v": "2"}), symlink("var/log/x", "../../usr/lib/a.so"),
         directory("gone"), file("gone/again", b"back")],
    ]


def replacements() -> list[list[Entry]]:
    return [
        [file("x", b"file"), directory("d"), file("d/inner", b"i"), symlink("s", "x"), fifo("p"),
         file("h1", b"shared"), hardlink("h2", "h1"), hardlink("h3", "h1")],
        [directory("x"), file("x/now-a-dir", b"!"), whiteout("d"), file("d", b"now a file"),
         file("s", b"was a link"), whiteout("h2"), directory("p")],
    ]


STACKS = {"everything-once": everything_once, "whiteouts-and-links": whiteouts_and_links,
          "replacements": replacements}


def image_of(tmp_path: Path, stack: list[list[Entry]], tag: str = "img") -> str:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([layer_bytes(tmp_path, entries) for entries in stack]), tag=tag)
    return f"oci:{layout.root}:{tag}"


def export_both(image: str, out: Path, cache: Path) -> tuple[Path, Path, object]:
    out.mkdir(parents=True, exist_ok=True)
    result = export_rootfs(image, out / "rootfs.tgz", options=ExportOptions(cache=BlobCache(cache)),
                           squashfs=SquashfsRequest(out / "rootfs.sqfs", find_tar2sqfs()))
    return out / "rootfs.tgz", out / "rootfs.sqfs", result


def tree_of(root: Path) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """Everything the two formats must agree on, read from an extracted tree (its root excluded)."""
    tree: dict[str, tuple] = {}
    inodes: dict[int, set[str]] = {}
    for directory_path, directories, files in os.walk(root):
        for name in directories + files:
            full = Path(directory_path, name)
            path = str(full.relative_to(root))
            info = os.lstat(full)
            kind = stat.S_IFMT(info.st_mode)
            xattrs = tuple(sorted((key, os.getxattr(full, key, follow_symlinks=False))
                                  for key in os.listxattr(full, follow_symlinks=False)))
            content = hashlib.sha256(full.read_bytes()).hexdigest() if kind == stat.S_IFREG else ""
            target = os.readlink(full) if kind == stat.S_IFLNK else ""
            device = info.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
            tree[path] = (kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, int(info.st_mtime), target,
                          device, xattrs, content)
            if kind != stat.S_IFDIR:
                inodes.setdefault(info.st_ino, set()).add(path)
    return tree, {frozenset(group) for group in inodes.values() if len(group) > 1}


def extract_tarball(tarball: Path, into: Path) -> Path:
    into.mkdir()
    subprocess.run([require_executable("tar"), "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf",
                    str(tarball), "-C", str(into)], check=True, capture_output=True)
    return into


def extract_squashfs(image: Path, into: Path, *, like_tar: bool = False) -> Path:
    """`like_tar`: go on past an xattr the kernel will not set (a malformed security.capability), as GNU
    tar does with a warning; both trees then lack it. The hand-written stacks hold only settable ones."""
    lenient = ["-ignore-errors", "-no-exit-code"] if like_tar else []
    subprocess.run([require_executable("unsquashfs"), "-no-progress", *lenient, "-d", str(into), str(image)],
                   check=True, capture_output=True)
    return into


@pytest.mark.parametrize("name", sorted(STACKS))
def test_unsquashfs_extracts_what_gnu_tar_extracts_from_the_tarball(tmp_path: Path, name: str) -> None:
    tarball, image, _ = export_both(image_of(tmp_path, STACKS[name]()), tmp_path / "out", tmp_path / "cache")
    from_tar = tree_of(extract_tarball(tarball, tmp_path / "tar"))
    from_squashfs = tree_of(extract_squashfs(image, tmp_path / "sqfs"))
    assert from_squashfs[0] == from_tar[0]
    assert from_squashfs[1] == from_tar[1]
    assert from_tar[0], "the stack has content"


def test_the_judge_sees_every_kind_of_entry(tmp_path: Path) -> None:
    """The comparison above means something: the image holds what the stack put in it."""
    _, image, _ = export_both(image_of(tmp_path, everything_once()), tmp_path / "out", tmp_path / "cache")
    tree, groups = tree_of(extract_squashfs(image, tmp_path / "sqfs"))
    assert stat.S_ISCHR(tree["dev/null"][0]) and tree["dev/null"][6] == os.makedev(1, 3)
    assert stat.S_ISBLK(tree["dev/loop0"][0]) and stat.S_ISFIFO(tree["run/initctl"][0])
    assert tree["etc"][1:5] == (0o750, 7, 8, 1_500_000_000)
    assert tree["bin/tool"][1] == 0o4755 and tree["sticky"][1] == 0o1777
    assert dict(tree["etc/passwd"][7]) == {"user.origin": b"base", "trusted.mark": b"\x00\x01\xff"}
    assert tree["etc/localtime"][5] == "/usr/share/zoneinfo/UTC"
    assert tree["odd/fraction"][4] == 1_234_567_890
    assert frozenset({"etc/passwd", "etc/passwd-"}) in groups
    assert {"odd/tab\there", "odd/new\nline", "odd/ünïcödé ✓", "odd/" + "long-" * 40} <= set(tree)


def test_whiteouts_and_hard_links_into_lower_layers_reach_the_image(tmp_path: Path) -> None:
    _, image, _ = export_both(image_of(tmp_path, whiteouts_and_links()), tmp_path / "out", tmp_path / "cache")
    tree, groups = tree_of(extract_squashfs(image, tmp_path / "sqfs"))
    assert "usr/lib/b.so" not in tree and "opt/app/old" not in tree and "opt/app/keep" not in tree
    assert "gone/file" not in tree and "gone/again" in tree
    assert frozenset({"srv/data", "srv/data-link"}) in groups
    # a.so replaced above its link: the link keeps the old inode
    assert not any("usr/lib/a.so" in group for group in groups)
    assert tree["usr/lib/a-link.so"][8] == hashlib.sha256(b"A" * 5000).hexdigest()
    assert tree["usr/lib/a.so"][8] == hashlib.sha256(b"replaced").hexdigest()
    assert dict(tree["usr/lib/a.so"][7]) == {"user.v": b"2"}


def sha384(path: Path) -> str:
    return hashlib.sha384(path.read_bytes()).hexdigest()


def test_the_image_is_byte_identical_across_runs_times_job_counts_and_caches(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    image = image_of(tmp_path, whiteouts_and_links())
    _, cold, result = export_both(image, tmp_path / "cold", tmp_path / "cache")
    digests = {sha384(cold)}
    assert result.squashfs is not None and result.squashfs.sha384 == sha384(cold)  # type: ignore[attr-defined]
    assert result.squashfs.size == cold.stat().st_size  # type: ignore[attr-defined]
    time.sleep(1.1)  # a writer stamping the time would now write other bytes
    for jobs in (1, 2, 4):
        monkeypatch.setattr(squashfs, "JOBS", jobs)
        _, warm, _ = export_both(image, tmp_path / f"warm-{jobs}", tmp_path / "cache")
        digests.add(sha384(warm))
    _, other_cache, _ = export_both(image, tmp_path / "other", tmp_path / "cache-2")
    digests.add(sha384(other_cache))
    assert len(digests) == 1


def test_the_squashfs_does_not_change_the_tarball(tmp_path: Path) -> None:
    image = image_of(tmp_path, everything_once())
    tarball, _, _ = export_both(image, tmp_path / "both", tmp_path / "cache")
    alone = export_rootfs(image, tmp_path / "alone.tgz", options=ExportOptions(cache=BlobCache(tmp_path / "cache")))
    assert alone.sha384 == sha384(tarball)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return exchange_here("export", *args, env=env)


def test_the_command_writes_one_artifact_or_both_and_reports_the_tool(tmp_path: Path) -> None:
    image = image_of(tmp_path, replacements())
    alone = run_cli(image, "--artifact", "squashfs", "-o", str(tmp_path / "only.sqfs"), "--cache-dir",
                    str(tmp_path / "cache"), "--format", "json")
    assert alone.returncode == 0, alone.stderr
    report = json.loads(alone.stdout)
    assert report["output"] is None and report["squashfs"]["sha384"] == "sha384:" + sha384(tmp_path / "only.sqfs")
    assert report["squashfs"]["tool"] == f"tar2sqfs (squashfs-tools-ng) {find_tar2sqfs().version}"
    assert report["squashfs"]["settings"] == squashfs.SETTINGS
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("only")) == ["only.sqfs"]
    both = run_cli(image, "--artifact", "tarball,squashfs", "--output-dir", str(tmp_path / "both"), "--cache-dir",
                   str(tmp_path / "cache"))
    assert both.returncode == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["rootfs.sqfs", "rootfs.tgz"]
    assert sha384(tmp_path / "both" / "rootfs.sqfs") == sha384(tmp_path / "only.sqfs")
    assert "made by: tar2sqfs (squashfs-tools-ng)" in both.stdout
    default = run_cli(image, "-o", str(tmp_path / "default.tgz"), "--cache-dir", str(tmp_path / "cache"))
    assert default.returncode == 0 and sha384(tmp_path / "default.tgz") == sha384(tmp_path / "both" / "rootfs.tgz")


@pytest.mark.parametrize(("args", "message"), [
    (["--artifact", "tarball,squashfs", "-o", "x"], "more than one file needs --output-dir"),
    (["--artifact", "squashfs,zip", "-o", "x"], "zip is not one of tarball, squashfs"),
    (["--artifact", "squashfs"], "give -o FILE"),
    (["--artifact", "squashfs", "-o", "x", "--sbom", "s.json"], "the SBOM describes the tarball"),
])
def test_the_command_refuses_unclear_requests_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    refused = run_cli("oci:nowhere:x", *args)
    assert refused.returncode == 2 and message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def fake_tar2sqfs(directory_path: Path, version: str) -> dict[str, str]:
    directory_path.mkdir()
    script = directory_path / "tar2sqfs"
    script.write_text(f"#!/bin/sh\necho 'tar2sqfs (squashfs-tools-ng) {version}'\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{directory_path}:{os.environ['PATH']}"}


def test_an_untested_tar2sqfs_is_refused_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer of another version may write other bytes for the same tree: the sha384 would move."""
    env = fake_tar2sqfs(tmp_path / "bin", "9.9.9")
    refused = run_cli("oci:nowhere:x", "--artifact", "squashfs", "-o", str(tmp_path / "x.sqfs"), env=env)
    assert refused.returncode != 0 and "squashfs-tools-ng 9.9.9, not a tested version" in refused.stderr
    assert "--allow-untested-squashfs-tools" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("PATH", env["PATH"])
    assert find_tar2sqfs(allow_untested=True).version == "9.9.9"
    with pytest.raises(SquashfsError, match="not a tested version"):
        find_tar2sqfs()


def test_a_failing_tar2sqfs_leaves_no_file(tmp_path: Path) -> None:
    """An xattr squashfs cannot hold (no such namespace) is refused by tar2sqfs --no-skip, never dropped."""
    image = image_of(tmp_path, [[file("f", b"x", xattrs={"unknown.namespace": "v"})]])
    failed = run_cli(image, "--artifact", "tarball,squashfs", "--output-dir", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache"))
    assert failed.returncode != 0 and "tar2sqfs could not make the squashfs image" in failed.stderr, failed.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_kills_tar2sqfs_and_leaves_no_file(tmp_path: Path, signum: int) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "squashfs.armed").touch()
    image = image_of(tmp_path, whiteouts_and_links())
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "exchange_cli", "export", image, "--artifact", "tarball,squashfs",
                            "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache")],
                           env={**os.environ, GATES_ENV: str(gates)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (gates / "squashfs.reached").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    writers = [int(pid) for pid in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()]
    assert [Path(f"/proc/{pid}/comm").read_text().strip() for pid in writers] == ["tar2sqfs"]
    assert [p.name for p in out.iterdir() if ".tmp-" in p.name], "the image is begun beside its name"
    run.send_signal(signum)
    run.communicate(timeout=60)
    assert run.returncode != 0
    for pid in writers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert list(out.iterdir()) == []


# --- over the flattener's property-test stacks ---------------------------------------------------------


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(layers=layer_stacks(), spelling=st.lists(st.integers(0, 3), min_size=64, max_size=64))
def test_over_generated_stacks_unsquashfs_and_gnu_tar_agree(layers, spelling) -> None:
    """Stacks of whiteouts, opaque markers, replacements, hard links, PAX/GNU/ustar spellings, non-UTF-8
    names: whatever the flattener accepts, both formats extract to the same tree."""
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        spellings = itertools.cycle(spelling)
        blobs = [write_layer(scratch, [op.entry(spell(op.path, op.kind, next(spellings)),
                                                spell(op.target, "", next(spellings))) for op in ops], format_)
                 for format_, ops in layers]
        tarball = io.BytesIO()
        sink = SquashfsSink(find_tar2sqfs(), str(scratch / "rootfs.sqfs"))
        try:
            write_rootfs(blobs, tarball, squashfs=sink)
        except LayerError:
            event("refused by the flattener")
            return
        (scratch / "rootfs.tgz").write_bytes(tarball.getvalue())
        from_tar = tree_of(extract_tarball(scratch / "rootfs.tgz", scratch / "tar"))
        from_squashfs = tree_of(extract_squashfs(scratch / "rootfs.sqfs", scratch / "sqfs", like_tar=True))
        event(f"{min(len(from_tar[0]), 9)}+ paths, {len(from_tar[1])} hard-link groups")
        assert from_squashfs == from_tar


def test_the_image_made_again_from_the_published_tarball_has_the_same_bytes(tmp_path: Path) -> None:
    """What process's confirm stage relies on to put back a deleted image: the tarball's gzip holds the
    very tar stream the image was written from."""
    tarball, image, _ = export_both(image_of(tmp_path, everything_once()), tmp_path / "out", tmp_path / "cache")
    with tarball.open("rb") as stream:
        remade = squashfs.squashfs_of_tarball(stream, find_tar2sqfs(), tmp_path / "remade.sqfs")
    assert remade.sha384 == sha384(image) == sha384(tmp_path / "remade.sqfs")
    assert remade.tarball_sha384 == sha384(tarball) and remade.size == image.stat().st_size
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(tarball.read_bytes()[:-20])
    with truncated.open("rb") as stream, pytest.raises(SquashfsError):
        squashfs.squashfs_of_tarball(stream, find_tar2sqfs(), tmp_path / "never.sqfs")

"""The rootfs flattener and the deterministic gzip writer, on hand-crafted layer tars (no Docker)."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import stat
import struct
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from exchange_cli.errors import ExchangeError
from exchange_cli.image.model import LayerBlob
from exchange_cli.rootfs.flatten import FlattenStats, LayerError, flatten
from exchange_cli.rootfs.tarball import RootfsDigest, write_rootfs
from tests.infra import require_executable
from tests.layers import (
    blockdev,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    make_layer,
    opaque,
    raw,
    symlink,
    whiteout,
    zeros,
)

# --- helpers -------------------------------------------------------------------------------------

def flatten_bytes(layers: list[LayerBlob]) -> bytes:
    out = io.BytesIO()
    flatten(layers, out)
    return out.getvalue()


def open_tar(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape")


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with open_tar(data) as tar:
        return {member.name: member for member in tar.getmembers()}


def names(data: bytes) -> list[str]:
    with open_tar(data) as tar:
        return tar.getnames()


def content(data: bytes, name: str) -> bytes:
    with open_tar(data) as tar:
        member = tar.getmember(name)
        assert member.isreg(), f"{name} is not a regular file"
        return tar.extractfile(member).read()  # type: ignore[union-attr]


@pytest.fixture
def layer(tmp_path: Path):
    def make(*entries, **options) -> LayerBlob:
        return make_layer(tmp_path, entries, **options)
    return make


# --- whiteouts and replacement -------------------------------------------------------------------

def test_whiteout_deletes_a_lower_file_and_a_lower_subtree(layer):
    lower = layer(file("etc/motd", b"hi"), file("etc/keep", b"k"), file("var/cache/a/b", b"x"))
    upper = layer(whiteout("etc/motd"), whiteout("var/cache"))
    tree = members(flatten_bytes([lower, upper]))
    assert sorted(tree) == ["etc", "etc/keep", "var"]
    assert not any(".wh." in name for name in tree)


@pytest.mark.parametrize("marker_first", [True, False], ids=["marker-before-entries", "marker-after-entries"])
def test_opaque_directory_hides_lower_children_but_keeps_its_own_layers(layer, marker_first):
    lower = layer(directory("app"), file("app/old", b"old"), file("app/sub/deep", b"d"), file("other", b"o"))
    own = [directory("app", mode=0o700), file("app/new", b"new"), file("app/sub/fresh", b"f")]
    upper = layer(*([opaque("app")] + own if marker_first else own + [opaque("app")]))
    data = flatten_bytes([lower, upper])
    assert sorted(members(data)) == ["app", "app/new", "app/sub", "app/sub/fresh", "other"]
    assert members(data)["app"].mode == 0o700
    assert content(data, "app/new") == b"new"


def test_opaque_marker_alone_makes_an_empty_directory(layer):
    lower = layer(file("cache/a", b"a"))
    assert sorted(members(flatten_bytes([lower, layer(opaque("cache"))]))) == ["cache"]


def test_opaque_over_a_lower_file_lets_the_layer_replace_it_with_a_directory(layer):
    lower = layer(file("x", b"file"))
    upper = layer(opaque("x"), directory("x"), file("x/y", b"y"))
    tree = members(flatten_bytes([lower, upper]))
    assert tree["x"].isdir() and content(flatten_bytes([lower, upper]), "x/y") == b"y"


def test_whiteout_applies_only_to_lower_layers(layer):
    """OCI: a file and its whiteout in the same layer leave the file; the whiteout's place in the tar is irrelevant."""
    lower = layer(file("a", b"lower"))
    upper = layer(file("a", b"upper"), whiteout("a"))
    assert content(flatten_bytes([lower, upper]), "a") == b"upper"


@pytest.mark.parametrize("reverse", [False, True], ids=["as-written", "reversed"])
@pytest.mark.parametrize("lower_entries, markers, expected", [
    # a whiteout inside "a" implies the directory; a whiteout of "a" acts on the lower layer only
    ([file("keep", b"k")], [whiteout("a/a"), whiteout("a")], ["a", "keep"]),
    # an opaque "b" hides lower children of b, not the directory b/a this layer's own whiteout implies
    ([], [whiteout("b/a/a"), opaque("b")], ["b", "b/a"]),
    # the lower file "b" is whited out, so the whiteout inside "b" writes through a directory, not it
    ([file("b", b"file")], [whiteout("b"), whiteout("b/x")], ["b"]),
    # the lower "a" and its children are gone, and an opaque marker's own directory is this layer's
    ([directory("a"), file("a/x", b"x")], [opaque("a"), whiteout("a")], ["a"]),
])
def test_markers_in_one_layer_do_not_act_on_each_other(layer, lower_entries, markers, expected, reverse):
    """Found by the property test: whiteouts apply to lower layers only, so their order never matters."""
    lower = layer(file("base", b"base"), *lower_entries)
    upper = layer(*(reversed(markers) if reverse else markers))
    tree = members(flatten_bytes([lower, upper]))
    assert sorted(tree) == sorted(["base", *expected])
    assert all(tree[name].isdir() for name in expected if name != "keep")


def test_a_file_replacing_a_directory_removes_its_subtree(layer):
    lower = layer(directory("d"), file("d/x", b"x"), file("d/e/y", b"y"))
    upper = layer(file("d", b"now a file"))
    data = flatten_bytes([lower, upper])
    assert sorted(members(data)) == ["d"] and content(data, "d") == b"now a file"


def test_a_directory_replacing_a_file_or_symlink(layer):
    lower = layer(file("d", b"file"), symlink("s", "/etc"))
    upper = layer(directory("d", mode=0o750), directory("s"), file("s/inside", b"i"))
    tree = members(flatten_bytes([lower, upper]))
    assert tree["d"].isdir() and tree["d"].mode == 0o750
    assert tree["s"].isdir() and tree["s/inside"].isreg()


def test_an_entry_under_a_symlink_before_the_directory_replacing_it_is_rejected(layer):
    """Tar order matters: at "s/inside", "s" is still the lower layer's symlink."""
    lower = layer(symlink("s", "/etc"))
    with pytest.raises(LayerError, match="parent 's' is a symlink"):
        flatten_bytes([lower, layer(file("s/inside", b"i"), directory("s"))])


def test_a_directory_over_a_directory_merges_with_the_upper_metadata(layer):
    lower = layer(directory("d", mode=0o755, uid=1), file("d/lower", b"l"))
    upper = layer(directory("d", mode=0o700, uid=2, mtime=1_700_000_000), file("d/upper", b"u"))
    tree = members(flatten_bytes([lower, upper]))
    assert sorted(tree) == ["d", "d/lower", "d/upper"]
    assert (tree["d"].mode, tree["d"].uid, tree["d"].mtime) == (0o700, 2, 1_700_000_000)


def test_a_later_entry_in_the_same_layer_overrides_an_earlier_one(layer):
    data = flatten_bytes([layer(file("f", b"first", mode=0o600), file("f", b"second", mode=0o640))])
    assert content(data, "f") == b"second" and members(data)["f"].mode == 0o640


# --- hard links ----------------------------------------------------------------------------------

def test_hard_link_within_a_layer_is_written_once_with_data(layer):
    data = flatten_bytes([layer(file("z/original", b"shared", mode=0o4755, uid=7), hardlink("a/link", "z/original"))])
    tree = members(data)
    # "a/link" comes first in canonical order, so it carries the data and the inode's metadata.
    assert tree["a/link"].isreg() and content(data, "a/link") == b"shared"
    assert (tree["a/link"].mode, tree["a/link"].uid) == (0o4755, 7)
    assert tree["z/original"].islnk() and tree["z/original"].linkname == "a/link"


def test_hard_link_in_an_upper_layer_to_a_lower_target(layer):
    lower = layer(file("bin/busybox", b"BB"))
    upper = layer(hardlink("bin/sh", "/bin/busybox"))
    data = flatten_bytes([lower, upper])
    tree = members(data)
    assert content(data, "bin/busybox") == b"BB"
    assert tree["bin/sh"].islnk() and tree["bin/sh"].linkname == "bin/busybox"


def test_hard_link_keeps_the_content_when_its_target_is_deleted_later(layer):
    lower = layer(file("a", b"content"), hardlink("b", "a"))
    upper = layer(whiteout("a"))
    data = flatten_bytes([lower, upper])
    assert sorted(members(data)) == ["b"] and content(data, "b") == b"content"


def test_hard_link_keeps_the_old_content_when_its_target_is_replaced(layer):
    lower = layer(file("a", b"old"), hardlink("b", "a"), hardlink("c", "a"))
    upper = layer(file("a", b"new"))
    data = flatten_bytes([lower, upper])
    tree = members(data)
    assert content(data, "a") == b"new" and content(data, "b") == b"old"
    assert tree["c"].islnk() and tree["c"].linkname == "b"


def test_hard_link_to_a_symlink_or_device_shares_that_inode(layer):
    data = flatten_bytes([layer(symlink("s", "target"), hardlink("t", "s"), fifo("p"), hardlink("q", "p"))])
    tree = members(data)
    assert tree["s"].issym() and tree["t"].islnk() and tree["t"].linkname == "s"
    assert tree["p"].isfifo() and tree["q"].islnk() and tree["q"].linkname == "p"


@pytest.mark.parametrize("entries, reason", [
    ([hardlink("b", "missing")], "does not exist"),
    ([hardlink("b", "later"), file("later", b"x")], "does not exist"),
    ([directory("d"), hardlink("b", "d")], "is a directory"),
    ([file("f", b""), hardlink("b", "f/x")], "passes through"),
    ([file("f", b""), hardlink("b", "../f")], "'..'"),
])
def test_hard_link_without_a_usable_target_names_the_layer_and_entry(layer, entries, reason):
    broken = layer(*entries)
    with pytest.raises(LayerError) as raised:
        flatten_bytes([broken])
    message = str(raised.value)
    assert broken.digest in message and "'b'" in message and reason in message
    assert isinstance(raised.value, ExchangeError)


def test_hard_link_to_a_file_whited_out_in_the_same_layer_is_an_error(layer):
    lower = layer(file("a", b"a"))
    with pytest.raises(LayerError, match="does not exist"):
        flatten_bytes([lower, layer(hardlink("b", "a"), whiteout("a"))])


# --- entry types and metadata --------------------------------------------------------------------

def test_symlink_targets_are_kept_verbatim(layer):
    targets = {"abs": "/usr/bin/python3", "rel": "../lib/x", "dangling": "nowhere", "dot": "./a//b"}
    tree = members(flatten_bytes([layer(*(symlink(f"links/{name}", target) for name, target in targets.items()))]))
    assert {name: tree[f"links/{name}"].linkname for name in targets} == targets
    assert all(tree[f"links/{name}"].issym() for name in targets)


def test_devices_and_fifos_are_preserved(layer):
    tree = members(flatten_bytes([layer(chardev("dev/null", 1, 3), blockdev("dev/sda", 8, 0), fifo("run/pipe", mode=0o600))]))
    assert tree["dev/null"].ischr() and (tree["dev/null"].devmajor, tree["dev/null"].devminor) == (1, 3)
    assert tree["dev/sda"].isblk() and (tree["dev/sda"].devmajor, tree["dev/sda"].devminor) == (8, 0)
    assert tree["run/pipe"].isfifo() and tree["run/pipe"].mode == 0o600


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_names_and_link_targets(layer, tar_format):
    long_dir = "/".join(["d" * 60] * 3)  # 182 characters
    very_long = "/".join(["e" * 200] * 2) + "/" + "f" * 250  # > 255 in one component too
    data = flatten_bytes([layer(
        file(f"{long_dir}/file", b"long"), file(very_long, b"very"),
        symlink("s", "t" * 300), hardlink(f"{long_dir}/link", very_long), format=tar_format,
    )])
    tree = members(data)
    assert content(data, f"{long_dir}/file") == b"long"
    assert tree["s"].linkname == "t" * 300
    first, second = sorted([f"{long_dir}/link", very_long], key=lambda name: name.split("/"))
    assert content(data, first) == b"very" and tree[second].islnk() and tree[second].linkname == first


def test_non_utf8_and_unicode_names_round_trip(layer):
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")
    data = flatten_bytes([layer(file(latin1, b"1"), file("naïve/日本", b"2"))])
    assert content(data, latin1) == b"1" and content(data, "naïve/日本") == b"2"


def test_xattrs_are_preserved_and_times_and_other_records_are_dropped(layer):
    capability = b"\x01\x00\x00\x02\x00\x20\x00\x00\xff\xfe"  # not UTF-8, as security.capability is
    data = flatten_bytes([layer(file("bin/ping", b"p", xattrs={"security.capability": capability, "user.note": "ok"},
                                     pax={"atime": "1700000001.5", "ctime": "1700000002", "comment": "x",
                                          "mtime": "1700000003.25"}))])
    member = members(data)["bin/ping"]
    assert member.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == capability
    assert member.pax_headers["SCHILY.xattr.user.note"] == "ok"
    assert member.mtime == 1700000003.25
    assert not {"atime", "ctime", "comment", "hdrcharset"} & set(member.pax_headers)


def test_ownership_modes_and_special_bits_are_preserved(layer):
    tree = members(flatten_bytes([layer(
        file("usr/bin/sudo", b"s", mode=0o4755, uid=0, gid=0, uname="root", gname="root"),
        file("usr/bin/wall", b"w", mode=0o2755, gid=5, gname="tty"),
        directory("tmp", mode=0o1777),
        file("home/u/f", b"u", mode=0o600, uid=3_000_000, gid=1000, uname="a-very-long-user-name-over-32-characters",
             gname="users", mtime=1_234_567_890),
    )]))
    assert tree["usr/bin/sudo"].mode == 0o4755 and tree["usr/bin/sudo"].uname == "root"
    assert tree["usr/bin/wall"].mode == 0o2755 and (tree["usr/bin/wall"].gid, tree["usr/bin/wall"].gname) == (5, "tty")
    assert tree["tmp"].mode == 0o1777
    home = tree["home/u/f"]
    assert (home.mode, home.uid, home.gid, home.gname, home.mtime) == (0o600, 3_000_000, 1000, "users", 1_234_567_890)
    assert home.uname == "a-very-long-user-name-over-32-characters"


def test_missing_parents_are_implied_as_root_owned_0755_directories(layer):
    tree = members(flatten_bytes([layer(file("a/b/c", b"c", uid=5, mtime=99))]))
    for parent in ("a", "a/b"):
        assert tree[parent].isdir()
        assert (tree[parent].mode, tree[parent].uid, tree[parent].gid, tree[parent].mtime) == (0o755, 0, 0, 0)


def test_the_root_directory_is_not_emitted(layer):
    data = flatten_bytes([layer(directory("./", mode=0o700), directory("/"), file("x", b""))])
    assert names(data) == ["x"]


# --- untrusted paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/../b", "./..", "/../etc/passwd"])
def test_path_traversal_is_rejected_naming_layer_and_entry(layer, name):
    hostile = layer(file("ok", b""), file(name, b"evil"))
    with pytest.raises(LayerError, match=r"'\.\.' component") as raised:
        flatten_bytes([hostile])
    assert hostile.digest in str(raised.value) and repr(name) in str(raised.value)


def test_absolute_and_dotted_names_are_normalised(layer):
    data = flatten_bytes([layer(file("/abs", b"1"), file("./rel", b"2"), file("a//b/./c", b"3"), directory("/d/"))])
    assert sorted(members(data)) == ["a", "a/b", "a/b/c", "abs", "d", "rel"]
    assert not any(name.startswith(("/", "./")) for name in names(data))


@pytest.mark.parametrize("lower_entries", [
    [symlink("etc", "/tmp/x")],
    [symlink("etc", "../../outside")],
    [file("etc", b"a file")],
], ids=["absolute-symlink", "relative-symlink", "regular-file"])
def test_writing_through_a_symlink_or_file_is_rejected(layer, lower_entries):
    lower = layer(*lower_entries)
    upper = layer(file("etc/passwd", b"root::0:0::/:/bin/sh"))
    with pytest.raises(LayerError, match="parent 'etc' is a") as raised:
        flatten_bytes([lower, upper])
    assert upper.digest in str(raised.value) and "etc/passwd" in str(raised.value)


def test_writing_through_a_symlink_of_the_same_layer_is_rejected(layer):
    with pytest.raises(LayerError, match="symlink"):
        flatten_bytes([layer(symlink("lib", "/"), file("lib/x", b""))])


def test_whiteout_through_a_symlink_is_rejected(layer):
    lower = layer(file("real/x", b""), symlink("link", "real"))
    with pytest.raises(LayerError, match="symlink"):
        flatten_bytes([lower, layer(whiteout("link/x"))])


@pytest.mark.parametrize("entry", [file("a/.wh.b/c", b""), file("dir/.wh.", b"")], ids=["inside-whiteout", "empty"])
def test_malformed_whiteout_names_are_rejected(layer, entry):
    with pytest.raises(LayerError, match="whiteout"):
        flatten_bytes([layer(entry)])


def test_aufs_metadata_is_ignored_and_its_link_directory_resolves_hard_links(layer):
    data = flatten_bytes([layer(directory(".wh..wh.plnk"), file(".wh..wh.plnk/123.456", b"linked"),
                                file(".wh..wh.aufs", b""), hardlink("bin/tool", ".wh..wh.plnk/123.456"))])
    assert sorted(members(data)) == ["bin", "bin/tool"] and content(data, "bin/tool") == b"linked"


# --- hostile or damaged tars ---------------------------------------------------------------------

def test_a_damaged_header_after_the_first_is_an_error_not_the_end(layer):
    broken = layer(file("a", b"a"), raw(b"\x01" * 512), file("b", b"b"))
    with pytest.raises(LayerError, match="invalid tar header") as raised:
        flatten_bytes([broken])
    assert broken.digest in str(raised.value)


def test_a_layer_truncated_inside_file_data_is_an_error(tmp_path, layer):
    blob = layer(file("big", b"x" * 5000), end_blocks=False)
    with open(blob.tar_path, "r+b") as stream:
        stream.truncate(2048)
    with pytest.raises(LayerError, match="past the end of the layer file"):
        flatten_bytes([blob])


def test_an_oversized_extended_header_is_refused_without_reading_it(layer):
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 1 << 32
    with pytest.raises(LayerError, match="extended header declares"):
        flatten_bytes([layer(raw(info.tobuf(tarfile.USTAR_FORMAT)))])


def test_unsupported_entry_types_are_refused(layer):
    volume = tarfile.TarInfo("label")
    volume.type = b"V"
    with pytest.raises(LayerError, match="unsupported tar entry type"):
        flatten_bytes([layer(raw(volume.tobuf(tarfile.GNU_FORMAT)))])


def test_global_pax_headers_are_ignored_as_docker_ignores_them(layer):
    global_header = tarfile.TarInfo.create_pax_global_header({"uid": "5", "comment": "git archive"})
    tree = members(flatten_bytes([layer(raw(global_header), file("x", b"", uid=7))]))
    assert sorted(tree) == ["x"] and tree["x"].uid == 7


def test_a_bad_checksum_or_a_malformed_pax_record_is_an_error(layer):
    header = bytearray(tarfile.TarInfo("x").tobuf(tarfile.USTAR_FORMAT))
    header[0:1] = b"y"  # the checksum no longer matches
    with pytest.raises(LayerError, match="checksum"):
        flatten_bytes([layer(raw(bytes(header)))])
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 12
    with pytest.raises(LayerError, match="malformed PAX record"):
        flatten_bytes([layer(raw(pax.tobuf(tarfile.USTAR_FORMAT) + b"99 path=abc\n".ljust(512, b"\0")), file("x"))])


def test_empty_layers_are_fine(layer):
    assert names(flatten_bytes([layer(), layer(end_blocks=False), layer(file("x", b"x"))])) == ["x"]


# --- output: order, determinism, extraction ------------------------------------------------------

# A real file capability (VFS_CAP_REVISION_2, effective, cap_net_raw), binary as such values are.
CAP_NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)


def rich_layers(layer) -> list[LayerBlob]:
    lower = layer(directory("usr"), directory("usr/bin"), file("usr/bin/busybox", b"BB" * 1000, mode=0o755),
                  hardlink("bin/sh", "usr/bin/busybox"), symlink("lib", "usr/lib"), file("usr/lib/libc.so", b"libc"),
                  file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), file("a-b", b"dash"), file("a/b", b"slash"),
                  directory("tmp", mode=0o1777), file("etc/old", b"old"), fifo("run/fifo"))
    upper = layer(whiteout("etc/old"), file("etc/shadow", b"secret", mode=0o640, gid=42),
                  hardlink("usr/bin/ls", "bin/sh"), file("root/.profile", b"PS1=#"), opaque("tmp"),
                  file("usr/bin/sudo", b"sudo", mode=0o4755),
                  file("usr/bin/ping", b"ping", xattrs={"security.capability": CAP_NET_RAW}))
    return [lower, upper]


def test_output_order_is_canonical_parents_first_and_link_targets_first(layer):
    data = flatten_bytes(rich_layers(layer))
    order = names(data)
    assert order == sorted(order, key=lambda name: [part.encode() for part in name.split("/")])
    seen: set[str] = set()
    for member in open_tar(data).getmembers():
        parent = member.name.rpartition("/")[0]
        assert not parent or parent in seen, f"{member.name} before its parent"
        if member.islnk():
            assert member.linkname in seen, f"{member.name} before its link target"
        seen.add(member.name)
    assert order.index("a/b") < order.index("a-b")  # components, not strings: "a" < "a-b"


def test_output_is_byte_identical_across_runs_and_ends_with_end_of_archive(layer):
    layers = rich_layers(layer)
    first, second = flatten_bytes(layers), flatten_bytes(layers)
    assert first == second
    assert len(first) % 512 == 0 and first.endswith(bytes(1024))
    out_a, out_b = io.BytesIO(), io.BytesIO()
    assert write_rootfs(layers, out_a) == write_rootfs(layers, out_b)
    assert out_a.getvalue() == out_b.getvalue()


def test_output_bytes_are_pinned(layer):
    """Published digests depend on these bytes: a change here must be deliberate (and announced).

    The gzip digest also pins isal's output; if it differs on another CPU, isal's deflate is not
    byte-identical across machines and published digests would not be reproducible.
    """
    layers = rich_layers(layer)
    tar_sha256 = hashlib.sha256(flatten_bytes(layers)).hexdigest()
    assert tar_sha256 == "8a6e79365adee795fe2a50de7bfd0173f24377f5390eb21f8693a075a7ed6898"
    digest = write_rootfs(layers, io.BytesIO())
    assert (digest.sha384, digest.size, digest.entries) == (
        "18a7f2bc1d51043969517aefbd19553e7e5aa623e7b6c57ec2325f8d3e14b96071df22817f0d1d0204216f139f3f9270", 723, 22)


def test_write_rootfs_hashes_and_counts_exactly_the_gzip_it_writes(layer):
    layers = rich_layers(layer)
    target = io.BytesIO()
    digest = write_rootfs(layers, target)
    written = target.getvalue()
    assert isinstance(digest, RootfsDigest)
    assert digest.sha384 == hashlib.sha384(written).hexdigest()
    assert digest.size == len(written)
    assert written[:2] == b"\x1f\x8b" and written[4:8] == bytes(4)  # gzip, mtime 0
    assert gzip.decompress(written) == flatten_bytes(layers)
    assert digest.entries == len(names(flatten_bytes(layers)))


def test_reused_output_blocks_carry_nothing_over(layer):
    """The gzip sink hands its blocks back for reuse: a tar many blocks long, mixing small files
    (headers and padding over old bytes) with large ones (read straight into the blocks), must
    come out exactly as flattening into fresh memory gives it."""
    import random

    rng = random.Random(5)
    entries = [file(f"d{index // 100}/f{index}", rng.randbytes(rng.randrange(1500)), mode=0o644) for index in range(4000)]
    entries[1000:1000] = [file(f"big{index}", rng.randbytes(3_000_000 + index)) for index in range(4)]
    layers = [layer(*entries)]
    target = io.BytesIO()
    write_rootfs(layers, target)
    written, expected = gzip.decompress(target.getvalue()), flatten_bytes(layers)
    assert len(written) == len(expected) > 16 << 20
    assert hashlib.sha256(written).digest() == hashlib.sha256(expected).digest()  # no 18 MB diff on failure


def test_gzip_bytes_depend_on_the_tar_bytes_not_on_how_they_were_written():
    from exchange_cli.rootfs.tarball import COMPRESS_BLOCK, GZIP_LEVEL, _GzipHashingSink

    data = bytes(range(256)) * (3 * COMPRESS_BLOCK // 256) + b"tail" * 999

    def compress(cuts: list[int]) -> bytes:
        out = io.BytesIO()
        sink = _GzipHashingSink(out, GZIP_LEVEL)
        for start, end in itertools.pairwise(cuts):
            sink.write(data[start:end])
        sink.finish()
        return out.getvalue()

    whole = compress([0, len(data)])
    assert compress(list(range(0, len(data), 10_007)) + [len(data)]) == whole
    assert compress([0, 5, COMPRESS_BLOCK + 3, 2 * COMPRESS_BLOCK, len(data)]) == whole
    assert gzip.decompress(whole) == data


def test_progress_total_is_an_upper_bound_then_exactly_what_was_written(layer):
    """The total is known before the first byte is written and never below what gets written; once
    written it is exactly that, so the bar ends at 100% with the tarball."""
    class Counter:
        def __init__(self) -> None:
            self.totals: list[int | None] = []
            self.done = 0

        def set_total(self, total: int | None) -> None:
            self.totals.append(total)

        def advance(self, amount: int) -> None:
            assert self.totals and self.done + amount <= self.totals[0], "never past the announced total"
            self.done += amount

    counter = Counter()
    stats = flatten(rich_layers(layer), io.BytesIO(), progress_task=counter)
    assert isinstance(stats, FlattenStats) and counter.done == stats.file_bytes > 0
    assert counter.totals[0] >= stats.file_bytes and counter.totals[-1] == stats.file_bytes


def _can_make_devices(tmp_path: Path) -> bool:
    try:
        os.mknod(tmp_path / "probe", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        return False
    return True


def _extract(extractor: str, archive: Path, dest: Path) -> None:
    if extractor == "python-tarfile":
        with tarfile.open(archive, encoding="utf-8", errors="surrogateescape") as tar:
            tar.extractall(dest, filter="fully_trusted")
        return
    # bsdtar restores xattrs by default; whether this filesystem takes security.* ones is not our test.
    command = [require_executable("tar"), "-xpf"] if extractor == "gnu-tar" else [require_executable("bsdtar"), "--no-xattrs", "-xpf"]
    result = subprocess.run([*command, str(archive), "-C", str(dest)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("extractor", ["gnu-tar", "bsdtar", "python-tarfile"])
def test_extractors_produce_the_expected_tree(tmp_path, layer, extractor):
    layers = rich_layers(layer)
    with_devices = os.geteuid() == 0 and _can_make_devices(tmp_path)
    if with_devices:
        layers.append(layer(chardev("dev/null", 1, 3)))
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(flatten_bytes(layers))
    dest = tmp_path / "extracted"
    dest.mkdir()
    _extract(extractor, archive, dest)

    assert (dest / "usr/bin/busybox").read_bytes() == b"BB" * 1000
    assert os.stat(dest / "bin/sh").st_ino == os.stat(dest / "usr/bin/busybox").st_ino == os.stat(dest / "usr/bin/ls").st_ino
    assert os.stat(dest / "bin/sh").st_nlink == 3
    assert os.readlink(dest / "lib") == "usr/lib"
    assert not (dest / "etc/old").exists() and (dest / "etc/passwd").read_bytes().startswith(b"root")
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777 and os.listdir(dest / "tmp") == []
    assert stat.S_ISFIFO(os.stat(dest / "run/fifo").st_mode)
    if os.geteuid() == 0:
        assert stat.S_IMODE(os.stat(dest / "usr/bin/sudo").st_mode) == 0o4755
        assert os.stat(dest / "etc/shadow").st_gid == 42
    if with_devices:
        assert stat.S_ISCHR(os.stat(dest / "dev/null").st_mode) and os.stat(dest / "dev/null").st_rdev == os.makedev(1, 3)
    found = sorted(str(path.relative_to(dest)) for path in dest.rglob("*"))
    assert found == sorted(names(archive.read_bytes()))


# --- memory --------------------------------------------------------------------------------------

def test_memory_does_not_grow_with_file_size(layer):
    """A 200 MB file (sparse in the layer tar) streams through in small chunks."""
    big = layer(file("small", b"s"), zeros("big", 200 * 1024 * 1024), file("z", b"z"))

    class HashingSink:
        def __init__(self) -> None:
            self.hasher = hashlib.sha256()

        def write(self, data: bytes) -> None:
            self.hasher.update(data)

    tracemalloc.start()
    try:
        stats = flatten([big], HashingSink())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.file_bytes == 200 * 1024 * 1024 + 2
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"


# --- the header reader, against the standard library's -------------------------------------------

def _varied_members() -> list[tarfile.TarInfo]:
    infos = []
    for name, type, extra in [
        ("plain", tarfile.REGTYPE, {"size": 3}),
        ("p" * 90 + "/" + "q" * 90, tarfile.REGTYPE, {"size": 0}),  # fits ustar only with the prefix field
        ("x" * 300, tarfile.REGTYPE, {"size": 1}),
        ("dir/", tarfile.DIRTYPE, {}),
        ("link", tarfile.SYMTYPE, {"linkname": "t" * 150}),
        ("hard", tarfile.LNKTYPE, {"linkname": "plain"}),
        ("dev", tarfile.CHRTYPE, {"devmajor": 4, "devminor": 64}),
        ("big-ids", tarfile.REGTYPE, {"uid": 10_000_000, "gid": 3_000_000, "uname": "u" * 40}),
        ("ünïcödé", tarfile.REGTYPE, {"mtime": 1_700_000_000}),
    ]:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = type, 0o640, 1_600_000_000
        for key, value in extra.items():
            setattr(info, key, value)
        infos.append(info)
    return infos


@pytest.mark.parametrize("tar_format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_header_reader_agrees_with_tarfile(tmp_path, tar_format):
    from exchange_cli.rootfs.tarheader import LNKTYPE, parse_header, read_entry

    path = tmp_path / "varied.tar"
    with tarfile.open(path, "w", format=tar_format, encoding="utf-8") as tar:
        for info in _varied_members():
            if tar_format == tarfile.USTAR_FORMAT and (len(info.name) > 200 or len(info.linkname) > 100
                                                       or info.uid > 8**7 or len(info.uname) > 32):
                continue  # ustar cannot hold it
            tar.addfile(info, io.BytesIO(b"abc"[:info.size]))
    fields = ("name", "type", "mode", "uid", "gid", "size", "linkname", "uname", "gname",
              "devmajor", "devminor", "offset", "offset_data")
    data = path.read_bytes()
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as tar:
        expected = tar.getmembers()
    offset, seen = 0, []
    while (header := parse_header(data, offset, max_extended=1 << 20)) is not None:
        entry = read_entry(data, offset, max_extended=1 << 20)
        assert (entry.name, entry.type, entry.size, entry.offset_data, entry.next_offset) == (
            header.name, header.type, header.size, header.offset_data, header.next_offset)
        assert entry.linkname == (header.linkname if header.type == LNKTYPE else "")
        seen.append(header)
        offset = header.next_offset
    assert read_entry(data, offset, max_extended=1 << 20) is None
    assert len(seen) == len(expected) >= 6
    for header, member in zip(seen, expected, strict=True):
        header.name = header.name.rstrip("/")
        assert {f: getattr(header, f) for f in fields} == {f: getattr(member, f) for f in fields}
        assert header.mtime == int(member.mtime)


def test_symlink_mode_is_always_0777(tmp_path):
    import io
    import tarfile

    from exchange_cli.rootfs.flatten import flatten

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("link")
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, "target", 0o644
        tar.addfile(info)
    path = tmp_path / "layer.tar"
    path.write_bytes(buffer.getvalue())
    from exchange_cli.image.model import LayerBlob

    layer = LayerBlob(digest="sha256:" + "0" * 64, diff_id="sha256:" + "0" * 64, media_type="x", size=1, tar_path=path)
    out = io.BytesIO()
    flatten([layer], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        (member,) = tar.getmembers()
    assert member.issym() and member.mode == 0o777


def test_gzip_bytes_do_not_depend_on_thread_count_or_write_sizes():
    import gzip
    import hashlib
    import io
    import random

    from exchange_cli.rootfs.tarball import COMPRESS_BLOCK, _GzipHashingSink

    rng = random.Random(7)
    data = b"".join(rng.randbytes(4096) + b"text " * rng.randrange(1, 3000) for _ in range(900))
    assert len(data) > 3 * COMPRESS_BLOCK
    outputs = set()
    for workers, write_size in ((1, COMPRESS_BLOCK), (2, 12_345), (4, 1 << 16), (3, len(data))):
        target = io.BytesIO()
        sink = _GzipHashingSink(target, 1, workers=workers)
        for start in range(0, len(data), write_size):
            sink.write(data[start:start + write_size])
        sink.finish()
        assert sink.hasher.hexdigest() == hashlib.sha384(target.getvalue()).hexdigest()
        assert gzip.decompress(target.getvalue()) == data
        outputs.add(target.getvalue())
    assert len(outputs) == 1


def test_gzip_of_input_ending_on_a_block_boundary_is_complete():
    import gzip
    import io

    from exchange_cli.rootfs.tarball import COMPRESS_BLOCK, _GzipHashingSink

    data = bytes(range(256)) * (2 * COMPRESS_BLOCK // 256)
    target = io.BytesIO()
    sink = _GzipHashingSink(target, 1, workers=2)
    sink.write(data)
    sink.finish()
    assert gzip.decompress(target.getvalue()) == data


# --- output headers: the template against the general encoder ------------------------------------

def _raw_header(name: bytes, *, mode: bytes = b"0000644\0", size: bytes = b"00000000003\0",
                mtime: bytes = b"13542257400\0", type: bytes = b"0", uname: bytes = b"") -> bytes:
    """A ustar block with fields spelled as given (old writers' spaces, file-type bits in the mode)."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108], block[108:116], block[116:124] = mode, b"0000000\0", b"0000000\0"
    block[124:136], block[136:148], block[156:157] = size, mtime, type
    block[257:265], block[265:265 + len(uname)] = b"ustar\x0000", uname
    block[148:156] = b"%06o\0 " % (sum(block[:148]) + 256 + sum(block[156:]))
    return bytes(block)


def test_a_files_data_span_is_where_its_whole_header_says(tmp_path):
    """data_span_at reads a plain header's size field in place and hands an extended one to header_at: the
    same place and size as the whole header's, whatever wrote the layer (GNU long names, PAX records,
    base-256 and space-padded numbers)."""
    from exchange_cli.rootfs.layertar import LayerTar
    from exchange_cli.rootfs.tarheader import REGULAR_TYPES

    entries = [file("plain", b"abc"), file("empty"), file("n" * 101, b"x" * 700), file("ünï", b"u"),
               file("fraction", b"f" * 513, mtime=1_600_000_000.5), file("xattr", b"x", xattrs={"user.a": "b"}),
               file("big-uid", b"b" * 1024, uid=8**7), directory("dir"), file("dir/inner", b"i" * 5)]
    layers = [make_layer(tmp_path, entries, format=tar_format, name=f"layer-{tar_format}.tar")
              for tar_format in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)]
    odd = tmp_path / "odd.tar"
    odd.write_bytes(_raw_header(b"spaced", mode=b" 644   \0", size=b"         3 \0", mtime=b"  13542257400")
                    + b"abc".ljust(512, b"\0") + bytes(1024))
    layers.append(LayerBlob("sha256:" + "0" * 64, "sha256:" + "0" * 64, "x", odd.stat().st_size, odd))
    extended = spans = 0
    for blob in layers:
        with LayerTar(blob) as tar:
            for entry in tar.entries():
                if entry.type in REGULAR_TYPES:
                    header = tar.header_at(entry.offset)
                    assert tar.data_span_at(entry.offset) == (header.offset_data, header.size), entry.name
                    spans += 1
                    extended += entry.extended
    assert spans == 2 * 8 + 1 and extended >= 6  # both ways were taken


def test_template_headers_are_the_general_encoding_or_decline(tmp_path):
    """PlainHeaders writes exactly what encode(entry_from_layer(...)) writes, or writes nothing."""
    from exchange_cli.rootfs.headers import PlainHeaders, encode, entry_from_layer
    from exchange_cli.rootfs.layertar import LayerTar
    from exchange_cli.rootfs.tarheader import DIRTYPE, FIFOTYPE, REGTYPE, REGULAR_TYPES, SYMTYPE

    entries = [file("plain", b"abc"), file("n" * 100, b"x"), file("n" * 101, b"x"), file("ünï", b"u"),
               file("exec", b"#!", mode=0o4755, uid=1000, gid=100, uname="app", gname="staff"),
               file("owner", uname="o" * 32, gname="g" * 32), file("accented-owner", uname="ünï"),
               file("big-uid", uid=8**7), file("early", mtime=0), file("late", mtime=8**11 - 1),
               file("fraction", mtime=1_600_000_000.5), file("xattr", xattrs={"user.a": "b"}),
               directory("dir", mode=0o2775), directory("d" * 99), directory("d" * 100),
               symlink("link", "t" * 100), symlink("link-long", "t" * 101), symlink("link-ü", "ü"),
               fifo("fifo", mode=0o600), chardev("char", 1, 3)]
    layers = [make_layer(tmp_path, entries, format=tar_format, name=f"layer-{tar_format}.tar")
              for tar_format in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)]
    odd = tmp_path / "odd.tar"
    odd.write_bytes(_raw_header(b"typed-mode", mode=b"0100755\0") + b"abc".ljust(512, b"\0")
                    + _raw_header(b"spaced", mode=b" 644   \0", size=b"         3 \0", mtime=b"  13542257400")
                    + b"abc".ljust(512, b"\0") + bytes(1024))
    layers.append(LayerBlob("sha256:" + "0" * 64, "sha256:" + "0" * 64, "x", odd.stat().st_size, odd))
    templated = declined = 0
    plain = PlainHeaders()
    for blob in layers:
        with LayerTar(blob) as tar:
            for entry in tar.entries():
                if entry.extended or entry.type not in REGULAR_TYPES | {DIRTYPE, SYMTYPE, FIFOTYPE}:
                    continue
                header = tar.header_at(entry.offset)
                output_type = REGTYPE if entry.type in REGULAR_TYPES else entry.type
                path = entry.name.rstrip("/")
                name = path.encode("utf-8", "surrogateescape") + (b"/" if output_type == DIRTYPE else b"")
                buffer = bytearray(512)
                size = plain.encode_into(buffer, 0, name, tar.buffer[entry.offset:entry.offset + 512], output_type)
                if size < 0:
                    declined += 1
                    assert buffer == bytes(512)
                    continue
                templated += 1
                assert bytes(buffer) == encode(entry_from_layer(header, path)), path
                assert size == (header.size if output_type == REGTYPE else 0)
    assert templated >= 20 and declined >= 4  # both ways were tried

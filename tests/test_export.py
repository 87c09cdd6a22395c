"""`export_rootfs` and `exchange export`: atomic output, hand-crafted and hostile layers, text and JSON output."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from exchange_cli.image.model import Platform
from tests.infra.image_files import (
    OciLayout,
    base_layer,
    directory,
    entry,
    rootfs_listing,
    second_layer,
    sha256,
    tar_of,
)


def output_dir_is_clean(directory_path: Path) -> bool:
    return not [p for p in directory_path.iterdir() if ".tmp-" in p.name or p.name == "rootfs.tgz"]


def run_export(*args: str) -> click.testing.Result:  # noqa: F821
    return CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)


@pytest.fixture
def layout(tmp_path: Path) -> OciLayout:
    return OciLayout(tmp_path / "layout")


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


LINUX_AMD64 = Platform("linux", "amd64")


def options(tmp_path: Path, platform: Platform = LINUX_AMD64) -> ExportOptions:
    return ExportOptions(platform=platform, cache=BlobCache(tmp_path / "cache"))


# --- exporting --------------------------------------------------------------------------------------


def test_export_writes_the_flattened_rootfs_and_its_sha384(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    layout.add(layout.image([base_layer(), second_layer()]), tag="app")
    result = export_rootfs(f"oci:{layout.root}:app", out_dir / "rootfs.tgz", options=options(tmp_path))
    data = (out_dir / "rootfs.tgz").read_bytes()
    assert result.sha384 == hashlib.sha384(data).hexdigest() and result.size == len(data)
    listing = rootfs_listing(out_dir / "rootfs.tgz")
    assert listing["bin/hello"] == ("file", b"hello\n")
    assert listing["etc/motd"] == ("file", b"welcome\n")
    assert "etc/os-release" not in listing and "etc/.wh.os-release" not in listing
    assert result.entries == len(listing)
    assert [p.name for p in out_dir.iterdir()] == ["rootfs.tgz"]


def test_export_is_byte_identical_whatever_the_layer_compression(tmp_path: Path, layout: OciLayout,
                                                                 out_dir: Path) -> None:
    layers = [base_layer(), second_layer()]
    for compression in ("gzip", "zstd", "none"):
        layout.add(layout.image(layers, compression=compression), tag=compression)
    digests = {export_rootfs(f"oci:{layout.root}:{compression}", out_dir / f"{compression}.tgz",
                             options=ExportOptions(cache=BlobCache(tmp_path / f"cache-{compression}"))).sha384
               for compression in ("gzip", "zstd", "none")}
    again = export_rootfs(f"oci:{layout.root}:gzip", out_dir / "again.tgz", options=options(tmp_path)).sha384
    assert len(digests) == 1 and again in digests
    assert (out_dir / "gzip.tgz").read_bytes() == (out_dir / "zstd.tgz").read_bytes()


def test_opaque_whiteout_hides_the_lower_directory(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    lower = tar_of(directory("data"), entry("data/old", b"old"), directory("data/sub"), entry("data/sub/x", b"x"))
    upper = tar_of(directory("data"), entry("data/.wh..wh..opq"), entry("data/new", b"new"))
    layout.add(layout.image([lower, upper], compression="zstd"), tag="opaque")
    export_rootfs(f"oci:{layout.root}:opaque", out_dir / "rootfs.tgz", options=options(tmp_path))
    listing = rootfs_listing(out_dir / "rootfs.tgz")
    assert sorted(p for p in listing if p.startswith("data/")) == ["data/new"]


def test_multi_platform_index_exports_the_requested_platform(tmp_path: Path, layout: OciLayout,
                                                             out_dir: Path) -> None:
    amd64 = layout.image([tar_of(entry("arch", b"amd64"))])
    arm64 = layout.image([tar_of(entry("arch", b"arm64"))], platform=Platform("linux", "arm64", "v8"))
    layout.add(layout.nested_index([amd64, arm64]), tag="multi")
    result = export_rootfs(f"oci:{layout.root}:multi", out_dir / "rootfs.tgz",
                           options=options(tmp_path, Platform("linux", "arm64")))
    assert rootfs_listing(out_dir / "rootfs.tgz")["arch"] == ("file", b"arm64")
    assert result.image.manifest_digest == arm64["digest"]


def test_cache_keeps_the_exported_image_layers(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    layout.add(layout.image([base_layer()]), tag="one")
    layout.add(layout.image([second_layer()]), tag="two")
    cache = BlobCache(tmp_path / "cache", max_bytes=1)  # room for nothing: only the exported image is kept
    export_rootfs(f"oci:{layout.root}:one", out_dir / "one.tgz", options=ExportOptions(cache=cache))
    export_rootfs(f"oci:{layout.root}:two", out_dir / "two.tgz", options=ExportOptions(cache=cache))
    assert [p.name for p in cache.layers_dir.glob("*.tar")] == [cache.layer_path(sha256(second_layer())).name]


class _InterruptingProgress:
    """Progress that presses Ctrl-C once some rootfs bytes have been written."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[object]:
        class Task:
            def advance(self, amount: int) -> None:
                if description.startswith("Writing"):
                    raise KeyboardInterrupt

            def skip(self, amount: int) -> None:
                pass

            def set_total(self, total: int | None) -> None:
                pass

        yield Task()

    @contextmanager
    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> Iterator[object]:
        yield self


def test_interrupt_leaves_no_output_and_no_temp_file(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    layout.add(layout.image([base_layer()]), tag="app")
    with pytest.raises(KeyboardInterrupt):
        export_rootfs(f"oci:{layout.root}:app", out_dir / "rootfs.tgz", options=options(tmp_path),
                      progress=_InterruptingProgress())
    assert list(out_dir.iterdir()) == []


# --- hostile layers: exit 1, a message naming image, blob or entry, and nothing left behind --------------


def _truncated_gzip_layout(layout: OciLayout) -> str:
    descriptor = layout.add(layout.image([base_layer()]), tag="bad")
    manifest = json.loads((layout.root / "blobs/sha256" / descriptor["digest"].split(":")[1]).read_bytes())
    layer_digest = manifest["layers"][0]["digest"]
    # Re-point the manifest at a gzip stream cut short, with a matching digest and size: only the
    # decompressor can notice.
    truncated = gzip.compress(base_layer(), mtime=0)[:-12]
    manifest["layers"][0] = layout.blob(truncated, manifest["layers"][0]["mediaType"])
    layout.manifests.clear()
    layout.add({**layout.blob(json.dumps(manifest).encode(), descriptor["mediaType"])}, tag="bad")
    return layer_digest


HOSTILE = {
    "path traversal": ([tar_of(entry("../../etc/passwd", b"root::0:0::/:/bin/sh\n"))],
                       r"entry '\.\./\.\./etc/passwd'.*'\.\.'"),
    "write through an absolute symlink": (
        [tar_of(entry("escape", kind=tarfile.SYMTYPE, linkname="/etc")), tar_of(entry("escape/cron", b"* * * * *"))],
        r"entry 'escape/cron'.*'escape' is a symlink"),
    "write through a symlink in the same layer": (
        [tar_of(entry("up", kind=tarfile.SYMTYPE, linkname="../../.."), entry("up/tmp/x", b"x"))],
        r"entry 'up/tmp/x'.*'up' is a symlink"),
    "hard link out of the rootfs": ([tar_of(entry("shadow", kind=tarfile.LNKTYPE, linkname="../../etc/shadow"))],
                                    r"entry 'shadow'.*hard.link target.*'\.\.'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_without_output(case: str, tmp_path: Path, layout: OciLayout,
                                                 out_dir: Path) -> None:
    layers, message = HOSTILE[case]
    layout.add(layout.image(layers), tag="bad")
    result = run_export(f"oci:{layout.root}:bad", "-o", str(out_dir / "rootfs.tgz"), "--cache-dir",
                        str(tmp_path / "cache"), "--quiet")
    assert result.exit_code == 1, result.output
    assert f"oci:{layout.root}:bad: layer sha256:" in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert output_dir_is_clean(out_dir)


def test_hard_link_to_a_lower_layer_file_shares_its_content(tmp_path: Path, layout: OciLayout,
                                                           out_dir: Path) -> None:
    lower = tar_of(directory("opt"), entry("opt/tool", b"#!/bin/sh\n", mode=0o755))
    upper = tar_of(entry("usr-tool", kind=tarfile.LNKTYPE, linkname="opt/tool"))
    layout.add(layout.image([lower, upper]), tag="links")
    export_rootfs(f"oci:{layout.root}:links", out_dir / "rootfs.tgz", options=options(tmp_path))
    listing = rootfs_listing(out_dir / "rootfs.tgz")
    linked = {listing["opt/tool"], listing["usr-tool"]}
    assert ("file", b"#!/bin/sh\n") in linked and (("hardlink", "opt/tool") in linked or ("hardlink", "usr-tool") in linked)


def test_digest_mismatch_names_the_blob(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    descriptor = layout.add(layout.image([base_layer()]), tag="bad")
    manifest = json.loads((layout.root / "blobs/sha256" / descriptor["digest"].split(":")[1]).read_bytes())
    layer_digest = manifest["layers"][0]["digest"]
    blob = layout.root / "blobs/sha256" / layer_digest.split(":")[1]
    blob.write_bytes(gzip.compress(second_layer(), mtime=0))  # same name, other content
    result = run_export(f"oci:{layout.root}:bad", "-o", str(out_dir / "rootfs.tgz"), "--cache-dir",
                        str(tmp_path / "cache"), "-q")
    assert result.exit_code == 1
    assert f"error: oci:{layout.root}:bad: blob {layer_digest}:" in result.stderr
    assert "content hashes to sha256:" in result.stderr or "bytes" in result.stderr
    assert output_dir_is_clean(out_dir)


def test_truncated_gzip_names_the_blob(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    _truncated_gzip_layout(layout)
    manifest = json.loads((layout.root / "blobs/sha256" / layout.manifests[0]["digest"].split(":")[1]).read_bytes())
    bad_digest = manifest["layers"][0]["digest"]
    result = run_export(f"oci:{layout.root}:bad", "-o", str(out_dir / "rootfs.tgz"), "--cache-dir",
                        str(tmp_path / "cache"), "-q")
    assert result.exit_code == 1
    assert f"error: oci:{layout.root}:bad: blob {bad_digest}: cannot decompress" in result.stderr
    assert output_dir_is_clean(out_dir)
    assert not list((tmp_path / "cache" / "layers").glob(".layer-*"))


# --- the command's output ---------------------------------------------------------------------------


def test_cli_text_output(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    descriptor = layout.add(layout.image([base_layer()]), tag="app")
    result = run_export(f"oci:{layout.root}:app", "-o", str(out_dir / "rootfs.tgz"), "--cache-dir",
                        str(tmp_path / "cache"), "--quiet")
    assert result.exit_code == 0, result.output
    digest = hashlib.sha384((out_dir / "rootfs.tgz").read_bytes()).hexdigest()
    size = (out_dir / "rootfs.tgz").stat().st_size
    assert f"sha384:{digest}" in result.stdout
    assert f"{size} bytes" in result.stdout
    assert descriptor["digest"] in result.stdout
    assert result.stderr == ""


def test_cli_json_output_and_progress_on_stderr(tmp_path: Path, layout: OciLayout, out_dir: Path) -> None:
    descriptor = layout.add(layout.image([base_layer(), second_layer()]), tag="app")
    result = run_export(f"oci:{layout.root}:app", "-o", str(out_dir / "rootfs.tgz"), "--cache-dir",
                        str(tmp_path / "cache"), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    data = (out_dir / "rootfs.tgz").read_bytes()
    assert report["sha384"] == f"sha384:{hashlib.sha384(data).hexdigest()}"
    assert report["size"] == len(data)
    assert report["image"]["digest"] == report["image"]["manifest-digest"] == descriptor["digest"]
    assert report["image"]["layers"] == [sha256(base_layer()), sha256(second_layer())]
    assert report["image"]["platform"] == "linux/amd64"
    assert f"oci:{layout.root}:app fetched: " in result.stderr and f"oci:{layout.root}:app written: " in result.stderr


def test_cli_rejects_a_bad_platform(tmp_path: Path, out_dir: Path) -> None:
    result = run_export("oci:/nowhere", "-o", str(out_dir / "rootfs.tgz"), "--platform", "linux")
    assert result.exit_code == 2
    assert "expected os/arch[/variant]" in result.stderr
    assert output_dir_is_clean(out_dir)

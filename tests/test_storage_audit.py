"""Maintaining the bucket and fetching from it: `verify-storage` and `fetch`, against a bucket
directory, the GCS emulator, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.catalog_world import CatalogWorld, owned_catalog_world, put_object
from tests.infra.gitrepo import ExchangeRepo
from tests.infra.static_http import serving


def run(world: CatalogWorld, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, [*args, "--repo", str(world.repo.root)], input=stdin)


@pytest.fixture
def owned_catalog_local(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    return owned_catalog_world(exchange_repo, tmp_path, (tmp_path / "bucket").as_uri())


@pytest.fixture
def owned_catalog_gcs(exchange_repo: ExchangeRepo, tmp_path: Path, gcs_bucket_uri: str) -> CatalogWorld:
    # rootfs URLs are gs:// URLs here, so `fetch` reads them through the GCS client, from the emulator.
    return owned_catalog_world(exchange_repo, tmp_path, gcs_bucket_uri, download_url=gcs_bucket_uri)


@pytest.fixture(params=["local", "gcs"])
def owned_catalog(request: pytest.FixtureRequest) -> CatalogWorld:
    return request.getfixturevalue(f"owned_catalog_{request.param}")


def tamper(world: CatalogWorld, name: str, content: bytes) -> None:
    """Replace an object's bytes behind the exchange's back."""
    world.bucket.delete(name)
    put_object(world, name, content)


# verify-storage ----------------------------------------------------------------------------------

def test_a_consistent_bucket_passes_even_deep(owned_catalog: CatalogWorld) -> None:
    result = run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri, "--deep")
    assert result.exit_code == 0, result.output
    assert f"{len(owned_catalog.published)} artifact(s) checked (content hashed): 0 missing, 0 damaged, 0 orphan(s)" \
        in result.output


def test_missing_orphan_and_tampered_objects_are_found(owned_catalog: CatalogWorld) -> None:
    gone = owned_catalog.find("acme", "hello", "0.9.0")
    resized = owned_catalog.find("acme", "hello-world", "2.0.0")
    same_size = owned_catalog.find("neuro", "skull-strip", "2.1.0")
    owned_catalog.bucket.delete(gone.object_name)
    tamper(owned_catalog, resized.object_name, b"not the rootfs")
    original = b"".join(iter(functools.partial(owned_catalog.bucket.open_read(same_size.object_name).read, 1 << 20), b""))
    tamper(owned_catalog, same_size.object_name, bytes(len(original)))
    put_object(owned_catalog, "acme-stray-sha384-0000.tgz", b"left behind")

    shallow = run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri, "--json")
    assert shallow.exit_code == 1
    report = json.loads(shallow.output)
    assert [m["object"] for m in report["missing"]] == [gone.object_name]
    assert report["missing"][0]["manifests"] == [gone.manifest]
    assert [o["object"] for o in report["orphans"]] == ["acme-stray-sha384-0000.tgz"]
    damaged = {d["object"]: d["problem"] for d in report["damaged"]}
    assert "14 bytes" in damaged[resized.object_name]
    # Same size: only a recorded hash (GCS metadata, a fresh local sidecar) or --deep can tell.
    deep = json.loads(run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri, "--json", "--deep").output)
    deep_damaged = {d["object"]: d["problem"] for d in deep["damaged"]}
    assert set(deep_damaged) == {resized.object_name, same_size.object_name}
    assert same_size.sha384 in deep_damaged[same_size.object_name]


def test_delete_orphans_asks_first_and_keeps_referenced_objects(owned_catalog: CatalogWorld) -> None:
    put_object(owned_catalog, "acme-stray-sha384-0000.tgz", b"left behind")
    declined = run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri, "--delete-orphans", stdin="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert owned_catalog.bucket.stat("acme-stray-sha384-0000.tgz") is not None

    confirmed = run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri, "--delete-orphans", stdin="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert owned_catalog.bucket.stat("acme-stray-sha384-0000.tgz") is None
    assert all(owned_catalog.bucket.stat(p.object_name) is not None for p in owned_catalog.published)
    assert run(owned_catalog, "verify-storage", "--bucket", owned_catalog.bucket.uri).exit_code == 0


def test_delete_orphans_with_yes_does_not_ask(owned_catalog_local: CatalogWorld) -> None:
    put_object(owned_catalog_local, "stray.tgz", b"x")
    result = run(owned_catalog_local, "verify-storage", "--bucket", owned_catalog_local.bucket.uri, "--delete-orphans", "--yes")
    assert result.exit_code == 0, result.output
    assert owned_catalog_local.bucket.stat("stray.tgz") is None


# fetch -------------------------------------------------------------------------------------------

def test_fetch_downloads_and_verifies_the_newest_processed_version(owned_catalog: CatalogWorld, tmp_path: Path) -> None:
    published = owned_catalog.find("acme", "hello", "1.0.0-rc.1")
    result = run(owned_catalog, "fetch", "acme/hello", "--output-dir", str(tmp_path / "out"), "--extract")
    assert result.exit_code == 0, result.output
    downloaded = tmp_path / "out" / published.object_name
    assert hashlib.sha384(downloaded.read_bytes()).hexdigest() == published.sha384
    assert (tmp_path / "out" / "acme-hello-1.0.0-rc.1" / "etc" / "release").read_text() == "acme/hello 1.0.0-rc.1\n"


def test_fetch_refuses_a_tampered_artifact_and_keeps_nothing(owned_catalog: CatalogWorld, tmp_path: Path) -> None:
    published = owned_catalog.find("acme", "hello", "0.10.0")
    original = b"".join(iter(functools.partial(owned_catalog.bucket.open_read(published.object_name).read, 1 << 20), b""))
    tamper(owned_catalog, published.object_name, original[:-1] + bytes([original[-1] ^ 1]))
    result = run(owned_catalog, "fetch", "acme/hello@0.10.0", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"the manifest says sha384:{published.sha384}" in result.output
    assert list((tmp_path / "out").iterdir()) == []


def test_fetch_from_the_bucket_option(owned_catalog_local: CatalogWorld, tmp_path: Path) -> None:
    published = owned_catalog_local.find("acme-labs", "hello", "1.0.0")
    result = run(owned_catalog_local, "fetch", "acme-labs/hello", "--bucket", owned_catalog_local.bucket.uri, "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert hashlib.sha384((tmp_path / published.object_name).read_bytes()).hexdigest() == published.sha384


@pytest.fixture
def http_bucket(exchange_repo: ExchangeRepo, tmp_path: Path) -> Iterator[CatalogWorld]:
    """A bucket directory served by a real HTTP server; manifests point at it."""
    directory = tmp_path / "bucket"
    directory.mkdir()
    with serving(directory) as url:
        yield owned_catalog_world(exchange_repo, tmp_path, directory.as_uri(), download_url=url)


def test_fetch_over_http_verifies_while_downloading(http_bucket: CatalogWorld, tmp_path: Path) -> None:
    published = http_bucket.find("neuro", "skull-strip", "2.1.0")
    assert http_bucket.bucket.download_url(published.object_name).startswith("http://127.0.0.1:")
    result = run(http_bucket, "fetch", "neuro/skull-strip@2.1.0", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert hashlib.sha384((tmp_path / "out" / published.object_name).read_bytes()).hexdigest() == published.sha384

    (tmp_path / "bucket" / published.object_name).write_bytes(b"swapped on the server")
    result = run(http_bucket, "fetch", "neuro/skull-strip@2.1.0", "--output-dir", str(tmp_path / "again"))
    assert result.exit_code == 1 and "tampered with or corrupted" in result.output


def test_fetch_over_http_reports_a_missing_object(http_bucket: CatalogWorld, tmp_path: Path) -> None:
    published = http_bucket.find("acme", "hello", "0.9.0")
    (tmp_path / "bucket" / published.object_name).unlink()
    result = run(http_bucket, "fetch", "acme/hello@0.9.0", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 1 and "HTTP 404" in result.output


# --extract against hostile archives --------------------------------------------------------------

def hostile_tarball(*members: tuple[str, str, str | bytes]) -> bytes:
    """(kind, name, content-or-link-target) members: kind is 'file', 'symlink', 'hardlink' or 'dir'."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[kind]
            info.linkname = payload if isinstance(payload, str) else ""
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(("members", "message"), [
    ((("file", "ok.txt", "fine"), ("file", "../escaped.txt", "gotcha")), "climbs out with '..'"),
    ((("file", "a/../../escaped.txt", "gotcha"),), "climbs out with '..'"),
    ((("file", "/tmp/escaped.txt", "gotcha"),), "absolute"),
    ((("symlink", "link", "/tmp"), ("file", "link/escaped.txt", "gotcha")), "goes through the symlink"),
    ((("symlink", "up", ".."), ("file", "up/escaped.txt", "gotcha")), "goes through the symlink"),
    ((("symlink", "link", "../escaped.txt"), ("hardlink", "hard", "link")), "not a file extracted before it"),
    ((("hardlink", "hard", "../escaped.txt"),), "climbs out with '..'"),
    ((("hardlink", "hard", "./"),), "which is not a file"),
])
def test_extract_refuses_hostile_archives_and_writes_nothing(owned_catalog_local: CatalogWorld, tmp_path: Path,
                                                             members: tuple, message: str) -> None:
    owned_catalog_local.publish("evil", "archive", "1.0.0", rootfs=hostile_tarball(*members))
    owned_catalog_local.repo.commit("evil")
    out = tmp_path / "out" / "deeper"
    result = run(owned_catalog_local, "fetch", "evil/archive", "--output-dir", str(out), "--extract")
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not (tmp_path / "out" / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()
    assert [p.name for p in out.iterdir()] == [owned_catalog_local.find("evil", "archive", "1.0.0").object_name], \
        "the verified tarball stays, no partial extraction"


def test_extract_keeps_a_rootfs_s_own_absolute_and_climbing_symlinks(owned_catalog_local: CatalogWorld, tmp_path: Path) -> None:
    owned_catalog_local.publish("acme", "links", "1.0.0", rootfs=hostile_tarball(
        ("dir", "usr/lib", ""), ("file", "usr/lib/libc.so", "elf"), ("symlink", "lib", "usr/lib"),
        ("symlink", "bin/sh", "/bin/busybox"), ("symlink", "usr/lib/root", "../../.."),
        ("hardlink", "usr/lib/libc.so.6", "usr/lib/libc.so")))
    owned_catalog_local.repo.commit("links")
    result = run(owned_catalog_local, "fetch", "acme/links", "--output-dir", str(tmp_path), "--extract")
    assert result.exit_code == 0, result.output
    root = tmp_path / "acme-links-1.0.0"
    assert (root / "bin" / "sh").readlink() == Path("/bin/busybox")
    assert (root / "usr" / "lib" / "root").readlink() == Path("../../..")
    assert (root / "usr" / "lib" / "libc.so.6").stat().st_ino == (root / "usr" / "lib" / "libc.so").stat().st_ino

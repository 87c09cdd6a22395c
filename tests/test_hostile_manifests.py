"""Manifests a hostile contributor can commit: links out of the repository (to the CI machine's
credentials, say) and files too large to read. Every reader of manifests (list/show/index,
verify-storage, the references process keeps on rollback) reads them as specs are read: a link is never
followed but named, a file over the limit is named from its size, and `verify-storage --delete-orphans`
then refuses to delete anything, since it cannot know what the unread file references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.manifests import MAX_MANIFEST_BYTES, manifests_at_commit
from exchange_cli.repository import Exchange
from exchange_cli.storage.bucket import open_bucket
from tests.catalog_world import CatalogWorld, populate, put_object
from tests.infra.commands import run_with_memory_cap
from tests.infra.gitrepo import ExchangeRepo, example_gear

SECRET = "s3cr3t-in-a-private-file-7hq2"
STRAY = "acme-stray-sha384-0000.tgz"


@pytest.fixture
def catalog_with_stray(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    """A processed exchange with a local bucket, and one orphan in the bucket."""
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    world = populate(CatalogWorld(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work"))
    put_object(world, STRAY, b"left behind")
    world.own_bucket(tmp_path / "remote.git")
    return world


@pytest.fixture
def private_manifest(tmp_path: Path) -> Path:
    """Outside the repository, a file shaped like a manifest: a reader that followed a link to it would
    list its gear (named after the secret) and count its object as referenced."""
    path = tmp_path / "home" / "private" / "acme-leak-sha384-1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"gear": example_gear(name=SECRET, version="1.0.0", description=SECRET),
                                "exchange": {"rootfs-hash": "sha384:1", "rootfs-url": f"https://x.example/{SECRET}.tgz"}}))
    return path


def invoke(world: CatalogWorld, *args: str):
    return CliRunner().invoke(cli, [*args, "--repo", str(world.repo.root)])


LINKS = {
    # name: (link below the repository, its target, the place the problem names)
    "file": ("manifests/acme/acme-leak-sha384-1.json", "{private}", "manifests/acme/acme-leak-sha384-1.json"),
    "file-inside": ("manifests/acme/acme-copy-sha384-1.json", "{repo}/gears/acme/hello.json",
                    "manifests/acme/acme-copy-sha384-1.json"),
    "dangling": ("manifests/acme/acme-gone-sha384-1.json", "{private}.missing", "manifests/acme/acme-gone-sha384-1.json"),
    "org-directory": ("manifests/evil", "{private_dir}", "manifests/evil"),
}


def make_link(world: CatalogWorld, layout: str, private_manifest: Path) -> str:
    link, target, place = LINKS[layout]
    os.symlink(target.format(private=private_manifest, private_dir=private_manifest.parent, repo=world.repo.root),
               world.repo.root / link)
    world.repo.commit("a link under manifests/")
    return place


@pytest.mark.parametrize("layout", sorted(LINKS))
def test_a_linked_manifest_is_never_read_and_blocks_deleting_orphans(catalog_with_stray: CatalogWorld, private_manifest: Path,
                                                                     layout: str) -> None:
    place = make_link(catalog_with_stray, layout, private_manifest)
    listing = invoke(catalog_with_stray, "list")
    assert listing.exit_code == 0, listing.output
    assert SECRET not in listing.output
    assert f"warning: not listed: {place}: is a symbolic link; links under manifests/ are never followed" in listing.output
    deleting = invoke(catalog_with_stray, "verify-storage", "--bucket", catalog_with_stray.bucket.uri, "--delete-orphans", "--yes")
    assert deleting.exit_code == 1, deleting.output
    assert f"unreadable manifest: {place}: is a symbolic link" in deleting.output
    assert SECRET not in deleting.output
    assert catalog_with_stray.bucket.stat(STRAY) is not None  # nothing deleted: the link's target could reference it
    assert all(catalog_with_stray.bucket.stat(p.object_name) is not None for p in catalog_with_stray.published)


def test_a_linked_manifests_directory_is_refused_whole(catalog_with_stray: CatalogWorld, private_manifest: Path,
                                                        tmp_path: Path) -> None:
    # The real manifests, moved out and linked back: every one of them is readable through the link.
    moved = tmp_path / "elsewhere"
    (catalog_with_stray.repo.root / "manifests").rename(moved)
    os.symlink(moved, catalog_with_stray.repo.root / "manifests")
    (moved / "acme" / private_manifest.name).write_text(private_manifest.read_text())
    listing = invoke(catalog_with_stray, "list")
    assert SECRET not in listing.output
    assert "warning: not listed: manifests: is a symbolic link; links under manifests/ are never followed" \
        in listing.output
    deleting = invoke(catalog_with_stray, "verify-storage", "--bucket", catalog_with_stray.bucket.uri, "--delete-orphans", "--yes")
    assert deleting.exit_code == 1 and "unreadable manifest: manifests: is a symbolic link" in deleting.output
    assert catalog_with_stray.bucket.stat(STRAY) is not None


def test_a_committed_link_is_named_when_manifests_are_read_from_git(catalog_with_stray: CatalogWorld,
                                                                     private_manifest: Path) -> None:
    """process reads the manifests of the remote's commit (manifests_at_commit) before deleting anything."""
    place = make_link(catalog_with_stray, "file", private_manifest)
    scan = manifests_at_commit(Exchange.open(catalog_with_stray.repo.root).repo, "HEAD")
    assert [str(problem) for problem in scan.problems] == [
        f"{place}: is a symbolic link; links under manifests/ are never followed"]
    assert len(scan.manifests) == len(catalog_with_stray.published)


def test_a_huge_manifest_is_named_from_its_size_never_read(catalog_with_stray: CatalogWorld) -> None:
    huge = catalog_with_stray.repo.root / "manifests" / "acme" / "acme-huge-sha384-1.json"
    with huge.open("wb") as handle:  # sparse: 8 GiB on disk costs nothing, read whole it cannot fit the cap
        handle.truncate(8 * 1024**3)
    result = run_with_memory_cap(["verify-storage", "--bucket", catalog_with_stray.bucket.uri, "--delete-orphans", "--yes",
                                  "--repo", str(catalog_with_stray.repo.root)], cap=3 * 1024**3)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"unreadable manifest: manifests/acme/acme-huge-sha384-1.json: is 8,589,934,592 bytes, over the limit "
            f"of {MAX_MANIFEST_BYTES:,} bytes; not read") in result.stdout
    assert catalog_with_stray.bucket.stat(STRAY) is not None


def test_a_committed_link_in_place_of_manifests_is_named_when_read_from_git(catalog_with_stray: CatalogWorld,
                                                                             tmp_path: Path) -> None:
    """manifests/ itself committed as a link (to a folder of manifests elsewhere): read from git, the link is
    named, as the work-tree reader names it; never an empty scan (nothing referenced) nor a crash."""
    moved = tmp_path / "elsewhere"
    (catalog_with_stray.repo.root / "manifests").rename(moved)
    os.symlink(moved, catalog_with_stray.repo.root / "manifests")
    catalog_with_stray.repo.commit("manifests/ replaced by a link")
    scan = manifests_at_commit(Exchange.open(catalog_with_stray.repo.root).repo, "HEAD")
    assert [str(problem) for problem in scan.problems] == [
        "manifests: is a symbolic link; links under manifests/ are never followed"]
    assert scan.manifests == []

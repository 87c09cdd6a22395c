"""Adopting a years-old exchange as it is (tests/legacy_exchange.py): every command reads every old
manifest, or names the one it cannot read, and they all agree on what a gear is called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.manifests import load_manifests, manifests_at_commit, read_manifest_blobs
from exchange_cli.storage.bucket import open_bucket
from tests.infra.gitrepo import ExchangeRepo
from tests.legacy_exchange import ORPHAN, LegacyExchange, build_legacy_exchange


@pytest.fixture
def legacy(exchange_repo: ExchangeRepo, tmp_path: Path) -> LegacyExchange:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    return build_legacy_exchange(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")


def run(legacy: LegacyExchange, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, [*args, "--repo", str(legacy.repo.root)], input=stdin)


def bucket_names(legacy: LegacyExchange) -> set[str]:
    return {info.name for info in legacy.bucket.list()}


# Every manifest is read --------------------------------------------------------------------------

def test_every_manifest_is_read_at_any_depth_from_disk_and_from_git(legacy: LegacyExchange) -> None:
    expected = {m.relative for m in legacy.manifests}
    on_disk = load_manifests(legacy.repo.root / "manifests")
    assert {m.relative for m in on_disk.manifests} == expected and on_disk.problems == []
    at_commit = manifests_at_commit_of(legacy)
    assert {m.relative for m in at_commit.manifests} == expected
    assert on_disk.referenced_objects() == legacy.referenced_objects == at_commit.referenced_objects()
    orgs = {m.relative: m.org for m in on_disk.manifests}
    assert {orgs[m.relative] for m in legacy.manifests} == {None, "acme", "neuro"}
    assert all(orgs[m.relative] == m.org for m in legacy.manifests)


def manifests_at_commit_of(legacy: LegacyExchange):
    import git

    with git.Repo(legacy.repo.root) as repo:
        return manifests_at_commit(repo, legacy.commits[-1])


def test_blob_reader_names_each_file_it_cannot_read() -> None:
    scan = read_manifest_blobs([
        ("manifests/acme/broken.json", b'{"gear": '),
        ("manifests/acme/latin1.json", '{"gear": {"name": "caf\xe9"}}'.encode("latin-1")),
        ("manifests/acme/not-a-manifest.json", b'{"hello": 1}'),
        ("manifests/acme/bad-url.json", b'{"gear": {}, "exchange": {"rootfs-url": 7}}'),
        ("manifests/README.md", b"not json, not a manifest"),
        ("gears/acme/x.json", b"{}"),
        ("manifests/ok.json", b'{"gear": {"name": "ok", "version": "1"}, "exchange": {"rootfs-url": "file:///b/ok.tgz"}}'),
    ])
    assert [m.relative for m in scan.manifests] == ["manifests/ok.json"]
    assert scan.referenced_objects() == {"ok.tgz"}
    reasons = {p.path: p.reason for p in scan.problems}
    assert set(reasons) == {"manifests/acme/broken.json", "manifests/acme/latin1.json",
                            "manifests/acme/not-a-manifest.json", "manifests/acme/bad-url.json"}
    assert "not valid JSON" in reasons["manifests/acme/broken.json"]
    assert "UTF-8" in reasons["manifests/acme/latin1.json"]
    assert "rootfs-url" in reasons["manifests/acme/bad-url.json"]


# verify-storage ----------------------------------------------------------------------------------

def test_delete_orphans_deletes_only_the_orphan_on_a_legacy_exchange(legacy: LegacyExchange) -> None:
    audit = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--json")
    report = json.loads(audit.output)
    assert [o["object"] for o in report["orphans"]] == [ORPHAN]
    assert report["missing"] == [] and report["damaged"] == [] and report["unreadable-manifests"] == []

    result = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--delete-orphans", "--yes")
    assert result.exit_code == 0, result.output
    assert bucket_names(legacy) == legacy.referenced_objects


def test_an_unreadable_manifest_stops_any_deletion(legacy: LegacyExchange) -> None:
    legacy.repo.write("manifests/acme/acme-half-written.json", '{"gear": {"name": "half"')
    result = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--delete-orphans", "--yes")
    assert result.exit_code == 1
    assert "unreadable manifest: manifests/acme/acme-half-written.json: not valid JSON" in result.output
    assert "refusing to delete any object" in result.output
    assert bucket_names(legacy) == legacy.referenced_objects | {ORPHAN}

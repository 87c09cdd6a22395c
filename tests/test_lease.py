"""The bucket lease (storage/lease.py) on a local directory and on fake-gcs-server, which honours
ifGenerationMatch on uploads as GCS does: one holder at a time, stale leases broken (expired, or a dead
owner on this machine), live ones never; renewal."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest

from exchange_cli.storage.lease import LEASE_OBJECT, BucketLease, LeaseLost, LeaseRecord, LeaseUnavailable
from exchange_cli.storage.owner import Owner
from tests.catalog_world import owned_catalog_world, put_object
from tests.infra.buckets import RACE_PARAMS, BucketUnderTest

BOTH = ["local", pytest.param("gcs", marks=pytest.mark.gcs)]


_MADE: list[BucketLease] = []


@pytest.fixture(autouse=True)
def _release_every_lease():
    """A test that fails (or a strict xfail on the emulator) before its release() would leave a renewer
    thread running for the rest of the session, renewing against a bucket that is gone."""
    yield
    while _MADE:
        _MADE.pop().release()


def lease(under: BucketUnderTest, lines: list[str] | None = None, **settings: float) -> BucketLease:
    log = (lines.append if lines is not None else lambda line: None)
    made = BucketLease(under.reopen(), purpose="test", log=log, **settings)
    _MADE.append(made)
    return made


def dead_owner() -> Owner:
    child = subprocess.Popen(["true"])
    child.wait()
    return dataclasses.replace(Owner.current(), pid=child.pid, started="")


def plant_lease(under: BucketUnderTest, owner: Owner, expires: float) -> None:
    under.bucket.create_control(LEASE_OBJECT, LeaseRecord("someone", owner, "a killed run", expires).as_bytes())


@pytest.mark.parametrize("under_test", RACE_PARAMS, indirect=True)
def test_a_held_lease_keeps_a_second_run_out(under_test: BucketUnderTest) -> None:
    first = lease(under_test)
    first.acquire()
    lines: list[str] = []
    with pytest.raises(LeaseUnavailable, match=r"leased by another exchange run \(pid \d+ on .*, test\)"):
        lease(under_test, lines, wait=0.5).acquire()
    assert any("waiting for the lease" in line for line in lines)
    first.release()
    second = lease(under_test)
    second.acquire()
    second.release()


@pytest.mark.parametrize("under_test", RACE_PARAMS, indirect=True)
def test_the_lease_of_a_dead_process_on_this_machine_is_broken_at_once(under_test: BucketUnderTest) -> None:
    plant_lease(under_test, dead_owner(), time.time() + 3600)
    lines: list[str] = []
    taker = lease(under_test, lines, wait=0.0)
    taker.acquire()
    assert any("breaking the lease" in line and "is gone" in line for line in lines)
    taker.release()
    assert under_test.bucket.read_control(LEASE_OBJECT) is None


@pytest.mark.parametrize("under_test", RACE_PARAMS, indirect=True)
def test_another_machines_lease_is_broken_only_once_expired(under_test: BucketUnderTest) -> None:
    elsewhere = Owner("ci-machine-2", "another-boot", "4026531836", 4242, "1")
    plant_lease(under_test, elsewhere, time.time() + 3600)
    with pytest.raises(LeaseUnavailable, match="ci-machine-2"):
        lease(under_test, wait=0.0).acquire()
    data, generation = under_test.bucket.read_control(LEASE_OBJECT)  # type: ignore[misc]
    expired = LeaseRecord("someone", elsewhere, "a lost machine", time.time() - 3600).as_bytes()
    under_test.bucket.replace_control(LEASE_OBJECT, expired, generation)
    lines: list[str] = []
    taker = lease(under_test, lines, wait=0.0)
    taker.acquire()
    assert any("expired at" in line for line in lines)
    taker.release()


@pytest.mark.parametrize("under_test", BOTH, indirect=True)
def test_the_lease_is_never_listed_so_never_an_orphan(under_test: BucketUnderTest) -> None:
    held = lease(under_test)
    held.acquire()
    assert [info.name for info in under_test.bucket.list()] == []
    record = LeaseRecord.parse(under_test.bucket.read_control(LEASE_OBJECT)[0])  # type: ignore[index]
    assert record is not None and record.owner == Owner.current() and record.expires > time.time()
    held.release()


@pytest.mark.parametrize("under_test", BOTH, indirect=True)
def test_a_working_run_keeps_renewing_its_lease(under_test: BucketUnderTest) -> None:
    held = lease(under_test, ttl=0.4)
    held.acquire()
    first = LeaseRecord.parse(under_test.bucket.read_control(LEASE_OBJECT)[0])  # type: ignore[index]
    time.sleep(1.0)
    later = LeaseRecord.parse(under_test.bucket.read_control(LEASE_OBJECT)[0])  # type: ignore[index]
    assert first is not None and later is not None and later.expires > first.expires
    held.ensure_held()
    held.release()


@pytest.mark.parametrize("under_test", RACE_PARAMS, indirect=True)
def test_a_run_whose_lease_was_taken_over_knows_it_lost_it(under_test: BucketUnderTest) -> None:
    held = lease(under_test, ttl=0.4)
    held.acquire()
    _, generation = under_test.bucket.read_control(LEASE_OBJECT)  # type: ignore[misc]
    under_test.bucket.delete_control(LEASE_OBJECT, generation)  # broken by someone who thought it stale
    plant_lease(under_test, Owner("other", "boot", "ns", 1, "1"), time.time() + 3600)
    time.sleep(0.5)
    with pytest.raises(LeaseLost):
        held.ensure_held()
    held.release()
    assert json.loads(under_test.bucket.read_control(LEASE_OBJECT)[0])["owner"]["host"] == "other"  # type: ignore[index]


@pytest.mark.parametrize("under_test", BOTH, indirect=True)
def test_a_rewrite_after_release_never_recreates_the_lease(under_test: BucketUnderTest) -> None:
    """As a `confirming` racing `release` on another thread would: with no generation left to write
    against, GCS would take an unconditional write and the released lease would be back."""
    held = lease(under_test)
    held.acquire()
    held.release()
    assert held._rewrite() is False
    assert under_test.bucket.read_control(LEASE_OBJECT) is None


def test_partial_uploads_are_removed_only_when_their_writer_is_gone(tmp_path: Path) -> None:
    from exchange_cli.storage.local import LocalBucket

    root = tmp_path / "bucket"
    (root / "org").mkdir(parents=True)
    dead = root / "org" / f".exchange-upload-{dead_owner().token()}-abc123"
    live = root / f".exchange-upload-{Owner.current().token()}-def456"
    unknown = root / ".exchange-upload-oldstyle"
    for path in (dead, live, unknown):
        path.write_bytes(b"partial")
    assert LocalBucket(root).remove_abandoned_uploads() == ["org/" + dead.name]
    assert not dead.exists() and live.exists() and unknown.exists()


def test_delete_orphans_waits_for_a_running_process_and_removes_dead_runs_partial_uploads(
        exchange_repo, tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from exchange_cli.cli import cli
    from exchange_cli.storage.bucket import open_bucket
    world = owned_catalog_world(exchange_repo, tmp_path, (tmp_path / "bucket").as_uri())
    put_object(world, "acme-uploaded-by-a-running-process.tgz", b"not pushed yet")
    running = BucketLease(open_bucket(world.bucket.uri), purpose="exchange process", log=lambda line: None)
    _MADE.append(running)
    running.acquire()
    monkeypatch.setenv("EXCHANGE_LEASE_WAIT", "1")
    args = ["verify-storage", "--bucket", world.bucket.uri, "--delete-orphans", "--yes", "--repo", str(exchange_repo.root)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "leased by another exchange run" in refused.output
    assert world.bucket.stat("acme-uploaded-by-a-running-process.tgz") is not None
    running.release()
    partial = tmp_path / "bucket" / f".exchange-upload-{dead_owner().token()}-x1y2z3"
    partial.write_bytes(b"half an upload")
    cleaned = CliRunner().invoke(cli, args)
    assert cleaned.exit_code == 0, cleaned.output
    assert "removed the partial upload" in cleaned.output and not partial.exists()
    assert world.bucket.stat("acme-uploaded-by-a-running-process.tgz") is None

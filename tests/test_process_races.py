"""Hostile timing for `exchange process`: two real runs overlapping on one remote and one bucket, and runs
killed with SIGKILL at export, at upload and at push, each followed by a rerun in the same checkout. Each kill
lands where the run is held (a test gate, or the remote's pre-receive hook), never on a timer. The runs that are
held, killed or overlapped are processes of their own; a run that nothing happens to while it works (a rerun,
a second run that ends while the first is held) runs in the test's process (`stage.run_here`).

Every test ends by checking that the remote and the bucket agree: each manifest on the remote has its
object in the bucket with the manifest's size and sha384, and the bucket holds nothing else (no orphan,
no partial upload, no lease), and no run's work directory is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gcs import drop_lease
from tests.infra.gitrepo import gear_and_image, run_git
from tests.infra.stages import DEADLINE, EXCHANGE, GEARS, Stage, finish, wait_for


def remote_references(stage: Stage) -> dict[str, tuple[str, int]]:
    """Object name -> (sha384 hex, size) for every manifest on the remote's master."""
    listing = run_git(stage.remote, "ls-tree", "-r", "--name-only", "master", "manifests/").splitlines()
    referenced = {}
    for path in (p for p in listing if p.endswith(".json")):
        block = json.loads(run_git(stage.remote, "show", f"master:{path}"))["exchange"]
        referenced[block["rootfs-url"].rsplit("/", 1)[1]] = (block["rootfs-hash"].removeprefix("sha384:"),
                                                              block["rootfs-size"])
    return referenced


def assert_consistent(stage: Stage, published: int = len(GEARS)) -> None:
    referenced = remote_references(stage)
    assert len(referenced) == published, \
        f"the remote has manifests for {sorted(referenced)}; the runs printed:\n{runs_printed(stage)}"
    envelopes, sboms = remote_envelopes(stage), remote_sboms(stage)
    assert len(sboms) == published, "every published rootfs has its SBOM"
    objects = stage.objects()
    for name, (sha384, size) in referenced.items():
        assert name in sorted(objects), f"a pushed manifest references {name}, which is not in the bucket"
        assert len(objects[name]) == size and hashlib.sha384(objects[name]).hexdigest() == sha384, name
    for name, sha256 in {**envelopes, **sboms}.items():
        assert name in objects, f"a pushed manifest pins {name}, which is not in the bucket"
        assert hashlib.sha256(objects[name]).hexdigest() == sha256, name
    assert sorted(objects) == sorted([*referenced, *envelopes, *sboms]), \
        "orphans, partial uploads or a lease left in the bucket"
    assert not list(stage.tmpdir.glob("exchange-process-*")), "a work directory was left behind"


def runs_printed(stage: Stage) -> str:
    """What every run of the stage printed, each under its checkout's name: which run made what."""
    return "\n".join(f"--- {log.stem}\n{log.read_text()}" for log in sorted(stage.tmp.glob("*.log")))


def record_owner(stage: Stage) -> None:
    """The ownership record an earlier successful run of this exchange wrote."""
    from exchange_cli.ownership import Ownership, claim, normalised_remote
    from exchange_cli.storage.bucket import open_bucket

    claim(open_bucket(stage.bucket_uri), Ownership(normalised_remote(str(stage.remote)), "master"), print, print)


# --- two runs at once ---------------------------------------------------------------------------------


def test_overlapping_runs_take_turns_on_the_bucket_lease(local_stage: Stage) -> None:
    """A uploads and is held in its push; B, a second clone of the same exchange, waits for A's lease
    instead of reusing A's objects and pushing first (after which A's failed push deleted them)."""
    stage = local_stage
    first, run_a = stage.start_held("first", "--retries", "2")
    second = stage.clone("second")
    run_b = stage.start(second, "--retries", "2")
    wait_for(lambda: "waiting for the lease" in stage.log(second) or run_b.poll() is not None,
             "the second run waits for the lease")
    before = stage.remote_head()
    time.sleep(1.0)
    assert run_b.poll() is None and stage.remote_head() == before, stage.log(second)
    stage.release_push()
    assert finish(run_a, stage, first) == 0, stage.log(first)
    assert finish(run_b, stage, second) == 0, stage.log(second)
    assert_consistent(stage)
    assert "already pushed by another run" in stage.log(second)


@pytest.mark.parametrize("retries", ["0", "1"])
def test_push_lost_to_a_run_that_reused_our_objects_deletes_none_of_them(gcs_stage: Stage, retries: str) -> None:
    """Something that ignores the lease (a person deleting it, an older tool) lets both runs proceed at
    once: B finds A's objects and pushes while A's push is held; A's push then fails on the ref lock. A
    treats that as a race (replays with --retries), or rolls back; either way it fetches the remote first
    and keeps every object B's manifests reference."""
    stage = gcs_stage
    first, run_a = stage.start_held("first", "--retries", retries)
    drop_lease(stage.bucket_uri)
    second = stage.clone("second")
    assert stage.run_here(second) == 0, stage.log(second)
    stage.release_push()
    code = finish(run_a, stage, first)
    if retries == "0":
        assert code == 2, stage.log(first)  # the remote refused the push: exit 2, as for an unreachable one
        assert "kept: a manifest at origin master" in stage.log(first)
    else:
        assert code == 0, stage.log(first)
        assert "already pushed by another run" in stage.log(first)
    assert_consistent(stage)


def test_a_version_another_run_published_from_a_repushed_image_is_refused_on_replay(gcs_stage: Stage) -> None:
    """A (hello 1.0.0) is held in its push; meanwhile the image's tag is pushed again with other content
    and B publishes hello 1.0.0 from it (A's lease deleted by hand). A's replay must not publish a second
    1.0.0 beside B's (its manifest has another name, the rootfs hash being in it): it stops, rolls back
    and deletes its own hello rootfs, keeping the objects B's manifests share with it (other's)."""
    stage = gcs_stage
    first, run_a = stage.start_held("first", "--retries", "1")
    drop_lease(stage.bucket_uri)
    gear, image = gear_and_image("acme", "hello")
    build_demo_image(stage.images, image, gear, data={"etc/rebuilt": b"the tag was pushed again\n"})
    second = stage.clone("second")
    assert stage.run_here(second) == 0, stage.log(second)
    stage.release_push()
    assert finish(run_a, stage, first) == 1, stage.log(first)
    assert "already holds gear acme/hello 1.0.0 with another rootfs" in stage.log(first)
    assert "rolled back" in stage.log(first) and "Traceback" not in stage.log(first)
    assert_consistent(stage)


@pytest.mark.parametrize("suffix", [".tgz", ".sbom.json"])
def test_an_object_deleted_before_the_push_lands_is_uploaded_again(local_stage: Stage, suffix: str) -> None:
    """Something that ignores the lease (an older tool, a person) deletes an object while the push is
    held: once the push is confirmed the run reads its manifests back and restores what is missing (a
    rootfs exported again; an SBOM made again from the rootfs in the bucket, the bytes its manifest pins)."""
    stage = local_stage
    checkout, run = stage.start_held("only")
    victim = sorted(name for name in stage.objects() if name.endswith(suffix))[0]
    (stage.tmp / "bucket" / victim).unlink()
    stage.release_push()
    assert finish(run, stage, checkout) == 0, stage.log(checkout)
    assert f"restored {victim}" in stage.log(checkout)
    assert_consistent(stage)


def test_a_second_run_in_the_same_work_tree_stops_at_once(local_stage: Stage) -> None:
    stage = local_stage
    checkout, run = stage.start_held("shared")
    second = subprocess.run([str(EXCHANGE), "process", "--repo", str(checkout), "--bucket", stage.bucket_uri,
                             "--oci-layout", str(stage.images), "--quiet"], capture_output=True, text=True,
                            timeout=DEADLINE, check=False)
    assert second.returncode == 2, second.stderr
    assert "another exchange process is running in this work tree" in second.stderr
    assert "Traceback" not in second.stderr
    stage.release_push()
    assert finish(run, stage, checkout) == 0, stage.log(checkout)
    assert_consistent(stage)


def test_git_index_lock_left_by_another_process_is_one_clear_line(local_stage: Stage) -> None:
    checkout = local_stage.clone("locked")
    (checkout / ".git" / "index.lock").touch()
    result = subprocess.run([str(EXCHANGE), "process", "--repo", str(checkout), "--bucket", local_stage.bucket_uri,
                             "--oci-layout", str(local_stage.images), "--quiet", "--cache-dir",
                             str(local_stage.tmp / "cache")], capture_output=True, text=True, timeout=DEADLINE,
                            env={**os.environ, "TMPDIR": str(local_stage.tmpdir)}, check=False)
    assert result.returncode == 2, result.stderr
    assert "another process is running git in this work tree" in result.stderr and "index.lock" in result.stderr
    assert "Traceback" not in result.stderr
    assert local_stage.objects() == {}, "nothing was uploaded"
    assert run_git(checkout, "status", "--porcelain") == ""


# --- killed runs, then a rerun in the same checkout ---------------------------------------------------------


def kill_then_rerun(stage: Stage, checkout: Path, run: subprocess.Popen[str], held_at: str | None = None) -> str:
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=DEADLINE)
    if held_at is not None:
        stage.release(held_at)  # the victim is dead; the rerun must not stop there
    assert stage.run_here(checkout) == 0, stage.log(checkout)
    assert run_git(checkout, "status", "--porcelain") == ""
    assert run_git(checkout, "rev-parse", "HEAD") == stage.remote_head()
    return stage.log(checkout)


def test_killed_at_export_then_rerun(local_stage: Stage) -> None:
    """Held at its export gate: the tarball is written beside its name in the run's work directory, not yet
    renamed; the lease is held. Killed there, the rerun breaks the dead run's lease and cleans up."""
    stage = local_stage
    checkout = stage.clone("exporting")
    stage.arm("export")
    run = stage.start(checkout)
    stage.wait_at("export", run)
    assert [p.name for p in stage.tmpdir.glob("exchange-process-*/*.tmp-*")], "a tarball half made"
    log = kill_then_rerun(stage, checkout, run, held_at="export")
    assert_consistent(stage)
    assert "the run that made it is gone" in log and "breaking the lease" in log


def test_killed_at_upload_then_rerun(local_stage: Stage) -> None:
    """Held at its upload gate, its data written to a partial upload in the bucket but not yet in place, the
    run is killed; the rerun removes the partial upload and publishes everything."""
    stage = local_stage
    checkout = stage.clone("uploading")
    stage.arm("upload")
    run = stage.start(checkout)
    stage.wait_at("upload", run)
    assert list((stage.tmp / "bucket").glob(".exchange-upload-*")), "a partial upload"
    log = kill_then_rerun(stage, checkout, run, held_at="upload")
    assert_consistent(stage)
    assert "removed the partial upload" in log


@pytest.mark.parametrize("push", ["lost", "landed"])
def test_killed_at_push_then_rerun(local_stage: Stage, push: str) -> None:
    """The run dies with its manifest commits made and its push held in the remote's hook. Either the
    push dies with it (the machine is lost) or it still lands; the rerun pushes what is missing (after
    checking the objects) or finds everything published, and never says "nothing to process" while
    the remote lacks the manifests."""
    stage = local_stage
    before = stage.remote_head()
    checkout, run = stage.start_held("pushing")
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=DEADLINE)
    hook_pid = int((stage.gates / "held" / "pid").read_text())
    if push == "lost":
        os.kill(hook_pid, signal.SIGKILL)  # the receive side dies too: the push never lands
    stage.release_push()
    if push == "lost":
        wait_for(lambda: not Path(f"/proc/{hook_pid}").exists(), "the held push is over")
        assert stage.remote_head() == before
    else:
        wait_for(lambda: stage.remote_head() != before, "the orphaned push lands")
    assert stage.run_here(checkout) == 0, stage.log(checkout)
    assert run_git(checkout, "rev-parse", "HEAD") == stage.remote_head()
    assert_consistent(stage)
    if push == "lost":
        log = stage.log(checkout)
        assert "2 manifest commit(s) of an earlier run never reached origin master" in log
        assert "pushed the earlier run's 2 manifest commit(s)" in log


def test_ctrl_c_in_a_terminal_rolls_back_exactly_as_sigterm_does(local_stage: Stage) -> None:
    """The terminal sends Ctrl-C's SIGINT to the whole foreground process group: to the run and, before,
    to every git it had started (GitPython's `cat-file --batch` kept open for reading trees included). The
    rollback then could not read the remote ("Broken pipe"), kept the run's objects and left orphans."""
    stage = local_stage
    before = stage.remote_head()
    checkout, run = stage.start_held("interrupted", "--jobs", "2", terminal_group=True)
    os.killpg(run.pid, signal.SIGINT)
    assert finish(run, stage, checkout) == 130, stage.log(checkout)
    stage.release_push()
    assert stage.remote_head() == before
    assert run_git(checkout, "rev-parse", "HEAD") == before
    assert_consistent(stage, published=0)
    assert "rolled back" in stage.log(checkout) and "Broken pipe" not in stage.log(checkout), stage.log(checkout)


def killed_with_its_push(stage: Stage) -> Path:
    """A run killed while its push is held, the receiving side killed too: its commits never land. Its
    checkout."""
    checkout, run = stage.start_held("pushing")
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=DEADLINE)
    os.kill(int((stage.gates / "held" / "pid").read_text()), signal.SIGKILL)
    stage.release_push()
    return checkout


def test_unpushed_commits_whose_objects_are_gone_are_rolled_back_and_processed_again(local_stage: Stage) -> None:
    stage = local_stage
    checkout = killed_with_its_push(stage)
    for name in stage.objects():  # the bucket lost them meanwhile (a clean-up, a mistaken delete)
        if name.endswith(".tgz"):
            (stage.tmp / "bucket" / name).unlink()
    assert stage.run_here(checkout) == 0, stage.log(checkout)
    assert_consistent(stage)
    log = stage.log(checkout)
    assert "rolled back the earlier run's 2 commit(s)" in log and "is not in the bucket" in log


def test_a_rolled_back_runs_objects_do_not_outlive_it_when_its_image_moved(local_stage: Stage) -> None:
    """The earlier run's commits are rolled back (one rootfs they reference is gone); meanwhile the other
    gear's tag moved, so the run after makes other objects for it. What the rolled-back commits alone
    referenced (that gear's rootfs and SBOM) must not stay in the bucket as orphans. Before, they did."""
    stage = local_stage
    checkout = killed_with_its_push(stage)
    earlier = set(stage.objects())
    (hello_tgz,) = [name for name in earlier if name.startswith("acme-hello-") and name.endswith(".tgz")]
    (stage.tmp / "bucket" / hello_tgz).unlink()
    gear, image = gear_and_image("acme", "other")
    build_demo_image(stage.images, image, gear, data={"etc/moved": b"the tag was pushed again\n"})
    assert stage.run_here(checkout) == 0, stage.log(checkout)
    assert_consistent(stage)
    log = stage.log(checkout)
    assert "rolled back the earlier run's 2 commit(s)" in log, log
    gone = sorted(name for name in earlier if name.startswith("acme-other-"))
    assert len(gone) == 2 and not set(gone) & set(stage.objects())
    (line,) = [line for line in log.splitlines() if "deleted what only they referenced: " in line]
    assert set(gone) <= set(line.partition(": ")[2].split(", ")), line


# --- a maintainer cleaning the bucket while CI publishes -----------------------------------------------


def delete_orphans_args(stage: Stage, checkout: Path) -> list[str]:
    return ["verify-storage", "--repo", str(checkout), "--bucket", stage.bucket_uri, "--delete-orphans", "--yes"]


def delete_orphans(stage: Stage, checkout: Path) -> subprocess.Popen[str]:
    """The clean-up in a process of its own, for a test that runs it while a publishing run is held."""
    log = (stage.tmp / f"{checkout.name}.log").open("a")
    return subprocess.Popen([str(EXCHANGE), *delete_orphans_args(stage, checkout)], stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def signing_key(stage: Stage) -> Path:
    """A key committed to the exchange (.exchange/keys/) and pushed; the private key stays outside."""
    keyholder = stage.clone("keyholder")
    key = stage.tmp / "secrets" / "exchange.key"
    made = CliRunner().invoke(cli, ["keys", "init", "--repo", str(keyholder), "--generate", str(key)])
    assert made.exit_code == 0, made.output
    run_git(keyholder, "push", "-q", "origin", "master")
    return key


def remote_envelopes(stage: Stage) -> dict[str, str]:
    """Envelope object -> its sha256 pinned by a manifest on the remote's master."""
    return _remote_pinned(stage, "attestation")


def remote_sboms(stage: Stage) -> dict[str, str]:
    """SBOM object -> its sha256 pinned by a manifest on the remote's master."""
    return _remote_pinned(stage, "sbom")


def _remote_pinned(stage: Stage, prefix: str) -> dict[str, str]:
    listing = run_git(stage.remote, "ls-tree", "-r", "--name-only", "master", "manifests/").splitlines()
    blocks = [json.loads(run_git(stage.remote, "show", f"master:{path}"))["exchange"] for path in listing
              if path.endswith(".json")]
    return {block[f"{prefix}-url"].rsplit("/", 1)[1]: block[f"{prefix}-sha256"] for block in blocks
            if f"{prefix}-url" in block}


def test_delete_orphans_waiting_for_a_publishing_run_keeps_what_it_pushed(local_stage: Stage) -> None:
    """The maintainer's checkout is as fresh as it can be when `verify-storage --delete-orphans` starts;
    CI is pushing (holding the lease), so the clean-up waits. Once CI's push lands and the lease is free,
    the maintainer's manifests are older than the remote's: the objects CI just published are not in
    them, yet a pushed manifest references them."""
    stage = local_stage
    record_owner(stage)  # an exchange that published before: deleting needs the bucket's ownership record
    maintainer = stage.clone("maintainer")
    ci, run = stage.start_held("ci")
    cleanup = delete_orphans(stage, maintainer)
    wait_for(lambda: "waiting for the lease" in stage.log(maintainer), "the clean-up waits for the lease",
             running=cleanup)
    stage.release_push()
    assert finish(run, stage, ci) == 0, stage.log(ci)
    assert finish(cleanup, stage, maintainer) == 0, stage.log(maintainer)
    assert_consistent(stage)
    assert stage.log(maintainer).count("this checkout is behind") == 2 * len(GEARS), stage.log(maintainer)  # rootfs and SBOM


def test_delete_orphans_in_a_checkout_behind_the_remote_keeps_what_the_remote_references(gcs_stage: Stage) -> None:
    """Signed: the envelopes CI published beside its artifacts are referenced too."""
    stage = gcs_stage
    key = signing_key(stage)
    maintainer = stage.clone("maintainer")  # not pulled since: it has none of the manifests CI pushes
    ci = stage.clone("ci")
    assert stage.run_here(ci, "--sign-key", str(key)) == 0, stage.log(ci)
    assert stage.invoke_here(maintainer, delete_orphans_args(stage, maintainer)) == 0, stage.log(maintainer)
    assert sorted(stage.objects()) == sorted([*remote_references(stage), *remote_envelopes(stage),
                                              *remote_sboms(stage)])
    assert stage.log(maintainer).count("this checkout is behind") == 3 * len(GEARS), stage.log(maintainer)  # rootfs, envelope, SBOM


def test_delete_orphans_deletes_nothing_when_the_remote_cannot_be_read(local_stage: Stage) -> None:
    stage = local_stage
    ci = stage.clone("ci")
    assert stage.run_here(ci) == 0, stage.log(ci)
    maintainer = stage.clone("maintainer")
    run_git(maintainer, "reset", "-q", "--hard", "HEAD~2")  # behind, as if cloned before CI published
    stage.remote.rename(stage.tmp / "moved-away.git")  # the same remote, which cannot be read now
    before = stage.objects()
    assert stage.invoke_here(maintainer, delete_orphans_args(stage, maintainer)) == 2, stage.log(maintainer)
    assert stage.objects() == before
    (line,) = [line for line in stage.log(maintainer).splitlines() if line.startswith("error: ")]
    assert line.startswith("error: the manifests at origin master cannot be read ("), line


def test_an_envelope_deleted_before_the_push_lands_is_put_back(local_stage: Stage) -> None:
    """As test_an_object_deleted_before_the_push_lands_is_uploaded_again, for a signed envelope: signing
    again would not give the bytes the manifest pins, so the run puts back the very bytes it made."""
    stage = local_stage
    key = signing_key(stage)
    checkout, run = stage.start_held("signed", "--sign-key", str(key))
    victim = sorted(name for name in stage.objects() if name.endswith(".intoto.jsonl"))[0]
    (stage.tmp / "bucket" / victim).unlink()
    stage.release_push()
    assert finish(run, stage, checkout) == 0, stage.log(checkout)
    assert f"restored {victim}" in stage.log(checkout)
    assert len(remote_envelopes(stage)) == len(GEARS)
    assert_consistent(stage)  # the envelopes with the sha256 their manifests pin


def test_push_lost_to_a_run_that_reused_our_envelopes_deletes_none_of_them(gcs_stage: Stage) -> None:
    """test_push_lost_to_a_run_that_reused_our_objects_deletes_none_of_them, signed: B reuses A's artifacts and A's envelopes (the same build, signed by the same key)
    and pushes manifests pinning them; A's rollback must keep the envelopes too, not only the artifacts."""
    stage = gcs_stage
    key = signing_key(stage)
    first, run_a = stage.start_held("first", "--retries", "0", "--sign-key", str(key))
    drop_lease(stage.bucket_uri)
    second = stage.clone("second")
    assert stage.run_here(second, "--sign-key", str(key)) == 0, stage.log(second)
    stage.release_push()
    assert finish(run_a, stage, first) == 2, stage.log(first)
    envelopes = remote_envelopes(stage)
    assert len(envelopes) == len(GEARS)
    objects = stage.objects()
    for name, sha256 in envelopes.items():
        assert name in objects, f"a pushed manifest pins the envelope {name}, which is not in the bucket"
        assert hashlib.sha256(objects[name]).hexdigest() == sha256
    assert sorted(objects) == sorted([*remote_references(stage), *envelopes, *remote_sboms(stage)])


def test_killed_while_restoring_after_the_push_then_rerun(local_stage: Stage) -> None:
    """Two faults at once: something that ignores the lease deletes an object while the push is held, and
    the machine dies while the run, its push landed, is uploading that object again. The pushed manifest
    references a missing object; the rerun must finish the check the dead run started."""
    stage = local_stage
    checkout, run = stage.start_held("restoring")
    bucket = stage.tmp / "bucket"
    victim = sorted(p.name for p in bucket.glob("*.tgz"))[0]
    (bucket / victim).unlink()
    before = stage.remote_head()
    stage.arm("upload")  # the uploads before the push are done: the next one is the restore
    stage.release_push()
    stage.wait_at("upload", run)
    assert stage.remote_head() != before, "the push landed before the restore began"
    assert list(bucket.glob(".exchange-upload-*")), "the object is being uploaded again"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=DEADLINE)
    stage.release("upload")
    assert victim not in stage.objects()
    assert stage.run_here(checkout) == 0, stage.log(checkout)
    assert_consistent(stage)
    assert f"restored {victim}" in stage.log(checkout)

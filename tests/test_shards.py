"""Fan-out and fan-in: shards as separate processes (one clone each, as on separate CI machines), the
GCS emulator as the bucket, a bare remote; the finalize step publishes or removes every shard's objects.
The shards run at once, in processes of their own, where what they publish together is the test; where
the test is what finalize does with their records, they run one after another in the test's process."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.export import ExportOptions
from exchange_cli.process.image_sizes import image_sizes, registry_image_size
from exchange_cli.process.plan import SpecJob
from exchange_cli.process.shards import Shard, assign, share_of
from exchange_cli.specs import locate
from tests.infra.gcs import gcs_objects
from tests.infra.gitrepo import run_git
from tests.infra.shards import GEARS, FanOut


def manifests_of(checkout: Path) -> dict[str, bytes]:
    return {p.relative_to(checkout).as_posix(): p.read_bytes() for p in sorted((checkout / "manifests").glob("*/*.json"))}


def test_three_shards_then_finalize_publish_what_one_machine_would(fanout: FanOut, gcs_emulator) -> None:
    start = fanout.remote_head()
    fanout.run_shards()
    records = fanout.records()
    assert sorted(records) == ["shard-1-of-3.json", "shard-2-of-3.json", "shard-3-of-3.json"]
    recorded = sorted(entry["spec"] for record in records.values() for entry in record["artifacts"])
    assert recorded == [f"gears/acme/{name}.json" for name in GEARS], "each spec exported by exactly one shard"
    assert sorted(len(record["artifacts"]) for record in records.values()) == [1, 2, 2]
    assert len(gcs_objects(fanout.bucket_uri)) == 10  # five rootfs, each with its SBOM
    assert fanout.remote_head() == start, "shards never push"
    for index in (1, 2, 3):  # a shard publishes its record: no push, so nothing to confirm
        report = json.loads((fanout.tmp / "reports" / f"cache-{index}" / f"shard-{index}-of-3.json").read_text())
        assert report["stages"] == ["recover", "plan", "check", "artifacts", "publish"]

    result = fanout.finalize("--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pushed"]
    report = json.loads((fanout.tmp / "reports" / "cache-finalize" / "finalize.json").read_text())
    assert report["stages"] == ["recover", "plan", "artifacts", "publish", "confirm"], "the shards checked"
    subjects = run_git(fanout.remote, "log", "--format=%s", f"{start}..master").splitlines()
    assert subjects == [f"Process gear acme/{name} 1.0.0" for name in reversed(GEARS)], "plan order, one writer"

    # The same commit on one machine, into its own bucket and remote: the same manifests and objects.
    gcs_emulator.create_bucket("single-machine")
    single_remote = fanout.tmp / "single.git"
    run_git(fanout.tmp, "clone", "-q", "--bare", str(fanout.remote), str(single_remote))
    run_git(single_remote, "update-ref", "refs/heads/master", start)
    single = fanout.clone("single", single_remote)
    result = CliRunner().invoke(cli, fanout.common_args(single, "cache-single", "gs://single-machine"))
    assert result.exit_code == 0, result.output
    assert manifests_of(single) == manifests_of(fanout.repo.root)
    assert gcs_objects("gs://single-machine") == gcs_objects(fanout.bucket_uri)
    assert (single / ".sentinel").read_text() == (fanout.repo.root / ".sentinel").read_text()


def test_finalize_with_nothing_to_do_pushes_nothing(fanout: FanOut) -> None:
    fanout.run_shards_here()
    assert fanout.finalize().exit_code == 0
    head = fanout.remote_head()
    for record in fanout.shard_dir.iterdir():
        record.unlink()
    fanout.run_shards_here()  # now at the processed commit: nothing changed since .sentinel
    assert all(not record["artifacts"] for record in fanout.records().values())
    result = fanout.finalize()
    assert result.exit_code == 0, result.output
    assert "nothing to process" in result.stdout
    assert fanout.remote_head() == head


def assert_finalize_fails_cleanly(fanout: FanOut, message: str) -> None:
    start, local = fanout.remote_head(), fanout.repo.git("rev-parse", "HEAD")
    result = fanout.finalize()
    assert result.exit_code == 1, result.output
    assert "nothing is published" in result.output and message in result.output
    assert "rolled back" in result.output
    assert gcs_objects(fanout.bucket_uri) == {}, "every shard's objects are removed"
    assert fanout.remote_head() == start
    assert fanout.repo.git("rev-parse", "HEAD") == local and fanout.repo.git("status", "--porcelain") == ""
    report = json.loads((fanout.tmp / "reports" / "cache-finalize" / "finalize.json").read_text())
    assert report["result"] == "failed" and message in report["error"]
    created = {created["name"] for record in fanout.records().values() for created in record["created-objects"]}
    assert sorted(report["rollback"]["deleted"]) == sorted(created)


def test_missing_shard_fails_finalize_and_removes_the_other_shards_objects(fanout: FanOut) -> None:
    fanout.run_shards_here((1, 3))
    assert len(gcs_objects(fanout.bucket_uri)) == 6  # three rootfs and their SBOMs
    assert_finalize_fails_cleanly(fanout, "no record from shard 2/3")


def test_spec_recorded_twice_fails_finalize(fanout: FanOut) -> None:
    fanout.run_shards_here()
    first, second = fanout.shard_dir / "shard-1-of-3.json", fanout.shard_dir / "shard-2-of-3.json"
    one, two = json.loads(first.read_text()), json.loads(second.read_text())
    two["artifacts"].append(one["artifacts"][0])
    second.write_text(json.dumps(two))
    assert_finalize_fails_cleanly(fanout, f"{one['artifacts'][0]['spec']}: recorded 2 times")


def test_same_shard_recorded_twice_fails_finalize(fanout: FanOut) -> None:
    fanout.run_shards_here()
    (fanout.shard_dir / "shard-2-of-3-rerun.json").write_bytes((fanout.shard_dir / "shard-2-of-3.json").read_bytes())
    assert_finalize_fails_cleanly(fanout, "shard 2/3 has 2 records")


def test_object_missing_from_the_bucket_fails_finalize(fanout: FanOut) -> None:
    from google.cloud import storage

    fanout.run_shards_here()
    artifact = fanout.records()["shard-1-of-3.json"]["artifacts"][0]["artifact"]
    client = storage.Client.create_anonymous_client()
    client.project = "test"
    client.bucket(fanout.bucket_uri.removeprefix("gs://")).blob(artifact).delete()
    assert_finalize_fails_cleanly(fanout, f"{artifact} is not in the bucket")


def test_finalize_rolls_back_every_shard_when_the_push_fails(fanout: FanOut) -> None:
    fanout.run_shards_here()
    hook = fanout.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'rejected by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    start = fanout.repo.git("rev-parse", "HEAD")
    result = fanout.finalize()
    assert result.exit_code == 2 and "rejected by policy" in result.output
    assert "deleted 10 object(s)" in result.output  # five rootfs and their SBOMs
    assert gcs_objects(fanout.bucket_uri) == {}
    assert fanout.repo.git("rev-parse", "HEAD") == start


def test_shard_options_are_checked(fanout: FanOut) -> None:
    base = fanout.common_args(fanout.repo.root, "cache-x")
    cases = {("--shard", "4/3", "--shard-dir", str(fanout.shard_dir)): "use I/N with 1 <= I <= N",
             ("--shard", "1/3"): "--shard needs --shard-dir",
             ("--shard-dir", str(fanout.shard_dir)): "CIRCLE_NODE_INDEX",
             ("--finalize", str(fanout.shard_dir), "--shard", "1/2"): "cannot be a shard"}
    for extra, message in cases.items():
        result = CliRunner().invoke(cli, [*base, *extra], env={"CIRCLE_NODE_INDEX": "", "CIRCLE_NODE_TOTAL": ""})
        assert result.exit_code == 2 and message in result.output, (extra, result.output)


def test_dry_run_shows_a_shards_share_only(fanout: FanOut) -> None:
    result = CliRunner().invoke(cli, [*fanout.common_args(fanout.repo.root, "cache-dry"), "--dry-run", "--shard", "3/3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("would process") == 1
    assert "1 spec(s) to process in shard 3/3 (of 5 in all)" in result.stdout


# The split itself ---------------------------------------------------------------------------------

def jobs(*names: str) -> list[SpecJob]:
    return [SpecJob(f"gears/acme/{name}.json", locate(f"gears/acme/{name}.json"), name, "1", f"r/{name}:1", {})
            for name in names]


def test_known_sizes_balance_the_shards_by_bytes() -> None:
    planned = jobs("a", "b", "c", "d", "e", "f")
    sizes = {"gears/acme/a.json": 1000, **{f"gears/acme/{name}.json": 100 for name in "bcdef"}}
    assignment = assign(planned, 2, sizes)
    assert [job.name for job in share_of(planned, Shard(1, 2), assignment)] == ["a"], "the big image alone"
    assert [job.name for job in share_of(planned, Shard(2, 2), assignment)] == ["b", "c", "d", "e", "f"]
    assert assign(list(reversed(planned)), 2, sizes) == assignment, "the same split whatever the input order"


def test_unknown_sizes_deal_round_robin_in_path_order() -> None:
    planned = jobs("a", "b", "c", "d", "e")
    assignment = assign(planned, 3, {"gears/acme/a.json": 100})
    assert [assignment[job.relative_path] for job in planned] == [1, 2, 3, 1, 2]


def test_shard_from_circleci_counts_from_one() -> None:
    assert Shard.from_circleci({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "4"}) == Shard(1, 4)
    assert Shard.from_circleci({}) is None
    assert Shard.parse(" 2/5 ") == Shard(2, 5)


def test_image_sizes_come_from_the_registrys_manifests(registry) -> None:
    small, large = gzip.compress(b"x" * 10), gzip.compress(os.urandom(50_000))  # only sizes are read
    registry.push_image("sizes/one", "1", [small, large])
    options = ExportOptions(insecure_registries=(registry.host,))
    assert registry_image_size(f"{registry.host}/sizes/one:1", options) == len(small) + len(large)
    assert registry_image_size(f"{registry.host}/sizes/missing:1", options) is None
    planned = [SpecJob("gears/acme/x.json", locate("gears/acme/x.json"), "x", "1", f"{registry.host}/sizes/one:1", {})]
    assert image_sizes(planned, ExportOptions(oci_layout=Path("/nowhere"))) == {"gears/acme/x.json": None}

"""Two versions of one entry whose images flatten to a byte-identical rootfs (a spec-only change over the
same image): manifests are named by the rootfs hash, not the version, so both would map to one path.
Every path that writes manifests (one machine, signed, finalize, --retries replay, resuming an earlier
run) must keep every version: the first keeps the old pipeline's name, a later one gets
``<org>-<stem>@<version>-sha384-<hex>.json``, and every reader understands it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gcs import drop_lease
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, run_git
from tests.infra.process_world import World, process
from tests.infra.provenance import Signed, independent_verify
from tests.infra.stages import Stage, finish

HELLO_IMAGE = "registry.example.org/acme/hello:1.0.0"
# The demo image embeds 1.0.0's /flywheel/v0/manifest.json; a gear image without one needs no skip.
SAME_IMAGE = ("--skip-check", "rootfs-manifest-mismatch")


def hello_on_the_same_image(repo: ExchangeRepo, version: str, **changes: str) -> None:
    repo.write("gears/acme/hello.json",
               example_gear(name="hello", version=version, custom={"gear-builder": {"image": HELLO_IMAGE}}, **changes))
    repo.commit(f"hello {version}")


def hello_manifests(repo_root: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())
            for p in sorted((repo_root / "manifests" / "acme").glob("acme-hello*.json"))}


def remote_manifests(remote: Path) -> dict[str, dict]:
    """File name -> document, for every manifest on the remote's master."""
    paths = run_git(remote, "ls-tree", "-r", "--name-only", "master", "manifests/").splitlines()
    return {Path(p).name: json.loads(run_git(remote, "show", f"master:{p}")) for p in paths if p.endswith(".json")}


def versions_by_name(found: dict[str, dict], kind: str = "gear", key: str = "version") -> dict[str, str]:
    return {name: document[kind][key] for name, document in found.items()}


def cli_json(*args: str) -> dict | list:
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def clone(world: World, tmp_path: Path, name: str) -> World:
    """Another checkout of the same exchange (another CI machine), same bucket and images."""
    path = tmp_path / name
    run_git(tmp_path, "clone", "-q", str(world.remote), str(path))
    run_git(path, "config", "user.name", "Other Machine")
    run_git(path, "config", "user.email", "other@exchange.invalid")
    return World(ExchangeRepo(path), world.remote, world.images, world.bucket, tmp_path / f"cache-{name}")


# --- the names ----------------------------------------------------------------------------------------


def test_the_qualified_name_reads_back_and_old_names_stay_as_they_are() -> None:
    from exchange_cli.manifests import ManifestFileName, qualified_manifest_path, version_in_name

    hex_digest = "ab" * 48
    legacy = f"manifests/acme/acme-c-pac-sha384-{hex_digest}.json"
    qualified = qualified_manifest_path(legacy, "1.0 beta/2")
    assert qualified == f"manifests/acme/acme-c-pac@1.0%20beta%2F2-sha384-{hex_digest}.json"
    assert ManifestFileName.parse(Path(qualified).name, "1.0 beta/2") == \
        ManifestFileName("acme-c-pac", "1.0 beta/2", "sha384", hex_digest)
    # The old pipeline's names are read as they always were, even when a stem holds '@'.
    assert ManifestFileName.parse(Path(legacy).name, "1.0") == \
        ManifestFileName("acme-c-pac", None, "sha384", hex_digest)
    odd = f"acme-tool@2-sha384-{hex_digest}.json"
    assert ManifestFileName.parse(odd, "1.0").base == "acme-tool@2"
    # Different versions never give one name; plain versions are written as they are.
    assert version_in_name("1.0.0+build.7_rc~1") == "1.0.0+build.7_rc~1"
    assert len({version_in_name(v) for v in ("1.0 beta", "1.0%20beta", "1.0_beta", "1.0@beta", "1.0/beta")}) == 5


# --- one machine ---------------------------------------------------------------------------------------


def test_a_later_version_with_the_same_rootfs_gets_its_own_manifest_and_no_version_is_lost(process_world: World) -> None:
    assert process(process_world).exit_code == 0
    ((legacy_name, first),) = hello_manifests(process_world.repo.root).items()
    legacy_bytes = (process_world.repo.root / "manifests/acme" / legacy_name).read_bytes()
    objects = process_world.bucket_objects()
    hello_on_the_same_image(process_world.repo, "1.1.0")
    result = process(process_world, *SAME_IMAGE)
    assert result.exit_code == 0, result.output

    found = hello_manifests(process_world.repo.root)
    qualified_name = legacy_name.replace("acme-hello-", "acme-hello@1.1.0-", 1)
    assert versions_by_name(found) == {legacy_name: "1.0.0", qualified_name: "1.1.0"}
    assert (process_world.repo.root / "manifests/acme" / legacy_name).read_bytes() == legacy_bytes, "1.0.0 is untouched"
    assert found[qualified_name]["exchange"]["rootfs-url"] == first["exchange"]["rootfs-url"], "one shared object"
    assert process_world.bucket_objects() == objects, "nothing new in the bucket: the same bytes"
    changes = process_world.repo.git("show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(changes) == ["A\tmanifests/acme/" + qualified_name, "M\t.sentinel"], "added, nothing modified"

    repo = ["--repo", str(process_world.repo.root)]
    (hello,) = [e for e in cli_json("list", *repo) if e["name"] == "hello"]
    assert hello["entry"] == "acme/hello"
    unsigned = {"processed": True, "state": "processed", "signed": False, "key-id": None, "yanked": None}
    assert hello["versions"] == [{"version": "1.1.0", **unsigned}, {"version": "1.0.0", **unsigned}]
    assert cli_json("show", "acme/hello@1.0.0", *repo)["manifest"] == f"manifests/acme/{legacy_name}"
    assert cli_json("show", "acme/hello", *repo)["manifest"] == f"manifests/acme/{qualified_name}"
    history = [row for row in cli_json("history", *repo) if row["name"] == "hello"]
    assert [(row["version"], row["entry"]) for row in history] == [("1.1.0", "acme/hello"), ("1.0.0", "acme/hello")]
    legacy_index = json.loads(CliRunner().invoke(cli, ["index", "--format", "legacy", *repo]).stdout)
    (group,) = [g for g in legacy_index if g[0]["name"] == "hello"]
    assert [spec["version"] for spec in group] == ["1.1.0", "1.0.0"]
    catalog = json.loads(CliRunner().invoke(cli, ["index", *repo]).stdout)
    (entry,) = [e for e in catalog["entries"] if e["name"] == "hello"]
    assert [(v["version"], v["rootfs-hash"]) for v in entry["versions"]] == \
        [("1.1.0", first["exchange"]["rootfs-hash"]), ("1.0.0", first["exchange"]["rootfs-hash"])]
    fetched = cli_json("fetch", "acme/hello@1.0.0", "--output-dir", str(process_world.bucket.parent / "fetched"), *repo)
    assert fetched["verified"] and fetched["rootfs-hash"] == first["exchange"]["rootfs-hash"]
    audit = cli_json("verify-storage", "--bucket", process_world.bucket.as_uri(), "--deep", *repo)
    assert audit["ok"] and not audit["orphans"] and not audit["missing"]

    # Removing one version never takes the object the other still references.
    removed = cli_json("remove", "acme/hello@1.0.0", "--purge", "--bucket", process_world.bucket.as_uri(), "-y", *repo)
    assert removed["removed"] == [f"manifests/acme/{legacy_name}"] and removed["deleted"] == []
    assert process_world.bucket_objects() == objects
    assert cli_json("verify-storage", "--bucket", process_world.bucket.as_uri(), *repo)["ok"]


def test_a_descriptor_update_over_the_same_container_keeps_both_versions(process_world: World) -> None:
    """The common case needs no skipped check: a boutique's new tool-version, same container."""
    image = "registry.example.org/acme/wc:1.0.0"
    build_demo_image(process_world.images, image, example_boutique(**{"container-image": {"type": "docker", "image": image}}))
    for version in ("1.0.0", "2.0 beta/2"):
        process_world.repo.write("boutiques/acme/word-count.json", example_boutique(
            **{"container-image": {"type": "docker", "image": image}, "tool-version": version}))
        process_world.repo.commit(f"word-count {version}")
        result = process(process_world)
        assert result.exit_code == 0, result.output
    found = {p.name: json.loads(p.read_text())["boutique"]["tool-version"]
             for p in (process_world.repo.root / "manifests/acme").glob("acme-word-count*.json")}
    assert sorted(found.values()) == ["1.0.0", "2.0 beta/2"]
    (qualified,) = [name for name, version in found.items() if version == "2.0 beta/2"]
    assert qualified.startswith("acme-word-count@2.0%20beta%2F2-sha384-")
    (entry,) = [e for e in cli_json("list", "--repo", str(process_world.repo.root)) if e["name"] == "word-count"]
    assert entry["entry"] == "acme/word-count", "the qualified name is read as the same entry"
    assert [v["version"] for v in entry["versions"]] == ["2.0 beta/2", "1.0.0"]


def test_a_manifest_already_at_the_place_is_never_replaced(process_world: World, tmp_path: Path) -> None:
    """An old pipeline's manifest (a number for its version) already holds the name this rootfs gets."""
    tarball = tmp_path / "hello.tgz"
    assert CliRunner().invoke(cli, ["export", f"oci:{process_world.images}:{HELLO_IMAGE}", "-o", str(tarball),
                                    "--quiet"]).exit_code == 0
    hex_digest = hashlib.sha384(tarball.read_bytes()).hexdigest()
    old = f"manifests/acme/acme-hello-sha384-{hex_digest}.json"
    process_world.repo.write(old, {"gear": example_gear(name="hello", version=1), "exchange": {
        "git-commit": "b" * 40, "rootfs-hash": f"sha384:{hex_digest}", "rootfs-url": f"gs://old/{Path(old).stem}.tgz"}})
    process_world.repo.commit("an old manifest")
    process_world.repo.git("push", "-q", "origin", "master")
    old_bytes = (process_world.repo.root / old).read_bytes()
    result = process(process_world)
    assert result.exit_code == 0, result.output
    assert (process_world.repo.root / old).read_bytes() == old_bytes
    assert versions_by_name(hello_manifests(process_world.repo.root)) == {
        Path(old).name: 1, f"acme-hello@1.0.0-sha384-{hex_digest}.json": "1.0.0"}


# --- signed, and at finalize -------------------------------------------------------------------------


def envelope_statement(signed: Signed, block: dict) -> dict:
    envelope = signed.world.bucket / unquote(Path(block["attestation-url"]).name)
    provenance = envelope.read_bytes().splitlines()[0]  # the SBOM statement's envelope follows it
    return independent_verify(provenance, signed.signer.public_key.pem)


def assert_both_versions_signed(signed: Signed, envelopes_before: dict[str, bytes]) -> None:
    world = signed.world
    found = hello_manifests(world.repo.root)
    assert sorted(versions_by_name(found).values()) == ["1.0.0", "1.1.0"]
    (legacy_name,) = [name for name in found if name.startswith("acme-hello-sha384-")]
    qualified_name = legacy_name.replace("acme-hello-", "acme-hello@1.1.0-", 1)
    first, second = found[legacy_name]["exchange"], found[qualified_name]["exchange"]
    assert unquote(Path(second["attestation-url"]).name) == f"{Path(qualified_name).stem}.tgz.intoto.jsonl"
    assert Path(first["attestation-url"]).name == Path(first["rootfs-url"]).name + ".intoto.jsonl"
    for name, content in envelopes_before.items():
        assert (world.bucket / name).read_bytes() == content, "1.0.0's envelope is untouched"
    statement = envelope_statement(signed, second)
    assert statement["subject"] == envelope_statement(signed, first)["subject"], "one artifact, two attestations"
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["spec"]["version"] == "1.1.0"
    assert second["sbom-url"] == first["sbom-url"], "one rootfs, one SBOM, signed in each version's envelope"
    for version in ("1.0.0", "1.1.0"):
        verified = signed.verify(f"acme/hello@{version}")
        assert verified.exit_code == 0, verified.output
    audit = cli_json("verify-storage", "--bucket", world.bucket.as_uri(), "--deep", "--repo", str(world.repo.root))
    assert audit["ok"] and not audit["orphans"] and not audit["unsigned-manifests"]
    assert audit["envelopes-checked"] == 3, "1.0.0, 1.1.0 and other 2.0.0: one envelope each"


def envelopes(world: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in world.bucket.glob("*.intoto.jsonl")}


def test_signed_versions_sharing_a_rootfs_each_get_their_own_envelope(signed_process: Signed) -> None:
    assert signed_process.process().exit_code == 0
    before = envelopes(signed_process.world)
    hello_on_the_same_image(signed_process.world.repo, "1.1.0")
    result = signed_process.process(*SAME_IMAGE)
    assert result.exit_code == 0, result.output
    assert_both_versions_signed(signed_process, before)


def test_finalize_places_and_signs_a_version_sharing_its_rootfs(signed_process: Signed, tmp_path: Path) -> None:
    world = signed_process.world
    assert signed_process.process().exit_code == 0
    before = envelopes(world)
    hello_on_the_same_image(world.repo, "1.1.0")
    world.repo.git("push", "-q", "origin", "master")
    shard = clone(world, tmp_path, "shard")
    records = tmp_path / "records"
    shard_run = CliRunner().invoke(cli, shard.args("--shard", "1/1", "--shard-dir", str(records), *SAME_IMAGE,
                                                   "--sign-key", str(signed_process.key_file)))
    assert shard_run.exit_code == 0, shard_run.output
    result = signed_process.process("--finalize", str(records), *SAME_IMAGE)
    assert result.exit_code == 0, result.output
    assert_both_versions_signed(signed_process, before)


# --- replays: another run moved the remote -----------------------------------------------------------


def test_a_replay_keeps_a_version_whose_place_another_version_took(gcs_stage: Stage) -> None:
    """A (hello 1.0.0) is held in its push; meanwhile B, at a later commit (hello 1.1.0 on the same image),
    publishes its manifest at the old name (A's lease was deleted by hand, so B does not wait). A's push
    loses the race and replays with --retries: its manifest moves to the version-qualified name instead
    of being skipped as "already pushed"."""
    stage = gcs_stage
    first, run_a = stage.start_held("first", "--retries", "1")
    drop_lease(stage.bucket_uri)
    editor = stage.clone("editor")
    hello_on_the_same_image(ExchangeRepo(editor), "1.1.0")
    run_git(editor, "push", "-q", "origin", "master")
    second = stage.clone("second")
    assert stage.run_here(second, *SAME_IMAGE) == 0, stage.log(second)
    stage.release_push()
    assert finish(run_a, stage, first) == 0, stage.log(first)

    published = remote_manifests(stage.remote)
    hello = {name: document["gear"]["version"] for name, document in published.items() if "acme-hello" in name}
    (legacy,) = [name for name in hello if name.startswith("acme-hello-sha384-")]
    assert hello == {legacy: "1.1.0", legacy.replace("acme-hello-", "acme-hello@1.0.0-", 1): "1.0.0"}
    assert sorted(name.split("-sha384-")[0] for name in published) == ["acme-hello", "acme-hello@1.0.0", "acme-other"]
    assert "acme-other-sha384-" in stage.log(first) and "already pushed by another run" in stage.log(first), \
        "the same publication (other 1.0.0) is still skipped"
    assert run_git(first, "rev-parse", "HEAD") == stage.remote_head()


def unpushed_run(world: World, tmp_path: Path) -> None:
    """A run whose manifest commits never reached origin (as if killed in its push): it pushed them to
    another remote instead, so origin lacks them and the next run in this checkout resumes them."""
    side = tmp_path / "side.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(world.remote), str(side))
    world.repo.git("remote", "add", "side", str(side))
    result = process(world, "--remote", "side")
    assert result.exit_code == 0, result.output


def test_resuming_an_earlier_run_keeps_a_version_whose_place_another_version_took(process_world: World,
                                                                                   tmp_path: Path) -> None:
    unpushed_run(process_world, tmp_path)  # hello 1.0.0 and other 2.0.0, committed here, not on origin
    other = clone(process_world, tmp_path, "other")
    hello_on_the_same_image(other.repo, "1.1.0")
    other.repo.git("push", "-q", "origin", "master")
    assert process(other, *SAME_IMAGE).exit_code == 0  # publishes hello 1.1.0 at the old name
    result = process(process_world)
    assert result.exit_code == 0, result.output
    published = remote_manifests(process_world.remote)
    assert sorted(versions_by_name({n: d for n, d in published.items() if "acme-hello" in n}).values()) == \
        ["1.0.0", "1.1.0"]
    assert any(name.startswith("acme-hello@1.0.0-sha384-") for name in published)
    assert process_world.repo.git("rev-parse", "HEAD") == process_world.remote_head()


def test_a_resumed_run_replayed_on_a_moved_remote_leaves_the_sentinel_on_the_remotes_history(
        process_world: World, tmp_path: Path) -> None:
    """The earlier run's commits are replayed on a remote that moved: .sentinel must still name a commit
    the remote has (the one that run processed), never the earlier run's own commit, which the replay
    drops, so a fresh clone can still select "changed since .sentinel"."""
    processed = process_world.repo.git("rev-parse", "HEAD")
    unpushed_run(process_world, tmp_path)  # hello 1.0.0 and other 2.0.0, committed here, not on origin
    other = clone(process_world, tmp_path, "other")
    other.repo.write("NOTES.md", "someone else's commit, pushed meanwhile\n")
    other.repo.commit("notes")
    other.repo.git("push", "-q", "origin", "master")
    result = process(process_world)
    assert result.exit_code == 0, result.output
    assert "pushed the earlier run's 2 manifest commit(s)" in result.output
    assert run_git(process_world.remote, "show", "master:.sentinel") == processed
    fresh = clone(process_world, tmp_path, "fresh")
    assert process(fresh).exit_code == 0 and fresh.repo.git("rev-parse", "HEAD") == process_world.remote_head()


def test_a_rival_publication_under_a_hostile_path_is_named_on_one_line(process_world: World, tmp_path: Path) -> None:
    """The rival manifest's path is the remote's text: a directory whose name holds a line break and a
    terminal escape must not forge a line of its own, nor reach the terminal, in the run's one-line error."""
    loser = clone(process_world, tmp_path, "loser")
    winner = clone(process_world, tmp_path, "winner")
    assert process(winner).exit_code == 0
    (published,) = (winner.repo.root / "manifests" / "acme").glob("acme-hello-sha384-*.json")
    document = json.loads(published.read_text())
    document["exchange"]["rootfs-hash"] = "sha384:" + "ab" * 48  # another rootfs for hello 1.0.0
    hostile = winner.repo.root / "manifests" / "acme" / "x\nerror: forged \x1b[2K"
    hostile.mkdir()
    (hostile / f"acme-hello-sha384-{'ab' * 48}.json").write_text(json.dumps(document))
    published.unlink()
    winner.repo.git("add", "-A")
    winner.repo.commit("hello 1.0.0 again, elsewhere")
    winner.repo.git("push", "-q", "origin", "master")
    result = process(loser)
    assert result.exit_code == 1, result.output
    assert "already holds gear acme/hello 1.0.0 with another rootfs" in result.output
    assert "\x1b" not in result.output and not any(line.startswith("error: forged") for line in
                                                    result.output.splitlines()), result.output


@pytest.mark.parametrize("how", ["resumed", "retried"])
def test_the_same_version_published_with_another_spec_is_refused_not_skipped(process_world: World, tmp_path: Path,
                                                                              how: str) -> None:
    """Two runs raced on hello 1.0.0 with different specs: the loser must say so, not report success."""
    if how == "resumed":
        unpushed_run(process_world, tmp_path)
        loser = process_world
    else:
        loser = clone(process_world, tmp_path, "loser")
    winner = clone(process_world, tmp_path, "winner")
    hello_on_the_same_image(winner.repo, "1.0.0", description="the same version, another text")
    winner.repo.git("push", "-q", "origin", "master")
    assert process(winner).exit_code == 0
    remote_before = process_world.remote_head()
    start = loser.repo.git("rev-parse", "HEAD") if how == "retried" else None
    result = process(loser, "--retries", "1")
    assert result.exit_code == 1, result.output
    assert "already holds gear acme/hello 1.0.0 with another spec" in result.output
    assert "nothing was overwritten" in result.output and "Traceback" not in result.output
    assert process_world.remote_head() == remote_before
    assert loser.repo.git("status", "--porcelain") == ""
    if start is not None:
        assert loser.repo.git("rev-parse", "HEAD") == start

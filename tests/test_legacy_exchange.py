"""Adopting a years-old exchange as it is (tests/legacy_exchange.py): every command reads every old
manifest, or names the one it cannot read, and they all agree on what a gear is called."""

from __future__ import annotations

import html
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.storage.bucket import open_bucket
from tests.catalog_world import CatalogWorld, one_gear_world, own_bucket
from tests.infra.chromium import laid_out_at
from tests.infra.gitrepo import ExchangeRepo, run_git
from tests.infra.static_http import serving
from tests.legacy_exchange import (
    IMAGE_URL,
    ORPHAN,
    WARNING_SCHEMA,
    LegacyExchange,
    build_legacy_exchange,
    nameless_boutique,
    processed_under_old_rules,
    renamed_within_one_file,
)


@pytest.fixture
def legacy(exchange_repo: ExchangeRepo, tmp_path: Path) -> LegacyExchange:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    legacy = build_legacy_exchange(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")
    own_bucket(exchange_repo, legacy.bucket, tmp_path / "remote.git")
    return legacy


def run(legacy: LegacyExchange, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, [*args, "--repo", str(legacy.repo.root)], input=stdin)


def bucket_names(legacy: LegacyExchange) -> set[str]:
    return {info.name for info in legacy.bucket.list()}


# Every manifest is read --------------------------------------------------------------------------

def test_every_manifest_is_read_at_any_depth_from_disk_and_from_git(legacy: LegacyExchange) -> None:
    from exchange_cli.manifests import load_manifests

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

    from exchange_cli.manifests import manifests_at_commit

    with git.Repo(legacy.repo.root) as repo:
        return manifests_at_commit(repo, legacy.commits[-1])


def test_blob_reader_names_each_file_it_cannot_read() -> None:
    from exchange_cli.manifests import read_manifest_blobs

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


# One identity for a gear ---------------------------------------------------------------------------

# What the legacy exchange holds, by the one model: org/name, the entry when it differs, versions newest first.
EXPECTED_LIST = [
    (None, "gear", "bids-app", "bids-app", ["0.2.1_0.6.0"]),
    ("acme", "gear", "beta", "acme/beta", ["v1.0"]),
    ("acme", "gear", "cpac", "acme/c-pac", ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"]),
    ("acme", "boutique", "word-count", "acme/word-count", ["1.0.0"]),
    ("acme", "gear", "xcpengine-fw", "acme/xcpengine", ["1.4.4"]),
    ("neuro", "gear", "fmriprep", "neuro/legacy-fmriprep", ["2.1.5-1"]),
]


def test_list_reads_every_manifest_names_the_gear_and_its_entry_and_warns_about_the_rest(
        legacy: LegacyExchange) -> None:
    result = run(legacy, "list", "--json")
    assert result.exit_code == 0, result.output
    listed = [(e["org"], e["kind"], e["name"], e["entry"], [v["version"] for v in e["versions"]])
              for e in json.loads(result.stdout)]
    assert listed == EXPECTED_LIST
    odd = legacy.manifest("odd", 2).relative
    assert f"warning: not listed: {odd}: its embedded gear's version is 2, not a string" in result.stderr
    text = run(legacy, "list").stdout
    assert "acme/cpac (gear, entry acme/c-pac)\n  1.0.0_7.1.1  " in text
    assert "acme/manifest" not in text and "acme/c-pac (" not in text


@pytest.mark.parametrize("reference", ["acme/cpac", "acme/c-pac", "cpac", "gear:acme/cpac", "acme/manifest"])
def test_show_accepts_the_name_or_any_file_stem(legacy: LegacyExchange, reference: str) -> None:
    result = run(legacy, "show", reference, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["name"], shown["entry"], shown["version"]) == ("cpac", "acme/c-pac", "1.0.0_7.1.1")
    assert shown["versions"] == ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"]


def test_show_reads_old_shape_manifests_and_those_without_an_org(legacy: LegacyExchange) -> None:
    old = json.loads(run(legacy, "show", "acme/xcpengine", "--json").stdout)
    image = "registry.example.org/legacy/xcpengine-fw:1.4.4"  # not recorded: read from the embedded spec
    assert (old["name"], old["version"], old["image"], old["rootfs-size"]) == ("xcpengine-fw", "1.4.4", image, None)
    sized = json.loads(run(legacy, "show", "acme/xcpengine", "--json", "--bucket", legacy.bucket.uri).stdout)
    assert sized["rootfs-size"] == legacy.bucket.stat(legacy.manifest("xcpengine-fw", "1.4.4").object_name).size
    text = run(legacy, "show", "acme/xcpengine").stdout
    assert f"image                   {image}" in text and "unknown (the manifest does not record it" in text
    assert old["rootfs-hash"] == "sha384:" + legacy.manifest("xcpengine-fw", "1.4.4").sha384
    no_org = json.loads(run(legacy, "show", "bids-app@0.2.1_0.6.0", "--json").stdout)
    assert no_org["org"] is None and no_org["manifest"] == legacy.manifest("bids-app", "0.2.1_0.6.0").relative


def test_a_gear_called_the_name_wins_over_a_file_stored_under_it(legacy: LegacyExchange) -> None:
    # A second gear whose *file* is called cpac: acme/cpac names the gear called cpac, not the file.
    legacy.repo.write("gears/acme/cpac.json", legacy.gear("cpac-ng", "1.0.0"))
    legacy.process("manifests/acme", "acme-cpac", "acme", legacy.gear("cpac-ng", "1.0.0"))
    legacy.repo.commit("cpac-ng")
    assert json.loads(run(legacy, "show", "acme/cpac", "--json").stdout)["name"] == "cpac"
    assert json.loads(run(legacy, "show", "acme/cpac-ng", "--json").stdout)["name"] == "cpac-ng"


def test_an_ambiguous_reference_is_refused_with_references_that_each_resolve(legacy: LegacyExchange) -> None:
    legacy.process("manifests/neuro", "neuro-cpac", "neuro", legacy.gear("cpac", "2.0.0"))
    legacy.repo.commit("cpac in another org")
    result = run(legacy, "show", "cpac")
    assert result.exit_code == 2
    assert ("cpac is ambiguous; it names 2 entries: gear:acme/cpac, stored as acme/c-pac; gear:neuro/cpac; "
            "each of these names one: acme/cpac, neuro/cpac") in result.output
    for suggested in ("acme/cpac", "neuro/cpac"):
        shown = run(legacy, "show", suggested, "--json")
        assert shown.exit_code == 0 and json.loads(shown.stdout)["org"] == suggested.split("/")[0], shown.output


def test_inventory_index_and_history_agree_with_list(legacy: LegacyExchange) -> None:
    listed = {(e["org"], e["name"], e["entry"]) for e in json.loads(run(legacy, "list", "--json").stdout)}
    rows = run(legacy, "inventory", "--csv", "-").stdout.splitlines()
    assert rows[0].startswith("org,name,entry,label,latest_version")
    inventory = {tuple(row.split(",")[:3]) for row in rows[1:]}
    assert inventory == {(org or "", name, entry) for org, name, entry in listed if name != "word-count"}
    index = json.loads(run(legacy, "index", "-o", "-").stdout)
    assert {(e["org"], e["name"], e["entry"]) for e in index["entries"]} == listed
    history = run(legacy, "history", "--format", "json")
    assert history.exit_code == 0, history.output
    rows = json.loads(history.stdout)
    assert {(r["org"] or None, r["name"], r["entry"]) for r in rows} == {
        (org, name, entry) for org, name, entry in listed} | {("acme", "cpac", "acme/manifest")}
    assert {r["manifest"] for r in rows} == {m.relative for m in legacy.manifests} - {legacy.manifest("odd", 2).relative}
    assert f"warning: not listed: {legacy.manifest('odd', 2).relative}: its embedded gear's version is 2" in history.stderr


# validate and add-gear on entries ------------------------------------------------------------------

def validate_json(legacy: LegacyExchange, *args: str) -> dict:
    return json.loads(run(legacy, "validate", "--format", "json", *args).stdout)


def test_an_established_file_named_otherwise_is_a_warning_a_new_one_an_error(legacy: LegacyExchange) -> None:
    report = validate_json(legacy, "--all")
    assert report["ok"], report
    problems = {r["path"].rsplit("/", 2)[-2] + "/" + r["path"].rsplit("/", 1)[-1]:
                {(p["rule"], p["severity"]) for p in r["problems"]} for r in report["results"]}
    assert problems["acme/c-pac.json"] == {("file-name", "warning"), ("already-processed", "info")}
    assert problems["acme/xcpengine.json"] == {("file-name", "warning"), ("already-processed", "info")}
    assert problems["acme/beta.json"] == {("already-processed", "info")}

    legacy.repo.write("gears/acme/new-thing.json", legacy.gear("brand-new", "1.0.0"))
    new = validate_json(legacy, str(legacy.repo.root / "gears/acme/new-thing.json"))["results"][0]["problems"]
    assert [(p["rule"], p["severity"]) for p in new] == [("file-name", "error")]
    assert "must be stored as gears/acme/brand-new.json" in new[0]["message"]


def test_a_new_file_holding_a_gear_another_file_holds_is_the_error(legacy: LegacyExchange) -> None:
    """The change introduced the second file: it is the error; the file already there is warned about."""
    legacy.repo.write("gears/acme/cpac.json", legacy.gear("cpac", "2.0.0"))
    report = validate_json(legacy, "--all")
    rules = {r["path"].rsplit("/", 1)[-1]: {(p["rule"], p["severity"]) for p in r["problems"]
                                            if p["rule"] == "duplicate-name"} for r in report["results"]}
    assert rules["cpac.json"] == {("duplicate-name", "error")} and rules["c-pac.json"] == {("duplicate-name", "warning")}
    assert not report["ok"]


def test_add_gear_updates_the_entry_that_holds_the_gear(legacy: LegacyExchange, tmp_path: Path) -> None:
    source = tmp_path / "manifest.json"
    source.write_text(json.dumps(legacy.gear("cpac", "1.0.1")))
    for extra in ([], ["--org", "acme"]):
        result = run(legacy, "add-gear", str(source), "--no-commit", *extra)
        assert result.exit_code == 0, result.output
        assert "+++ b/gears/acme/c-pac.json" in result.output or "already exactly this spec" in result.output
    assert not (legacy.repo.root / "gears/acme/cpac.json").exists()
    assert json.loads((legacy.repo.root / "gears/acme/c-pac.json").read_text())["version"] == "1.0.1"
    assert validate_json(legacy, "--all")["ok"]


# Hidden files --------------------------------------------------------------------------------------

def test_hidden_files_are_skipped_alike_by_all_the_sentinel_and_since(legacy: LegacyExchange) -> None:
    for hidden in ("gears/acme/.placeholder", "boutiques/acme/.gitkeep", "gears/.hidden/x.json"):
        legacy.repo.write(hidden, "not a spec")
    legacy.repo.write("gears/acme/xcpengine.json", legacy.gear("xcpengine-fw", "1.4.5"))
    legacy.repo.commit("hidden files and a new version")
    for args in (["--all"], [], ["--since", legacy.commits[-1]]):
        paths = {r["path"].split("exchange/", 1)[-1] for r in validate_json(legacy, *args)["results"]}
        assert not any("/." in path for path in paths), (args, paths)
        assert "gears/acme/xcpengine.json" in paths


# history in a shallow clone, fetch of an image ------------------------------------------------------

def test_history_in_a_shallow_clone_warns_and_deepen_gives_the_real_commits(legacy: LegacyExchange,
                                                                           tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    run_git(tmp_path, "clone", "-q", "--depth", "1", legacy.repo.root.as_uri(), str(clone))
    shallow = CliRunner().invoke(cli, ["history", "--repo", str(clone), "--format", "json"])
    assert shallow.exit_code == 0, shallow.output
    assert "warning: this is a shallow clone" in shallow.stderr
    rows = json.loads(shallow.stdout)
    assert {r["commit"] for r in rows} == {legacy.commits[-1]} and all(r["at-clone-boundary"] for r in rows)
    cpac = [r["version"] for r in rows if r["name"] == "cpac"]
    assert cpac == ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"], "boundary rows in version order, not by file name"
    names = [r["name"] for r in rows]
    assert names == sorted(names, key=lambda name: [r["org"] for r in rows if r["name"] == name][0] + "/" + name)

    deep = CliRunner().invoke(cli, ["history", "--repo", str(clone), "--deepen", "--format", "json"])
    assert deep.exit_code == 0, deep.output
    assert "shallow clone" not in deep.stderr
    real = {r["manifest"]: r["commit"] for r in json.loads(deep.stdout)}
    cpac_rc = legacy.manifest("cpac", "1.0.0_7.1.1_rc0").relative
    assert real[cpac_rc] == legacy.commits[1] and real[legacy.manifest("cpac", "0.9.0").relative] == legacy.commits[0]


def test_deepen_in_a_complete_clone_is_nothing_to_do(legacy: LegacyExchange, tmp_path: Path) -> None:
    """CI scripts pass --deepen always; a full clone (a maintainer's) must not fail on git's --unshallow refusal."""
    clone = tmp_path / "full"
    run_git(tmp_path, "clone", "-q", legacy.repo.root.as_uri(), str(clone))
    result = CliRunner().invoke(cli, ["history", "--repo", str(clone), "--deepen", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) > 0


def test_fetch_of_an_image_delivered_version_prints_the_pull_reference(legacy: LegacyExchange,
                                                                       tmp_path: Path) -> None:
    result = run(legacy, "fetch", "acme/beta", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert ("acme/beta@v1.0 is delivered as an image, not a rootfs tarball; pull it with: docker pull "
            f"{IMAGE_URL.removeprefix('docker://')}") in result.output
    assert not (tmp_path / "out").exists()


# The published catalog file -----------------------------------------------------------------------

DROPPED = ("config", "inputs", "custom", "flywheel")
# The old pipeline's program, as it ran on every master build.
OLD_JQ = ('[ .[].gear | del(.config, .inputs, .custom, .flywheel) ] | del(.[] | nulls) | group_by(.name) | '
          '.[] |= sort_by(.version) | .[] |= reverse')


def embedded(legacy: LegacyExchange, relative: str) -> dict:
    return json.loads((legacy.repo.root / relative).read_text())


def test_index_legacy_has_the_old_shape_field_by_field(legacy: LegacyExchange) -> None:
    result = run(legacy, "index", "--format", "legacy", "-o", "-")
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)
    assert isinstance(groups, list) and all(isinstance(group, list) and group for group in groups)
    assert [group[0]["name"] for group in groups] == ["beta", "bids-app", "cpac", "fmriprep", "xcpengine-fw"]
    for group in groups:
        name = group[0]["name"]
        manifests = [m for m in legacy.manifests if m.kind == "gear" and m.name == name]
        assert [item["version"] for item in group] == {
            "cpac": ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"]}.get(name, [m.version for m in manifests])
        for item in group:
            (manifest,) = [m for m in manifests if m.version == item["version"]]
            spec = embedded(legacy, manifest.relative)["gear"]
            assert list(item) == sorted(key for key in spec if key not in DROPPED)  # same fields, jq -S order
            for key, value in item.items():
                assert value == spec[key], (name, key)
    # Boutiques were never in it (jq kept `.gear` only); the gear with a numeric version is named, not guessed.
    assert "word-count" not in result.stdout
    assert f"{legacy.manifest('odd', 2).relative}: its embedded gear's version is 2, not a string" in result.stderr


def test_index_legacy_equals_the_old_pipeline_but_for_the_version_order(legacy: LegacyExchange) -> None:
    files = sorted(str(p) for p in (legacy.repo.root / "manifests").rglob("*.json"))
    old = json.loads(subprocess.run(["jq", "-s", OLD_JQ, *files], check=True, capture_output=True, text=True).stdout)
    ours = json.loads(run(legacy, "index", "--format", "legacy", "-o", "-").stdout)
    old = [group for group in old if group[0]["name"] != "odd"]  # version 2: left out and named by ours
    assert [[(i["name"], i["version"]) for i in g] for g in old] == [
        [("beta", "v1.0")], [("bids-app", "0.2.1_0.6.0")],
        [("cpac", "1.0.0_7.1.1_rc0"), ("cpac", "1.0.0_7.1.1"), ("cpac", "0.9.0")],  # strings: rc0 first
        [("fmriprep", "2.1.5-1")], [("xcpengine-fw", "1.4.4")]]
    by_version = {(i["name"], i["version"]): i for g in old for i in g}
    assert ours == [[by_version[(i["name"], i["version"])] for i in g] for g in ours]
    assert sorted(by_version) == sorted((i["name"], i["version"]) for g in ours for i in g)


def test_index_legacy_is_byte_for_byte_jq_s_but_for_the_version_order(legacy: LegacyExchange, tmp_path: Path) -> None:
    """The old program ran `jq -S`: keys sorted at every level, jq's layout, escapes and numbers. A first
    publication must change only the groups the version order reorders, not 6,000 lines of key order."""
    spec = embedded(legacy, legacy.manifest("cpac", "1.0.0_7.1.1").relative)
    spec["gear"] |= {"zeta": {"b": 1.0, "a": [1e21, 0.0001, 1e-5, 123456789012345678]}, "alpha": "x\u007f\u00e9",
                     "environment": {"PATH": "/usr/bin", "FSLDIR": "/opt/fsl"}}
    (legacy.repo.root / legacy.manifest("cpac", "1.0.0_7.1.1").relative).write_text(json.dumps(spec))
    files = sorted(str(p) for p in (legacy.repo.root / "manifests").rglob("*.json"))
    old_program = subprocess.run(["jq", "-S", "-s", OLD_JQ, *files], check=True, capture_output=True, text=True).stdout
    ours = run(legacy, "index", "--format", "legacy", "-o", "-").stdout
    old = [group for group in json.loads(old_program) if group[0]["name"] != "odd"]  # left out and named by ours
    order = {(item["name"], item["version"]): place for place, item in
             enumerate(item for group in json.loads(ours) for item in group)}
    reordered = [sorted(group, key=lambda item: order[(item["name"], item["version"])]) for group in old]
    (tmp_path / "reordered.json").write_text(json.dumps(reordered))
    expected = subprocess.run(["jq", "-S", ".", str(tmp_path / "reordered.json")], check=True, capture_output=True,
                              text=True).stdout
    assert ours == expected
    assert ours.count("\n") > 50 and '"FSLDIR": "/opt/fsl",\n' in ours and "1e+21" in ours


# validate-invocation against old embedded schemas -----------------------------------------------

def test_validate_invocation_says_when_the_embedded_schema_is_older_and_regenerate_checks_today(
        legacy: LegacyExchange) -> None:
    manifest = str(legacy.repo.root / legacy.manifest("word-count", "1.0.0").relative)
    bad = legacy.repo.write("job.json", {"lines_only": "yes"})  # no input_file, a flag that is not a boolean
    as_published = CliRunner().invoke(cli, ["validate-invocation", manifest, str(bad), "--format", "text"])
    assert as_published.exit_code == 0  # the WARNING placeholder accepts anything ...
    assert "its embedded invocation schema is the old placeholder" in as_published.stderr  # ... and it says so
    assert "--regenerate checks against today's" in as_published.stderr
    today = CliRunner().invoke(cli, ["validate-invocation", manifest, str(bad), "--regenerate", "--format", "text"])
    assert today.exit_code == 1
    assert "'input_file' is a required property" in today.stdout and "(at /lines_only)" in today.stdout
    # The spec file and its own manifest now agree.
    spec = str(legacy.repo.root / "boutiques/acme/word-count.json")
    from_spec = CliRunner().invoke(cli, ["validate-invocation", spec, str(bad), "--format", "text"])
    assert from_spec.exit_code == 1 and from_spec.stdout == today.stdout


def test_an_embedded_schema_without_additional_properties_false_is_called_older(legacy: LegacyExchange) -> None:
    relative = legacy.manifest("xcpengine-fw", "1.4.4").relative
    document = json.loads((legacy.repo.root / relative).read_text())
    document["invocation-schema"] = {"type": "object", "properties": {"config": {"type": "object"},
                                                                      "inputs": {"type": "object"}}}
    manifest = legacy.repo.write(relative, json.dumps(document))
    job = legacy.repo.write("job.json", {"config": {"name": "x", "typo": 1}, "inputs": {}})
    published = CliRunner().invoke(cli, ["validate-invocation", str(manifest), str(job), "--format", "text"])
    assert published.exit_code == 0 and "lacks additionalProperties: false" in published.stderr
    today = CliRunner().invoke(cli, ["validate-invocation", str(manifest), str(job), "--regenerate", "--format", "text"])
    assert today.exit_code == 1 and "'typo' was unexpected" in today.stdout


# Adoption, round two -----------------------------------------------------------------------------

@pytest.fixture
def renamed(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    world = one_gear_world(exchange_repo, tmp_path)
    renamed_within_one_file(world)
    return world


@pytest.mark.parametrize("reference, name, version", [
    ("flywheel/c-pac", "c-pac", "4.0.0"), ("gear:flywheel/c-pac", "c-pac", "4.0.0"), ("c-pac", "c-pac", "4.0.0"),
    ("flywheel/c-pac@2.0.0", "c-pac", "2.0.0"), ("flywheel/c-pac@5.0.0", "cpac", "5.0.0"),
    ("flywheel/cpac", "cpac", "5.0.0"), ("cpac@5.0.0", "cpac", "5.0.0"),
])
def test_every_published_version_of_a_gear_renamed_in_its_file_can_be_named(renamed: CatalogWorld, reference: str,
                                                                             name: str, version: str) -> None:
    """`flywheel/c-pac`, `c-pac`, even `flywheel/c-pac@<a version only it has>` were "ambiguous"."""
    shown = CliRunner().invoke(cli, ["show", reference, "--json", "--repo", str(renamed.repo.root)])
    assert shown.exit_code == 0, shown.output
    assert (json.loads(shown.stdout)["name"], json.loads(shown.stdout)["version"]) == (name, version)


def test_a_manifest_file_name_names_one_version_and_is_never_ambiguous(renamed: CatalogWorld, tmp_path: Path) -> None:
    published = renamed.find("flywheel", "c-pac", "1.0.0")
    file_name = Path(published.manifest).name
    for reference in (file_name, published.manifest):
        shown = CliRunner().invoke(cli, ["show", reference, "--json", "--repo", str(renamed.repo.root)])
        assert shown.exit_code == 0 and json.loads(shown.stdout)["version"] == "1.0.0", shown.output
    fetched = CliRunner().invoke(cli, ["fetch", file_name, "-o", str(tmp_path / "x.tgz"), "--repo",
                                       str(renamed.repo.root)])
    assert fetched.exit_code == 0, fetched.output


def test_every_copy_command_on_every_catalog_page_runs(renamed: CatalogWorld, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert CliRunner().invoke(cli, ["index", "--html", str(site), "-o", str(tmp_path / "x.json"), "--repo",
                                    str(renamed.repo.root)]).exit_code == 0
    commands = [html.unescape(text) for page in site.rglob("*.html")
                for text in re.findall(r'<code id="cmd-[^"]*">(.*?)</code>', page.read_text())]
    exchange_commands = [shlex.split(command) for command in commands if command.startswith("exchange ")]
    assert len(exchange_commands) == len(renamed.published), "one fetch command per processed version"
    fetched = set()
    for number, (_, verb, *args) in enumerate(exchange_commands):
        result = CliRunner().invoke(cli, [verb, *args, "--output-dir", str(tmp_path / f"out{number}"), "--repo",
                                          str(renamed.repo.root)])
        assert result.exit_code == 0, (args, result.output)
        fetched |= {p.name for p in (tmp_path / f"out{number}").iterdir()}
    assert fetched == {p.object_name for p in renamed.published}, "each command fetched a different version"


def test_a_nameless_legacy_boutique_checks_invocations_and_warns_about_its_placeholder(legacy: LegacyExchange) -> None:
    """An old boutique manifest with no `name` and the {"WARNING": …} schema: validate-invocation failed with
    "unsupported operand type(s) for +: 'NoneType' and 'str'" (and printed no JSON); invocation-schema
    printed the placeholder without a word."""
    manifest = str(legacy.repo.root / nameless_boutique(legacy).relative)
    good = legacy.repo.write("good.json", {"input_file": "/data/in.txt"})
    bad = legacy.repo.write("bad.json", {"lines_only": "yes"})
    published = CliRunner().invoke(cli, ["validate-invocation", manifest, str(bad), "--format", "text"])
    assert published.exit_code == 0, published.output  # the placeholder accepts anything: said on stderr
    assert "old placeholder" in published.stderr and "--regenerate" in published.stderr
    assert published.stdout.strip().splitlines()[-1] == "1 invocation(s) checked: 1 passed, 0 failed"
    today = CliRunner().invoke(cli, ["validate-invocation", manifest, str(bad), "--regenerate", "--format", "json"])
    assert today.exit_code == 1, today.output
    assert {p["rule"] for p in json.loads(today.stdout)["results"][0]["problems"]} == {"invocation"}
    assert CliRunner().invoke(cli, ["validate-invocation", manifest, str(good), "--regenerate"]).exit_code == 0
    schema = CliRunner().invoke(cli, ["invocation-schema", manifest])
    assert schema.exit_code == 0 and json.loads(schema.stdout) == WARNING_SCHEMA
    assert "old placeholder" in schema.stderr
    derived = json.loads(CliRunner().invoke(cli, ["invocation-schema", manifest, "--regenerate"]).stdout)
    assert "input_file" in derived["properties"]


def test_validate_invocation_prints_a_json_document_even_when_it_fails(legacy: LegacyExchange) -> None:
    broken = legacy.repo.write("broken-spec.json", '{"name": ')
    job = legacy.repo.write("job.json", {})
    result = CliRunner().invoke(cli, ["validate-invocation", str(broken), str(job), "--format", "json"])
    assert result.exit_code != 0
    document = json.loads(result.stdout)
    assert document["ok"] is False and "broken-spec.json" in document["error"]


def test_a_version_the_sentinel_was_moved_past_is_skipped_not_pending(legacy: LegacyExchange, tmp_path: Path) -> None:
    """The old pipeline's maintainers skipped a version by moving .sentinel past it by hand: it waits for no
    run, yet it read "not processed yet" like one a run will process."""
    legacy.repo.write("gears/acme/skipme.json", legacy.gear("skipme", "1.0.0"))
    legacy.repo.set_sentinel(legacy.repo.commit("a version nobody processed"))
    legacy.repo.commit("move the sentinel past it")
    legacy.repo.write("gears/acme/later.json", legacy.gear("later", "1.0.0"))
    legacy.repo.commit("a version the next run processes")
    states = {e["name"]: e["versions"][0]["state"] for e in json.loads(run(legacy, "list", "--json").stdout)}
    assert (states["skipme"], states["later"], states["cpac"]) == ("skipped", "pending", "processed")
    site = tmp_path / "site"
    assert run(legacy, "index", "--html", str(site), "-o", str(tmp_path / "x.json")).exit_code == 0
    index = (site / "index.html").read_text()
    for name, badge in (("skipme", "skipped"), ("later", "not processed yet")):
        item = re.search(rf'<li class="entry"[^>]*>.*?>acme/{name}</a>.*?</li>', index, re.DOTALL)[0]
        assert f">{badge}</span>" in item, item
    cpac = re.search(r'<li class="entry"[^>]*>.*?>acme/cpac</a>.*?</li>', index, re.DOTALL)[0]
    assert "badge" not in cpac, "a processed newest version carries no marker"


def test_catalog_pages_never_scroll_sideways(legacy: LegacyExchange, tmp_path: Path) -> None:
    wide = {f"option-{n}-{'x' * 40}": {"type": "string", "default": "/a/very/long/path/" + "segment" * 30,
                                        "description": "word " * 60} for n in range(8)}
    legacy.repo.write("gears/acme/wide.json", legacy.gear("wide", "1.0.0", config=wide,
                                                          description="a" * 400, author="b" * 200))
    legacy.repo.commit("a wide gear")
    site = tmp_path / "site"
    assert run(legacy, "index", "--html", str(site), "-o", str(tmp_path / "x.json")).exit_code == 0
    with serving(site) as base:
        pages = [site / "index.html", site / "gears" / "acme" / "wide.html", site / "gears" / "acme" / "cpac.html"]
        measured = laid_out_at(pages, site, base, [390, 1024, 1920], tmp_path / "profile")
    for width, sizes in measured.items():
        for page, (scroll, inner, _) in zip(pages, sizes, strict=True):
            assert inner == width, "measured at the width asked for (an iframe: no window is narrower than 500 px)"
            assert scroll <= inner, (page.name, width, scroll, inner)


# Rules judge what a change introduces -----------------------------------------------------------

def test_a_problem_the_change_did_not_introduce_is_a_warning_unless_strict(legacy: LegacyExchange) -> None:
    """`validate --all` was red at an adopting exchange's head: already-processed specs break today's rules."""
    processed_under_old_rules(legacy)
    report = validate_json(legacy, "--all")
    assert report["ok"], report
    (oldie,) = [r for r in report["results"] if r["path"].endswith("oldie.json")]
    assert [(p["rule"], p["severity"]) for p in oldie["problems"] if p["rule"] != "already-processed"] == \
        [("image-unpinned", "warning")]
    assert "the change did not introduce it" in oldie["problems"][0]["message"] or \
        "the change did not introduce it" in oldie["problems"][1]["message"]
    strict = validate_json(legacy, "--all", "--strict")
    assert not strict["ok"]

    changed = json.loads((legacy.repo.root / "gears/acme/oldie.json").read_text())
    changed["version"], changed["description"] = "1.1.0", "a new version, the same image"
    legacy.repo.write("gears/acme/oldie.json", changed)
    report = validate_json(legacy)  # the change since the sentinel
    (oldie,) = report["results"]
    assert ("image-unpinned", "error") in {(p["rule"], p["severity"]) for p in oldie["problems"]}, \
        "a change that keeps the problem introduces it in a new version"


def test_two_files_already_holding_one_gear_do_not_block_an_update(legacy: LegacyExchange) -> None:
    """A stray gears/acme/manifest.json beside cpac's own file, both processed long ago: an update to cpac was
    refused (duplicate-name) until a file was deleted."""
    legacy.repo.write("gears/acme/manifest.json", legacy.gear("cpac", "0.9.0"))
    legacy.repo.set_sentinel(legacy.repo.commit("the stray file, as it always was"))
    legacy.repo.commit("advance the sentinel")
    update = legacy.gear("cpac", "1.0.1")
    legacy.repo.write("gears/acme/c-pac.json", update)
    report = validate_json(legacy)
    assert report["ok"], report
    (result,) = report["results"]
    assert ("duplicate-name", "warning") in {(p["rule"], p["severity"]) for p in result["problems"]}


def test_the_rules_the_old_pipeline_never_had_can_be_switched_off(legacy: LegacyExchange) -> None:
    legacy.repo.write("gears/acme/misnamed.json", legacy.gear("new-gear", "1.0.0"))
    legacy.repo.write("gears/acme/dupkey.json", json.dumps(legacy.gear("dupkey", "1.0.0"))[:-1]
                      + ', "label": "the last label wins"}')
    legacy.repo.write("gears/acme/badurl.json", legacy.gear("badurl", "1.0.0", url="not a uri at all"))
    strict = {Path(r["path"]).name: {p["rule"] for p in r["problems"] if p["severity"] == "error"}
              for r in validate_json(legacy)["results"]}
    assert strict == {"misnamed.json": {"file-name"}, "dupkey.json": {"json-duplicate-key"},
                      "badurl.json": {"schema-format"}}, strict
    (legacy.repo.root / ".exchange.yaml").write_text(
        "rules:\n  file-name: off\n  duplicate-name: off\n  json-duplicate-key: off\n  schema-format: off\n")
    relaxed = validate_json(legacy)
    assert relaxed["ok"], relaxed
    assert all(p["severity"] != "error" for r in relaxed["results"] for p in r["problems"])


def test_the_adopting_policy_in_the_docs_parses_and_relaxes_exactly_the_old_pipeline_rules() -> None:
    from exchange_cli.validation.policy import OLD_PIPELINE_RULES, parse_policy

    docs = (Path(__file__).resolve().parents[1] / "docs" / "migrating.md").read_text()
    (policy_text,) = [block for block in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "rules:" in block]
    policy = parse_policy(policy_text, "docs/migrating.md")
    assert policy.rules_off == frozenset(OLD_PIPELINE_RULES) and policy.allow_latest

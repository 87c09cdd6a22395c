"""Yank and deprecate, never delete (issue 23): `exchange yank`, `unyank` and `deprecate` record a maintainer's
decision in one commit of `.exchange/lifecycle/<kind>s/<org>/<name>.json` (docs/yank.md), and every command
that chooses or shows a version honours it. Real git repositories and a real local bucket throughout.

Tests of the existing commands write the record by hand, as the docs define it, so that they show the
behaviour the record changes (and fail on a tool that ignores it), apart from the commands that write it."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from exchange_cli.catalog.model import load_catalog
from exchange_cli.catalog.site import entry_page_path, site_files
from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.repository import Exchange
from exchange_cli.specs import SpecKind
from tests.catalog_world import CatalogWorld, own_bucket
from tests.infra.commands import one_error_line
from tests.infra.gitrepo import ExchangeRepo, example_boutique, init_repo, run_git
from tests.infra.process_world import World as ProcessWorld
from tests.infra.process_world import process
from tests.infra.publication import publish

ROOT = Path(__file__).resolve().parents[1]
RECORD = ".exchange/lifecycle/gears/acme/hello.json"
REASON = "crashes on empty input (CVE-0000-0001)"


def run(repo: ExchangeRepo | Path, *args: str) -> Result:
    root = repo.root if isinstance(repo, ExchangeRepo) else repo
    return CliRunner().invoke(cli, [*args, "--repo", str(root)])


@pytest.fixture
def world(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    """acme/hello 1.0.0 and 2.0.0 processed (2.0.0 the newest), acme/hello-next 1.0.0 processed."""
    from exchange_cli.storage.bucket import open_bucket

    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    made = CatalogWorld(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")
    made.publish("acme", "hello", "1.0.0")
    made.publish("acme", "hello", "2.0.0")
    made.spec("acme", "hello", "2.0.0")
    made.publish("acme", "hello-next", "1.0.0")
    made.spec("acme", "hello-next", "1.0.0")
    exchange_repo.commit("two gears")
    return made


def record_by_hand(repo: ExchangeRepo, relative: str = RECORD, *, org: str | None = "acme", name: str = "hello",
                   kind: str = "gear", yanked: dict[str, str] | None = None,
                   deprecated: dict[str, str] | None = None) -> None:
    """A record as docs/yank.md defines it, written and committed the way a maintainer could by hand."""
    document: dict = {"kind": kind, "org": org, "name": name,
                      "yanked": {version: {"reason": reason, "by": "Ada <ada@example.org>", "at": "2026-01-02T03:04:05Z"}
                                 for version, reason in (yanked or {}).items()}}
    if deprecated is not None:
        document["deprecated"] = {"by": "Ada <ada@example.org>", "at": "2026-01-02T03:04:05Z", **deprecated}
    repo.write(relative, document)
    repo.commit("a maintainer's decision")


def bucket_objects(world: CatalogWorld) -> list[tuple[str, int]]:
    return sorted((path.name, path.stat().st_size) for path in Path(world.bucket.root).iterdir())  # type: ignore[attr-defined]


def tracked(repo: ExchangeRepo) -> list[str]:
    return repo.git("ls-files").splitlines()


# --- the commands that record a decision ---------------------------------------------------------------


def test_yank_unyank_and_deprecate_commit_one_record_and_delete_nothing(world: CatalogWorld) -> None:
    repo = world.repo
    repo.git("config", "user.name", "Ada Maintainer")
    repo.git("config", "user.email", "ada@example.org")
    objects, files = bucket_objects(world), tracked(repo)
    manifests = {path: (repo.root / path).read_bytes() for path in files if path.startswith("manifests/")}

    yanked = run(repo, "yank", "acme/hello@2.0.0", "--reason", REASON, "--format", "json")
    assert yanked.exit_code == 0, yanked.output
    document = json.loads(yanked.stdout)
    jsonschema.validate(document, json.loads((ROOT / "schemas/cli/lifecycle.schema.json").read_text()))
    assert (document["action"], document["ref"], document["version"], document["reason"]) == \
        ("yank", "acme/hello", "2.0.0", REASON)
    assert document["by"] == "Ada Maintainer <ada@example.org>" and document["record"] == RECORD
    head = repo.git("log", "-1", "--format=%H%n%an <%ae>%n%s").splitlines()
    assert head == [document["commit"], "Ada Maintainer <ada@example.org>", f"Yank gear acme/hello 2.0.0: {REASON}"]
    assert repo.git("show", "--name-status", "--format=", "HEAD").split() == ["A", RECORD], "exactly the record"
    record = json.loads((repo.root / RECORD).read_text())
    jsonschema.validate(record, json.loads((ROOT / "schemas/lifecycle-record.schema.json").read_text()))
    assert record["yanked"]["2.0.0"]["reason"] == REASON and record["yanked"]["2.0.0"]["at"] == document["at"]

    deprecated = run(repo, "deprecate", "acme/hello", "--replaced-by", "acme/hello-next", "--reason", "renamed")
    assert deprecated.exit_code == 0, deprecated.output
    assert "deprecated acme/hello: renamed; use acme/hello-next instead" in deprecated.stdout
    assert json.loads((repo.root / RECORD).read_text())["deprecated"]["replaced-by"] == "acme/hello-next"

    unyanked = run(repo, "unyank", "acme/hello@2.0.0")
    assert unyanked.exit_code == 0, unyanked.output
    assert "2.0.0" not in json.loads((repo.root / RECORD).read_text())["yanked"]
    undone = run(repo, "deprecate", "acme/hello", "--undo")
    assert undone.exit_code == 0, undone.output
    assert not (repo.root / RECORD).exists(), "nothing left to record: the file goes"
    assert repo.git("log", "--format=%s", "-4").splitlines() == [
        "Undeprecate gear acme/hello", "Unyank gear acme/hello 2.0.0", "Deprecate gear acme/hello: renamed",
        f"Yank gear acme/hello 2.0.0: {REASON}"]
    assert repo.git("status", "--porcelain") == ""
    assert bucket_objects(world) == objects, "no bucket object is ever deleted or changed"
    assert tracked(repo) == files
    assert {path: (repo.root / path).read_bytes() for path in manifests} == manifests, "manifests untouched"


def test_push_sends_the_decision_and_a_refused_push_is_exit_2(world: CatalogWorld, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    init_repo(remote, bare=True)
    world.repo.git("remote", "add", "origin", str(remote))
    world.repo.git("push", "-q", "origin", "master")
    result = run(world.repo, "yank", "acme/hello@2.0.0", "--reason", REASON, "--push")
    assert result.exit_code == 0, result.output
    assert "pushed master to origin" in result.stdout
    assert run_git(remote, "rev-parse", "master") == world.repo.git("rev-parse", "HEAD")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'decisions need review' >&2\nexit 1\n")
    hook.chmod(0o755)
    refused = run(world.repo, "unyank", "acme/hello@2.0.0", "--push")
    assert refused.exit_code == 2, refused.output
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: the decision is committed here but origin refused it") and "decisions need review" in line


@pytest.mark.parametrize(("args", "message"), [
    (["yank", "acme/hello@9.9.9", "--reason", "x"], "error: acme/hello has no version 9.9.9 (versions: 2.0.0, 1.0.0)"),
    (["yank", "acme/hello", "--reason", "x"], "error: acme/hello: name the version to yank, as ORG/NAME@VERSION"),
    (["yank", "acme/nothing@1.0.0", "--reason", "x"], "error: no gear or boutique acme/nothing in this exchange"),
    (["yank", "acme/hello@1.0.0", "--reason", "  "], "error: --reason is empty"),
    (["yank", "acme/hello@1.0.0", "--reason", "bad\x1b[2Jreason"], "error: --reason holds a control or format character"),
    (["yank", "acme/hello@2.0.0", "--reason", "x"], "error: acme/hello@2.0.0 is already yanked: broken (2026-01-02"),
    (["unyank", "acme/hello@1.0.0"], "error: acme/hello@1.0.0 is not yanked; nothing to unyank"),
    (["unyank", "acme/hello@9.9.9"], "error: acme/hello has no version 9.9.9"),
    (["deprecate", "acme/hello-next", "--undo"], "error: acme/hello-next is not deprecated; nothing to undo"),
    (["deprecate", "acme/hello", "--reason", "x"], "error: acme/hello is already deprecated: old"),
    (["deprecate", "acme/hello-next"], "error: --reason is required"),
    (["deprecate", "acme/hello-next", "--reason", "x", "--replaced-by", "acme/hello-next"],
     "error: --replaced-by acme/hello-next names acme/hello-next itself"),
    (["deprecate", "acme/hello-next", "--reason", "x", "--replaced-by", "acme/gone"],
     "error: no gear or boutique acme/gone in this exchange"),
    (["deprecate", "acme/hello@1.0.0", "--reason", "x"], "error: acme/hello@1.0.0: deprecate names a whole gear"),
])
def test_mistakes_are_one_line_exit_2_and_commit_nothing(world: CatalogWorld, args: list[str], message: str) -> None:
    record_by_hand(world.repo, yanked={"2.0.0": "broken"}, deprecated={"reason": "old"})
    head = world.repo.git("rev-parse", "HEAD")
    result = run(world.repo, *args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(message), line
    assert world.repo.git("rev-parse", "HEAD") == head and world.repo.git("status", "--porcelain") == ""


def test_a_record_that_cannot_be_read_is_never_overwritten(world: CatalogWorld) -> None:
    world.repo.write(RECORD, '{"kind": "gear", "org": "acme", "name": "hello", "yanked": {"2.0.0": 7}}')
    world.repo.commit("a broken record")
    listed = run(world.repo, "list")
    assert listed.exit_code == 0 and "yanked" not in listed.stdout
    assert f"warning: not listed: {RECORD}: yanked '2.0.0' is not an object" in listed.stderr
    result = run(world.repo, "yank", "acme/hello@1.0.0", "--reason", "x")
    assert result.exit_code == 2 and "fix or delete it first" in result.stderr
    assert json.loads((world.repo.root / RECORD).read_text())["yanked"] == {"2.0.0": 7}


# --- every command that chooses or shows a version --------------------------------------------------


def test_show_and_fetch_choose_the_newest_version_not_yanked(world: CatalogWorld, tmp_path: Path) -> None:
    record_by_hand(world.repo, yanked={"2.0.0": REASON})
    shown = run(world.repo, "show", "acme/hello", "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["version"] == "1.0.0"
    assert shown.stderr == "", "the newest usable version is nothing to warn about"
    fetched = run(world.repo, "fetch", "acme/hello", "--output-dir", str(tmp_path / "newest"), "--format", "json")
    assert fetched.exit_code == 0, fetched.output
    assert Path(json.loads(fetched.stdout)["path"]).name == world.find("acme", "hello", "1.0.0").object_name
    assert json.loads(fetched.stdout)["yanked"] is None


def test_a_yanked_version_is_still_fetched_shown_and_listed_by_exact_version_with_its_reason(
        world: CatalogWorld, tmp_path: Path) -> None:
    record_by_hand(world.repo, yanked={"2.0.0": REASON})
    warning = f"warning: acme/hello@2.0.0 is yanked: {REASON} (2026-01-02T03:04:05Z, Ada <ada@example.org>)"
    fetched = run(world.repo, "fetch", "acme/hello@2.0.0", "--output-dir", str(tmp_path), "--format", "json")
    assert fetched.exit_code == 0, fetched.output
    assert fetched.stderr.splitlines() == [warning]
    document = json.loads(fetched.stdout)
    assert document["verified"] is True and document["yanked"]["reason"] == REASON
    assert Path(document["path"]).read_bytes() == (Path(world.bucket.root) /  # type: ignore[attr-defined]
                                                   world.find("acme", "hello", "2.0.0").object_name).read_bytes()
    shown = run(world.repo, "show", "acme/hello@2.0.0")
    assert shown.exit_code == 0 and shown.stderr.splitlines() == [warning]
    assert re.search(rf"^yanked +{re.escape(REASON)} \(2026-01-02T03:04:05Z, Ada <ada@example.org>\)$", shown.stdout,
                     re.MULTILINE), shown.stdout
    as_json = json.loads(run(world.repo, "show", "acme/hello@2.0.0", "--format", "json").stdout)
    assert as_json["yanked"] == {"reason": REASON, "by": "Ada <ada@example.org>", "at": "2026-01-02T03:04:05Z"}
    listed = run(world.repo, "list")
    assert f"  2.0.0  processed, yanked: {REASON}" in listed.stdout
    assert "  1.0.0  processed\n" in listed.stdout
    versions = json.loads(run(world.repo, "list", "--format", "json").stdout)[0]["versions"]
    assert [(v["version"], (v["yanked"] or {}).get("reason")) for v in versions] == [("2.0.0", REASON), ("1.0.0", None)]


def test_with_every_version_yanked_nothing_is_chosen_and_the_error_gives_the_reasons(world: CatalogWorld) -> None:
    record_by_hand(world.repo, yanked={"2.0.0": REASON, "1.0.0": "too old"})
    result = run(world.repo, "fetch", "acme/hello")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: every processed version of acme/hello is yanked (2.0.0: crashes on empty input")
    assert "1.0.0: too old" in line and line.endswith("name one as @VERSION to use it anyway")
    index = json.loads(run(world.repo, "index").stdout)
    assert index["entries"][0]["latest"] is None


def test_index_json_marks_yanks_and_names_the_latest(world: CatalogWorld) -> None:
    record_by_hand(world.repo, yanked={"2.0.0": REASON}, deprecated={"reason": "renamed", "replaced-by": "acme/hello-next"})
    result = run(world.repo, "index")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.validate(document, json.loads((ROOT / "schemas/cli/index.schema.json").read_text()))
    hello = document["entries"][0]
    assert hello["ref"] == "acme/hello" and hello["latest"] == "1.0.0"
    assert [(v["version"], v["yanked"] and v["yanked"]["reason"]) for v in hello["versions"]] == \
        [("2.0.0", REASON), ("1.0.0", None)], "every version stays, the yanked one marked"
    assert hello["deprecated"]["replaced-by"] == "acme/hello-next"
    assert document["entries"][1]["latest"] == "1.0.0" and document["entries"][1]["deprecated"] is None


def test_the_legacy_exchange_json_leaves_a_yanked_version_out(world: CatalogWorld) -> None:
    before = json.loads(run(world.repo, "index", "--format", "legacy").stdout)
    assert [[gear["version"] for gear in group] for group in before] == [["2.0.0", "1.0.0"], ["1.0.0"]]
    record_by_hand(world.repo, yanked={"2.0.0": REASON})
    after = run(world.repo, "index", "--format", "legacy")
    assert after.exit_code == 0, after.output
    assert [[gear["version"] for gear in group] for group in json.loads(after.stdout)] == [["1.0.0"], ["1.0.0"]]
    assert "left out of the legacy catalog, its version is yanked: manifests/acme/acme-hello-sha384-" in after.stderr
    assert (world.repo.root / world.find("acme", "hello", "2.0.0").manifest).is_file(), "the manifest stays"


def test_the_catalog_site_shows_the_yank_and_the_deprecation_escaped(world: CatalogWorld) -> None:
    hostile = 'use <script>alert("x")</script> & never "this"'
    record_by_hand(world.repo, yanked={"2.0.0": hostile}, deprecated={"reason": hostile, "replaced-by": "acme/hello-next"})
    catalog = load_catalog(Exchange.open(world.repo.root))
    files = site_files(catalog, root=world.repo.root)
    (hello,) = [entry for entry in catalog.entries if entry.name == "hello"]
    page = files[entry_page_path(hello)]
    assert "<script>alert" not in page and html.escape(hostile) in page
    assert '<p class="deprecated"><strong>Deprecated</strong>' in page
    assert '<a href="../../gears/acme/hello-next.html">acme/hello-next</a>' in page
    section = page[page.index('id="v-2.0.0"'):page.index('id="v-1.0.0"')]
    assert 'class="badge yanked"' in section and "<dt>yanked</dt>" in section and "<details>" in section
    assert "<details open>" in page[page.index('id="v-1.0.0"'):], "the newest usable version is the one opened"
    index = files["index.html"]
    item = index[index.index('href="gears/acme/hello.html"'):index.index('href="gears/acme/hello-next.html"')]
    assert '<span class="latest">1.0.0</span>' in item and 'class="badge deprecated"' in item


def test_verify_of_a_yanked_version_still_verifies_and_warns(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    signer = LocalKeySigner.from_pem(generate_private_key("ed25519"), "test key")
    publish(exchange_repo.root, signer, version="1.0.0")
    publish(exchange_repo.root, signer, version="2.0.0")
    exchange_repo.write(f".exchange/keys/{signer.public_key.key_id}.pub", signer.public_key.pem.decode())
    exchange_repo.commit("published\n\nExchange-Processed-By: exchange-cli test")
    record_by_hand(exchange_repo, yanked={"2.0.0": REASON})
    newest = run(exchange_repo, "verify", "acme/hello")
    assert newest.exit_code == 0, newest.output
    assert newest.stdout.splitlines()[-1] == "verified: acme/hello@1.0.0" and newest.stderr == ""
    exact = run(exchange_repo, "verify", "acme/hello@2.0.0", "--format", "json")
    assert exact.exit_code == 0, exact.output
    assert json.loads(exact.stdout)["verified"] is True and json.loads(exact.stdout)["yanked"]["reason"] == REASON
    assert exact.stderr.startswith(f"warning: acme/hello@2.0.0 is yanked: {REASON}")
    (manifest,) = [path for path in (exchange_repo.root / "manifests" / "acme").iterdir()
                   if json.loads(path.read_text())["gear"]["version"] == "2.0.0"]
    by_file = run(exchange_repo, "verify", str(manifest))
    assert by_file.exit_code == 0 and f"acme/hello@2.0.0 is yanked: {REASON}" in by_file.stderr


# --- records: names, hostile content, the trust boundary -------------------------------------------------


def test_a_record_naming_another_gear_is_not_applied_and_reasons_reach_no_terminal_raw(world: CatalogWorld) -> None:
    record_by_hand(world.repo, name="hello-next", yanked={"2.0.0": "planted"})
    listed = run(world.repo, "list")
    assert "yanked" not in listed.stdout and "names another gear than the one its place is for" in listed.stderr
    record_by_hand(world.repo, yanked={"2.0.0": "bad\x1b]0;owned\x07\nline"})
    listed = run(world.repo, "list")
    assert "\x1b" not in listed.output and "\x07" not in listed.output
    assert "yanked: bad\\x1b]0;owned\\x07 line" in listed.stdout


def test_a_boutiques_free_text_name_becomes_a_names_grammar_path(world: CatalogWorld) -> None:
    name = "Word count / v2"
    for version in ("1.0.0", "2.0.0"):
        world.publish("acme", name, version, SpecKind.BOUTIQUE, stem="word-count")
    world.repo.write("boutiques/acme/word-count.json", example_boutique(name=name, **{"tool-version": "2.0.0"}))
    world.repo.commit("a boutique")
    result = run(world.repo, "yank", "boutique:acme/word-count@2.0.0", "--reason", "wrong output")
    assert result.exit_code == 0, result.output
    (record,) = (world.repo.root / ".exchange" / "lifecycle" / "boutiques" / "acme").iterdir()
    assert record.name.startswith("word-count-v2-") and record.suffix == ".json"
    assert json.loads(record.read_text())["name"] == name
    shown = json.loads(run(world.repo, "show", "boutique:acme/word-count", "--format", "json").stdout)
    assert shown["version"] == "1.0.0"


def test_a_pull_request_cannot_yank_or_unyank(world: CatalogWorld, tmp_path: Path) -> None:
    """The record is a control file: validate --base (the branch job) fails a change that touches it."""
    record_by_hand(world.repo, yanked={"2.0.0": REASON})
    world.repo.git("checkout", "-q", "-b", "contribution")
    (world.repo.root / RECORD).unlink()
    world.repo.commit("unyank, quietly")
    result = run(world.repo, "validate", "--base", "master", "--format", "json")
    assert result.exit_code == 1, result.output
    found = {entry["path"]: [p["rule"] for p in entry["problems"]] for entry in json.loads(result.stdout)["results"]}
    assert found == {RECORD: ["protected-path"]}, found


def test_remove_takes_the_gears_record_with_it(world: CatalogWorld, tmp_path: Path) -> None:
    """A version removed and published again must not come back yanked by a record nobody sees."""
    record_by_hand(world.repo, yanked={"2.0.0": REASON, "1.0.0": "old"})
    own_bucket(world.repo, world.bucket, tmp_path / "remote.git")
    result = run(world.repo, "remove", "acme/hello@2.0.0", "-y", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["updated"] == [RECORD]
    assert list(json.loads((world.repo.root / RECORD).read_text())["yanked"]) == ["1.0.0"]
    assert world.repo.git("status", "--porcelain") == ""
    result = run(world.repo, "remove", "acme/hello", "-y")
    assert result.exit_code == 0, result.output
    assert not (world.repo.root / RECORD).exists() and world.repo.git("status", "--porcelain") == ""


def test_process_publishes_a_legacy_catalog_without_the_yanked_version(process_world: ProcessWorld) -> None:
    """The master job's `process --publish-index` reads the records too, not only `exchange index`."""
    assert process(process_world).exit_code == 0
    record_by_hand(process_world.repo, yanked={"1.0.0": REASON})
    process_world.repo.git("push", "-q", "origin", "master")
    published = process(process_world, "--publish-index", "gh-pages-json")
    assert published.exit_code == 0, published.output
    catalog = json.loads(run_git(process_world.remote, "show", "gh-pages-json:exchange.json"))
    assert [[gear["name"] for gear in group] for group in catalog] == [["other"]]
    assert len([name for name in process_world.bucket_objects() if name.endswith(".tgz")]) == 2, "both rootfs stay"


def test_a_linked_record_or_folder_is_named_never_followed(world: CatalogWorld, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"kind": "gear", "org": "acme", "name": "hello",
                                     "yanked": {"2.0.0": {"reason": "x", "by": "y", "at": "z"}}}))
    (world.repo.root / RECORD).parent.mkdir(parents=True)
    (world.repo.root / RECORD).symlink_to(elsewhere)
    listed = run(world.repo, "list")
    assert listed.exit_code == 0 and "yanked" not in listed.stdout
    assert f"warning: not listed: {RECORD}: is a symbolic link" in listed.stderr
    (world.repo.root / RECORD).unlink()
    (world.repo.root / ".exchange" / "lifecycle").rename(tmp_path / "lifecycle")
    (world.repo.root / ".exchange" / "lifecycle").symlink_to(tmp_path / "lifecycle")
    listed = run(world.repo, "list")
    linked = "warning: not listed: .exchange/lifecycle: is a symbolic link; no yank or deprecation is applied"
    assert listed.stderr.splitlines() == [linked]
    refused = run(world.repo, "yank", "acme/hello@2.0.0", "--reason", "x")
    assert refused.exit_code == 2 and "fix or delete it first" in refused.stderr
    assert [p for p in (tmp_path / "lifecycle").rglob("*") if not p.is_dir()] == [], "nothing written through it"


def test_a_decision_git_cannot_commit_leaves_the_tree_as_it_was_and_can_be_made_again(world: CatalogWorld) -> None:
    """With git's index.lock held (an editor's git, say), the record used to stay written and uncommitted,
    and the retry then said "already yanked" while nothing was committed."""
    repo = world.repo
    head = repo.git("rev-parse", "HEAD")
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("")
    held = run(repo, "yank", "acme/hello@2.0.0", "--reason", REASON)
    assert held.exit_code == 2 and "index.lock exists" in one_error_line(held)
    lock.unlink()
    assert repo.git("status", "--porcelain") == "" and repo.git("rev-parse", "HEAD") == head
    again = run(repo, "yank", "acme/hello@2.0.0", "--reason", REASON)
    assert again.exit_code == 0, again.output
    assert repo.git("show", "--name-status", "--format=", "HEAD").split() == ["A", RECORD]

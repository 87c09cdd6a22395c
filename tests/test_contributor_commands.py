"""Contributor and maintainer changes to an exchange: add-gear / add-boutique from files, directories
and git repositories, and remove; plus the lookup commands on an exchange `exchange process` made."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from exchange_cli.specs import SpecKind
from exchange_cli.storage.bucket import open_bucket
from tests.catalog_world import CatalogWorld, populate
from tests.infra.commands import one_error_line
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo, run_git


def run(repo: ExchangeRepo, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, [*args, "--repo", str(repo.root)], input=stdin)


def subjects(repo: ExchangeRepo, since: str) -> list[str]:
    return repo.git("log", "--format=%s", f"{since}..HEAD").splitlines()


def gear_source(tmp_path: Path, **changes) -> Path:
    source = tmp_path / "gear-src"
    source.mkdir(exist_ok=True)
    (source / "manifest.json").write_text(json.dumps(example_gear(**changes), indent=2))
    (source / "run.py").write_text("print('hi')\n")
    return source


# add-gear ----------------------------------------------------------------------------------------

def test_add_gear_from_a_manifest_file_writes_validates_and_commits(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = gear_source(tmp_path) / "manifest.json"
    start = exchange_repo.git("rev-parse", "HEAD")
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    written = exchange_repo.root / "gears" / "acme" / "hello-world.json"
    assert written.read_text() == json.dumps(example_gear(), indent=4) + "\n", "4 spaces, the spec's key order"
    assert list(json.loads(written.read_text())) == list(example_gear())
    assert subjects(exchange_repo, start) == ["Add hello-world gear"]
    assert "+++ b/gears/acme/hello-world.json" in result.output and '+    "name": "hello-world",' in result.output
    assert exchange_repo.git("status", "--porcelain") == ""


def test_add_gear_update_from_a_directory_keeps_the_org_and_says_update(exchange_repo: ExchangeRepo,
                                                                        tmp_path: Path) -> None:
    assert run(exchange_repo, "add-gear", str(gear_source(tmp_path)), "--org", "acme").exit_code == 0
    start = exchange_repo.git("rev-parse", "HEAD")
    result = run(exchange_repo, "add-gear", str(gear_source(tmp_path, version="1.1.0")))
    assert result.exit_code == 0, result.output
    assert subjects(exchange_repo, start) == ["Update hello-world gear to 1.1.0"]
    assert '-    "version": "1.0.0",' in result.output and '+    "version": "1.1.0",' in result.output
    again = run(exchange_repo, "add-gear", str(gear_source(tmp_path, version="1.1.0")))
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert exchange_repo.git("rev-parse", "HEAD") != start and len(subjects(exchange_repo, start)) == 1


def test_an_update_git_cannot_commit_leaves_the_spec_as_it_was(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    """The new spec used to stay written and uncommitted: the retry said "nothing to do" and committed nothing."""
    assert run(exchange_repo, "add-gear", str(gear_source(tmp_path)), "--org", "acme").exit_code == 0
    spec = exchange_repo.root / "gears" / "acme" / "hello-world.json"
    before, head = spec.read_bytes(), exchange_repo.git("rev-parse", "HEAD")
    lock = exchange_repo.root / ".git" / "index.lock"
    lock.write_text("")
    held = run(exchange_repo, "add-gear", str(gear_source(tmp_path, version="1.1.0")))
    assert held.exit_code == 2 and "index.lock exists" in one_error_line(held)
    lock.unlink()
    assert spec.read_bytes() == before and exchange_repo.git("status", "--porcelain") == ""
    again = run(exchange_repo, "add-gear", str(gear_source(tmp_path, version="1.1.0")))
    assert again.exit_code == 0 and subjects(exchange_repo, head) == ["Update hello-world gear to 1.1.0"]


def test_add_gear_without_org_for_a_name_two_orgs_hold_asks_which(exchange_repo: ExchangeRepo,
                                                                    tmp_path: Path) -> None:
    """Sorting the two places found was a TypeError (exit 3); it is the question it was meant to be."""
    for org in ("acme", "labs"):
        assert run(exchange_repo, "add-gear", str(gear_source(tmp_path)), "--org", org).exit_code == 0
    result = run(exchange_repo, "add-gear", str(gear_source(tmp_path, version="1.1.0")))
    assert result.exit_code == 2, result.output
    assert "gear hello-world is held by gears/acme/hello-world.json, gears/labs/hello-world.json; pass --org ORG" \
        in result.output


def test_add_gear_sets_the_image_option_or_refuses_without_one(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    no_image = gear_source(tmp_path, custom={"gear-builder": {"category": "utility"}})
    refused = run(exchange_repo, "add-gear", str(no_image), "--org", "acme")
    assert refused.exit_code == 2 and "names no image" in refused.output and "--image" in refused.output
    assert not (exchange_repo.root / "gears" / "acme").exists()

    result = run(exchange_repo, "add-gear", str(no_image), "--org", "acme", "--image", "registry.example.org/a/b:2.0",
                 "--no-commit")
    assert result.exit_code == 0, result.output
    spec = json.loads((exchange_repo.root / "gears" / "acme" / "hello-world.json").read_text())
    assert spec["custom"]["docker-image"] == "registry.example.org/a/b:2.0"
    assert exchange_repo.git("status", "--porcelain") == "?? gears/"


def test_add_gear_image_option_also_replaces_the_gear_builder_image(exchange_repo: ExchangeRepo,
                                                                    tmp_path: Path) -> None:
    result = run(exchange_repo, "add-gear", str(gear_source(tmp_path)), "--org", "acme", "--image", "r.example.org/x:9")
    assert result.exit_code == 0, result.output
    custom = json.loads((exchange_repo.root / "gears/acme/hello-world.json").read_text())["custom"]
    assert custom["docker-image"] == custom["gear-builder"]["image"] == "r.example.org/x:9"


def test_an_invalid_gear_is_not_written(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = gear_source(tmp_path, license="WTFPL",
                         custom={"gear-builder": {"image": "registry.example.org/x/y"}})
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1
    assert "error[gear-schema]" in result.output and "error[image-unpinned]" in result.output
    assert "gears/acme/hello-world.json was not written" in result.output
    assert not (exchange_repo.root / "gears").exists()


def test_add_gear_from_a_git_url_at_a_ref(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    work = init_repo(tmp_path / "upstream")
    (work / "manifest.json").write_text(json.dumps(example_gear(version="1.0.0"), indent=2))
    run_git(work, "add", "-A")
    run_git(work, "commit", "-q", "-m", "v1")
    run_git(work, "tag", "v1.0.0")
    (work / "manifest.json").write_text(json.dumps(example_gear(version="2.0.0-dev"), indent=2))
    run_git(work, "commit", "-q", "-am", "dev")
    bare = tmp_path / "upstream.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))

    tagged = run(exchange_repo, "add-gear", f"{bare.as_uri()}@v1.0.0", "--org", "acme")
    assert tagged.exit_code == 0, tagged.output
    assert json.loads((exchange_repo.root / "gears/acme/hello-world.json").read_text())["version"] == "1.0.0"
    head = run(exchange_repo, "add-gear", bare.as_uri())
    assert head.exit_code == 0, head.output
    assert json.loads((exchange_repo.root / "gears/acme/hello-world.json").read_text())["version"] == "2.0.0-dev"
    assert exchange_repo.git("log", "-1", "--format=%s") == "Update hello-world gear to 2.0.0-dev"

    missing = run(exchange_repo, "add-gear", f"{bare.as_uri()}@no-such-tag", "--org", "acme")
    assert missing.exit_code == 1 and "no such branch, tag or commit" in missing.output
    unreachable = run(exchange_repo, "add-gear", (tmp_path / "nowhere.git").as_uri(), "--org", "acme")
    assert unreachable.exit_code == 2 and "cannot clone" in unreachable.output


def test_add_boutique_finds_the_descriptor_in_a_directory(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "tool"
    source.mkdir()
    (source / "word-count.json").write_text(json.dumps(example_boutique()))
    (source / "package.json").write_text('{"name": "not a descriptor"}')
    result = run(exchange_repo, "add-boutique", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    assert json.loads((exchange_repo.root / "boutiques/acme/word-count.json").read_text()) == example_boutique()
    assert exchange_repo.git("log", "-1", "--format=%s") == "Add word-count boutique"


def test_add_refuses_a_version_already_processed_with_another_spec(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    world = populate(CatalogWorld(exchange_repo, open_bucket((tmp_path / "b").as_uri()), _mkdir(tmp_path / "w")))
    source = gear_source(tmp_path, name="hello", version="0.9.0", description="changed",
                         custom={"gear-builder": {"image": "registry.example.org/acme/hello:0.9.0"}})
    result = run(world.repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1 and "error[version-taken]" in result.output


# remove ------------------------------------------------------------------------------------------

def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def tracked(repo: ExchangeRepo) -> set[str]:
    return set(repo.git("ls-files").splitlines())


def test_remove_takes_exactly_that_org_and_name_in_one_commit(catalog_world: CatalogWorld) -> None:
    before, start = tracked(catalog_world.repo), catalog_world.repo.git("rev-parse", "HEAD")
    result = run(catalog_world.repo, "remove", "acme/hello", "-y")
    assert result.exit_code == 0, result.output
    gone = before - tracked(catalog_world.repo)
    hello = {p.manifest for p in catalog_world.published if (p.org, p.name) == ("acme", "hello")}
    assert gone == hello | {"gears/acme/hello.json"}
    assert subjects(catalog_world.repo, start) == ["Remove gear acme/hello"]
    assert catalog_world.repo.git("status", "--porcelain") == ""
    assert all(catalog_world.bucket.stat(p.object_name) is not None for p in catalog_world.published), "no --purge: bucket untouched"
    names = {(e["org"], e["name"]) for e in json.loads(run(catalog_world.repo, "list", "--json").output)}
    assert {("acme", "hello-world"), ("acme-labs", "hello")} <= names and ("acme", "hello") not in names


@pytest.fixture
def owned_exchange(catalog_world: CatalogWorld, tmp_path: Path) -> CatalogWorld:
    """The exchange on its remote, which owns the bucket: where --purge deletes, after pushing the removal."""
    catalog_world.own_bucket(tmp_path / "remote.git")
    catalog_world.repo.git("push", "-q", "origin", "master")
    return catalog_world


def test_remove_one_version_with_purge(owned_exchange: CatalogWorld, tmp_path: Path) -> None:
    world = owned_exchange
    start = world.repo.git("rev-parse", "HEAD")
    old = world.find("acme", "hello", "0.9.0")
    result = run(world.repo, "remove", "acme/hello", "--version", "0.9.0", "--purge", "--bucket", world.bucket.uri,
                 "--yes")
    assert result.exit_code == 0, result.output
    assert subjects(world.repo, start) == ["Remove gear acme/hello 0.9.0"]
    assert not (world.repo.root / old.manifest).exists()
    assert (world.repo.root / "gears/acme/hello.json").exists(), "the spec names 1.0.0, it stays"
    assert world.bucket.stat(old.object_name) is None
    others = [p for p in world.published if p != old]
    assert all(world.bucket.stat(p.object_name) is not None for p in others)
    assert run(world.repo, "verify-storage", "--bucket", world.bucket.uri).exit_code == 0
    assert run_git(tmp_path / "remote.git", "rev-parse", "master") == \
        world.repo.git("rev-parse", "HEAD"), "the removal was pushed before the object went"


def test_purge_deletes_nothing_when_the_removal_cannot_be_pushed(owned_exchange: CatalogWorld, tmp_path: Path) -> None:
    """remove --purge used to delete the objects before the removal reached the remote: a fresh clone still
    listed the version, and its verify failed on the missing rootfs."""
    world = owned_exchange
    old = world.find("acme", "hello", "0.9.0")
    hook = tmp_path / "remote.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'master is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = run(world.repo, "remove", "acme/hello@0.9.0", "--purge", "--bucket", world.bucket.uri, "--yes")
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert "origin refused it ([remote rejected] (pre-receive hook declined); master is protected)" in line
    assert "nothing was deleted from the bucket" in line
    assert world.bucket.stat(old.object_name) is not None


def test_purge_keeps_an_object_another_version_still_references(owned_exchange: CatalogWorld) -> None:
    world = owned_exchange
    shared = world.find("acme", "hello-world", "2.0.0")
    with world.bucket.open_read(shared.object_name) as stream:
        content = b"".join(iter(functools.partial(stream.read, 1 << 20), b""))
    world.publish("acme", "hello-world", "2.0.1", rootfs=content)  # same rootfs, so the same object
    world.repo.commit("2.0.1")
    result = run(world.repo, "remove", "acme/hello-world", "--version", "2.0.0", "--purge", "--bucket",
                 world.bucket.uri, "--yes")
    assert result.exit_code == 0, result.output
    assert world.bucket.stat(shared.object_name) is not None


def test_purge_asks_first(owned_exchange: CatalogWorld) -> None:
    world = owned_exchange
    start = world.repo.git("rev-parse", "HEAD")
    result = run(world.repo, "remove", "acme-labs/hello", "--purge", "--bucket", world.bucket.uri, stdin="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert world.repo.git("rev-parse", "HEAD") == start


def test_remove_asks_first_as_its_yes_option_says(catalog_world: CatalogWorld) -> None:
    """-y says "without asking", yet remove without --purge never asked."""
    start = catalog_world.repo.git("rev-parse", "HEAD")
    declined = run(catalog_world.repo, "remove", "acme/hello", stdin="n\n")
    assert declined.exit_code == 1 and "remove 4 file(s) of acme/hello" in declined.output, declined.output
    assert catalog_world.repo.git("rev-parse", "HEAD") == start and catalog_world.repo.git("status", "--porcelain") == ""
    accepted = run(catalog_world.repo, "remove", "acme/hello", stdin="y\n")
    assert accepted.exit_code == 0 and catalog_world.repo.git("rev-parse", "HEAD") != start


def test_remove_unknown_name_or_version(catalog_world: CatalogWorld) -> None:
    assert "no gear or boutique acme/hell " in run(catalog_world.repo, "remove", "acme/hell").output
    result = run(catalog_world.repo, "remove", "acme/hello", "--version", "7.0.0", "-y")
    assert result.exit_code == 2 and "has no version 7.0.0" in result.output


def test_remove_a_name_that_is_both_gear_and_boutique_needs_the_kind(catalog_world: CatalogWorld) -> None:
    catalog_world.spec("acme", "hello", "1.0.0", SpecKind.BOUTIQUE)
    catalog_world.repo.commit("a boutique twin")
    ambiguous = run(catalog_world.repo, "remove", "acme/hello")
    assert ambiguous.exit_code == 2 and "boutique:acme/hello" in ambiguous.output
    result = run(catalog_world.repo, "remove", "boutique:acme/hello", "-y")
    assert result.exit_code == 0, result.output
    assert (catalog_world.repo.root / "gears/acme/hello.json").exists()
    assert not (catalog_world.repo.root / "boutiques/acme/hello.json").exists()


# on a real processed exchange --------------------------------------------------------------------

def test_lookup_commands_on_an_exchange_processed_by_exchange_process(exchange_repo: ExchangeRepo,
                                                                      tmp_path: Path) -> None:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    images, bucket = tmp_path / "images", tmp_path / "bucket"
    images.mkdir()
    bucket.mkdir()
    image = "registry.example.org/acme/hello:0.10.0"
    gear = example_gear(name="hello", version="0.10.0", custom={"gear-builder": {"image": image}})
    build_demo_image(images, image, gear)
    exchange_repo.write("gears/acme/hello.json", gear)
    exchange_repo.commit("add hello")
    exchange_repo.git("push", "-q", "origin", "master")
    processed = CliRunner().invoke(cli, ["process", "--repo", str(exchange_repo.root), "--bucket", bucket.as_uri(),
                                         "--oci-layout", str(images), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert processed.exit_code == 0, processed.output

    listed = json.loads(run(exchange_repo, "list", "--json").output)
    assert listed == [{"org": "acme", "kind": "gear", "name": "hello", "entry": "acme/hello", "deprecated": None,
                       "versions": [{"version": "0.10.0", "processed": True, "state": "processed", "signed": False,
                                     "key-id": None, "yanked": None}]}]
    shown = json.loads(run(exchange_repo, "show", "acme/hello", "--json").output)
    assert shown["image-config-digest"].startswith("sha256:") and shown["platform"] == "linux/amd64"
    fetched = run(exchange_repo, "fetch", "acme/hello@0.10.0", "--output-dir", str(tmp_path / "out"), "--extract")
    assert fetched.exit_code == 0, fetched.output
    tarball = tmp_path / "out" / Path(shown["rootfs-url"]).name
    assert "sha384:" + hashlib.sha384(tarball.read_bytes()).hexdigest() == shown["rootfs-hash"]
    assert (tmp_path / "out" / "acme-hello-0.10.0" / "flywheel" / "v0" / "run").is_file()
    audited = run(exchange_repo, "verify-storage", "--bucket", bucket.as_uri(), "--deep")
    assert audited.exit_code == 0, audited.output


def test_a_value_given_by_an_option_is_blamed_on_the_option(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    """`add-gear --image X` with a bad X blamed a line of the contributor's file that held a good value; an
    org with a space was accepted and published, then could not be named."""
    source = gear_source(tmp_path)
    bad_image = run(exchange_repo, "add-gear", str(source), "--org", "acme", "--image", "r.example.org/x:latest")
    assert bad_image.exit_code == 1
    (line,) = [line for line in bad_image.output.splitlines() if "error[image-unpinned]" in line]
    assert line.startswith(f"{source}/manifest.json: error[image-unpinned]: --image r.example.org/x:latest: "), line
    spaced = run(exchange_repo, "add-gear", str(source), "--org", "Jane Lab")
    assert spaced.exit_code == 2
    assert "--org 'Jane Lab': it holds ' '" in spaced.output and "(e.g. --org jane-lab)" in spaced.output
    assert not (exchange_repo.root / "gears").exists()

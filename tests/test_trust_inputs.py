"""What a command reads on a contributor's or a stranger's say-so: a source directory's links, a served
manifest's URLs, a bucket it is told to clean. None of them may reach a file, an object or a secret that
the person running the command did not choose."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from tests.catalog_world import CatalogWorld, one_gear_world
from tests.cli_world import make_world
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo, run_git
from tests.infra.static_http import serving

TOKEN = "ghp_" + "S3cr3tT0k3n" * 3


def run(repo: ExchangeRepo, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(repo.root)])


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secrets" / "token.json"
    secret.parent.mkdir()
    secret.write_text(f'{{"token": "{TOKEN}", "note": "not a gear"}}\n')
    return secret


def test_add_gear_never_follows_a_link_in_a_source_directory(exchange_repo: ExchangeRepo, tmp_path: Path,
                                                             token_file: Path) -> None:
    """Attack 6: DIR/manifest.json a link to a token file; the link was followed and the token printed."""
    source = tmp_path / "my-gear"
    source.mkdir()
    (source / "manifest.json").symlink_to(token_file)
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1, result.output
    assert f"{source}/manifest.json is a symbolic link" in result.output
    assert TOKEN not in result.output and "not a gear" not in result.output
    assert exchange_repo.git("status", "--porcelain") == ""


def test_add_gear_refuses_a_linked_file_and_add_boutique_a_linked_descriptor(exchange_repo: ExchangeRepo,
                                                                            tmp_path: Path, token_file: Path) -> None:
    link = tmp_path / "manifest.json"
    link.symlink_to(token_file)
    result = run(exchange_repo, "add-gear", str(link), "--org", "acme")
    assert result.exit_code == 1 and "is a symbolic link" in result.output and TOKEN not in result.output

    source = tmp_path / "my-tool"
    source.mkdir()
    (source / "descriptor.json").symlink_to(token_file)
    result = run(exchange_repo, "add-boutique", str(source), "--org", "acme")
    assert result.exit_code == 1 and "descriptor.json is a symbolic link" in result.output, result.output
    assert TOKEN not in result.output


def test_add_gear_reads_a_regular_source_directory_as_before(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "my-gear"
    source.mkdir()
    (source / "manifest.json").write_text(json.dumps(example_gear(name="mine")))
    (source / "run").write_text("#!/bin/sh\n")
    (source / "lib").mkdir()
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    assert (exchange_repo.root / "gears/acme/mine.json").is_file()


def test_add_refuses_a_source_file_over_the_spec_limit_unread(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    with (source / "manifest.json").open("wb") as stream:
        stream.truncate(2 * 1024 * 1024)
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1 and "over the limit" in result.output and "[spec-size]" in result.output


def test_a_boutique_whose_name_is_free_text_is_stored_under_a_grammar_stem(exchange_repo: ExchangeRepo,
                                                                          tmp_path: Path) -> None:
    source = tmp_path / "tool.json"
    source.write_text(json.dumps(example_boutique(name="../../Evil Tool\x1b[2J")))
    result = run(exchange_repo, "add-boutique", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    (written,) = (exchange_repo.root / "boutiques" / "acme").iterdir()
    assert written.name == "evil-tool-2j.json", written.name


def public_key_file(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def served_manifest(site: Path, record: dict) -> str:
    """A manifest a stranger serves: its path below `site`."""
    relative = "manifests/acme/acme-x-sha384-" + "0" * 96 + ".json"
    (site / relative).parent.mkdir(parents=True, exist_ok=True)
    (site / relative).write_text(json.dumps({"gear": example_gear(name="x"), "exchange": record}))
    return relative


def test_a_served_manifest_cannot_make_verify_read_this_machines_files(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 9: `verify URL` of a manifest whose rootfs-url is file:///<a private file> read and hashed
    that file (the verdict then tells its server whether a guess of its content was right)."""
    private = tmp_path / "home" / ".ssh" / "id_ed25519"
    private.parent.mkdir(parents=True)
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n")
    guess = hashlib.sha384(private.read_bytes()).hexdigest()
    site = tmp_path / "site"
    cases = {
        "file": {"rootfs-url": private.as_uri()},
        "another bucket": {"rootfs-url": "gs://someone-elses-bucket/acme-x.tgz"},
        "a local envelope": {"rootfs-url": "http://127.0.0.1:9/x.tgz", "attestation-url": private.as_uri()},
    }
    key = public_key_file(tmp_path / "exchange.pub")
    monkeypatch.chdir(tmp_path)  # not inside any exchange
    for what, urls in cases.items():
        relative = served_manifest(site, {"rootfs-hash": f"sha384:{guess}", "rootfs-size": private.stat().st_size,
                                          **urls})
        with serving(site) as base:
            arguments = ["verify", f"{base}/{relative}", "--key", str(key), "--format", "json"]
            if what == "a local envelope":
                (tmp_path / "x.tgz").write_bytes(private.read_bytes())
                arguments += ["--file", str(tmp_path / "x.tgz")]
            result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 1, (what, result.output)
        report = json.loads(result.stdout)
        failed = report["failure"]
        assert "a document from elsewhere" in failed["reason"], (what, report)
        assert not any(check["ok"] and check["check"] == "rootfs" and "file://" in check["detail"]
                       for check in report["checks"]), what


def test_a_local_manifest_may_still_name_local_files(tmp_path: Path) -> None:
    from exchange_cli.remote import refusal

    assert refusal("file:///srv/bucket/x.tgz", None) is None
    assert refusal("file:///srv/bucket/x.tgz", "file:///srv/exchange/manifests/acme/x.json") is None
    assert refusal("https://storage.example.org/x.tgz", "https://example.org/manifests/x.json") is None
    assert refusal("gs://bucket-a/x.tgz", "gs://bucket-a/manifests/x.json") is None
    assert refusal("gs://bucket-b/x.tgz", "https://example.org/x.json") is not None


@pytest.fixture
def owned(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    """An exchange whose bucket records it as its owner, with one published version and one orphan."""
    world = one_gear_world(exchange_repo, tmp_path)
    world.own_bucket(tmp_path / "remote.git")
    exchange_repo.git("push", "-q", "origin", "master")
    (tmp_path / "work" / "stray").write_bytes(b"left behind")
    world.bucket.upload("acme-stray-sha384-0.tgz", tmp_path / "work" / "stray", size=11,
                        sha384=hashlib.sha384(b"left behind").hexdigest())
    return world


def bucket_files(world: CatalogWorld) -> list[str]:
    return sorted(p.name for p in Path(world.bucket.root).iterdir())  # type: ignore[attr-defined]


def test_delete_orphans_in_a_repository_that_is_not_the_exchange_deletes_nothing(
        owned: CatalogWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 7: any git repository, EXCHANGE_BUCKET_URI set in the shell: every object was deleted, those
    the exchange's pushed manifests reference included."""
    elsewhere = ExchangeRepo(init_repo(tmp_path / "some-project"))
    elsewhere.write("README.md", "not an exchange\n")
    elsewhere.commit("a project")
    elsewhere.git("remote", "add", "origin", str(init_repo(tmp_path / "some-project.git", bare=True)))
    elsewhere.git("push", "-q", "origin", "master")
    monkeypatch.setenv("EXCHANGE_BUCKET_URI", owned.bucket.uri)
    before = bucket_files(owned)
    result = CliRunner().invoke(cli, ["verify-storage", "--delete-orphans", "-y", "--repo", str(elsewhere.root)])
    assert result.exit_code == 2, result.output
    assert (f"belongs to {tmp_path}/remote (master), not to this exchange, {tmp_path}/some-project "
            "(master); nothing is deleted") in result.output
    assert bucket_files(owned) == before


def test_delete_orphans_refuses_a_directory_that_is_not_a_bucket(owned: CatalogWorld, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.pdf").write_bytes(b"%PDF years of work")
    result = CliRunner().invoke(cli, ["verify-storage", "--delete-orphans", "-y", "--bucket", home.as_uri(),
                                      "--repo", str(owned.repo.root)])
    assert result.exit_code == 2, result.output
    assert "has no ownership record (.exchange-owner.json)" in result.output
    assert sorted(p.name for p in home.iterdir()) == ["thesis.pdf"]


def test_a_missing_bucket_is_one_clear_error_not_missing_objects(owned: CatalogWorld, tmp_path: Path) -> None:
    for args in ([], ["--deep"], ["--delete-orphans", "-y"]):
        result = CliRunner().invoke(cli, ["verify-storage", "--bucket", (tmp_path / "nowhere").as_uri(), *args,
                                          "--repo", str(owned.repo.root)])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip() == f"error: bucket directory {tmp_path}/nowhere does not exist", result.output
        assert not (tmp_path / "nowhere").exists()


def test_the_owner_deletes_orphans_from_any_clone_whatever_the_remote_url_form(owned: CatalogWorld,
                                                                               tmp_path: Path) -> None:
    clone = tmp_path / "maintainer"
    run_git(tmp_path, "clone", "-q", f"file://{tmp_path}/remote.git/", str(clone))
    result = CliRunner().invoke(cli, ["verify-storage", "--delete-orphans", "-y", "--bucket", owned.bucket.uri,
                                      "--repo", str(clone)])
    assert result.exit_code == 0, result.output
    assert "acme-stray-sha384-0.tgz" not in bucket_files(owned) and len(bucket_files(owned)) > 1


def test_remote_forms_of_one_repository_name_one_owner() -> None:
    from exchange_cli.ownership import normalised_remote

    forms = ["git@github.com:Org/exchange.git", "https://github.com/Org/exchange", "ssh://git@github.com/Org/exchange.git",
             "https://x-access-token:secret@github.com/Org/exchange.git/", "git+ssh://git@GitHub.com:22/Org/exchange"]
    assert {normalised_remote(form) for form in forms} == {"github.com/Org/exchange"}
    assert normalised_remote("/srv/git/exchange.git") == normalised_remote("file:///srv/git/exchange.git/")


def test_the_first_process_run_records_the_owner_and_another_exchange_is_told(tmp_path: Path) -> None:
    world = make_world(tmp_path / "first", ("hello",))
    result = CliRunner().invoke(cli, [*world.process_args(), "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads((world.bucket / ".exchange-owner.json").read_text())
    assert (record["exchange"], record["branch"]) == (str(world.remote).removesuffix(".git"), "master")

    other = make_world(tmp_path / "second", ("hello",))
    result = CliRunner().invoke(cli, [*other.process_args(), "--bucket", world.bucket.as_uri()])
    assert result.exit_code == 0, result.output
    assert f"is recorded as the bucket of {str(world.remote).removesuffix('.git')} (master)" in result.output
    assert json.loads((world.bucket / ".exchange-owner.json").read_text()) == record, "the record is kept"

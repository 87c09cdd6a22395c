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
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear
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
    from exchange_cli.fetch.sources import refusal

    assert refusal("file:///srv/bucket/x.tgz", None) is None
    assert refusal("file:///srv/bucket/x.tgz", "file:///srv/exchange/manifests/acme/x.json") is None
    assert refusal("https://storage.example.org/x.tgz", "https://example.org/manifests/x.json") is None
    assert refusal("gs://bucket-a/x.tgz", "gs://bucket-a/manifests/x.json") is None
    assert refusal("gs://bucket-b/x.tgz", "https://example.org/x.json") is not None

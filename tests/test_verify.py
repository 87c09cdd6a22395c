"""`exchange verify` on a publication made by hand (a rootfs, its envelope and a manifest in a
directory served as file:// URLs): the command's inputs, outputs and exit codes. The attacks on
what `process` publishes are in test_provenance_process.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from tests.infra.gitrepo import ExchangeRepo
from tests.infra.publication import Publication, publish


@pytest.fixture
def publication(tmp_path: Path) -> Publication:
    return publish(tmp_path, LocalKeySigner.from_pem(generate_private_key("ecdsa-p256"), "test key"))


def test_a_manifest_file_verifies_with_a_pinned_key(publication: Publication) -> None:
    result = publication.verify(str(publication.manifest), "--key", str(publication.key))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == ["rootfs", "envelope", "signature", "statement", "subject",
                                                        "provenance", "attestation"]
    assert lines[-1] == f"verified: {publication.manifest}"


def test_json_output_names_the_first_failure_for_platforms(publication: Publication) -> None:
    good = json.loads(publication.verify(str(publication.manifest), "--key", str(publication.key), "--format",
                                         "json").output)
    assert good["verified"] is True and good["failure"] is None
    assert good["key-id"] == publication.signer.public_key.key_id
    assert good["subject"]["digest"]["sha384"] == publication.rootfs.name.split("-sha384-")[1][:-4]
    publication.rootfs.write_bytes(publication.rootfs.read_bytes()[:-1] + b"X")
    result = publication.verify(str(publication.manifest), "--key", str(publication.key), "--format", "json")
    assert result.exit_code == 1
    bad = json.loads(result.output)
    assert bad["verified"] is False and bad["failure"]["check"] == "rootfs"
    assert "the rootfs was tampered with or corrupted" in bad["failure"]["reason"]
    assert [check["check"] for check in bad["checks"]] == ["rootfs"], "stops at the first failure"


def test_file_and_attestation_options_replace_the_downloads(publication: Publication, tmp_path: Path) -> None:
    local_rootfs, local_envelope = tmp_path / "rootfs.tgz", tmp_path / "env.intoto.jsonl"
    local_rootfs.write_bytes(publication.rootfs.read_bytes())
    local_envelope.write_bytes(publication.envelope.read_bytes())
    publication.rootfs.unlink()
    publication.envelope.unlink()
    result = publication.verify(str(publication.manifest), "--key", str(publication.key))
    assert result.exit_code == 1 and "FAIL rootfs" in result.output and "cannot download the rootfs" in result.output
    result = publication.verify(str(publication.manifest), "--key", str(publication.key), "--file", str(local_rootfs),
                                "--attestation", str(local_envelope))
    assert result.exit_code == 0, result.output


def test_a_manifest_url_verifies_too(publication: Publication) -> None:
    result = publication.verify(publication.manifest.as_uri(), "--key", str(publication.key))
    assert result.exit_code == 0, result.output


def test_a_manifest_saved_anywhere_verifies_and_its_folder_is_not_taken_for_an_org(publication: Publication,
                                                                                   tmp_path: Path) -> None:
    """A platform saves the manifest as downloads/manifest.json: `downloads` is no org, the envelope's is."""
    saved = tmp_path / "downloads" / "manifest.json"
    saved.parent.mkdir()
    saved.write_bytes(publication.manifest.read_bytes())
    result = publication.verify(str(saved), "--key", str(publication.key))
    assert result.exit_code == 0, result.output
    assert "ok   provenance  gear acme/hello 1.0.0" in result.output


def test_a_manifest_placed_under_another_org_still_fails(publication: Publication, tmp_path: Path) -> None:
    """Where the layout does name an org (manifests/<org>/), it must be the one the envelope attests."""
    placed = tmp_path / "mirror" / "manifests" / "mallory" / publication.manifest.name
    placed.parent.mkdir(parents=True)
    placed.write_bytes(publication.manifest.read_bytes())
    result = publication.verify(str(placed), "--key", str(publication.key))
    assert result.exit_code == 1 and "FAIL provenance" in result.output and "gear mallory/hello" in result.output


def test_without_a_key_verify_is_a_usage_error(publication: Publication, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(publication.root)
    result = publication.verify(str(publication.manifest))
    assert result.exit_code == 2 and "no public key to verify with" in result.output


def test_an_unsigned_manifest_fails_verification(publication: Publication) -> None:
    document = json.loads(publication.manifest.read_text())
    del document["exchange"]["attestation-url"], document["exchange"]["attestation-sha256"]
    publication.manifest.write_text(json.dumps(document))
    result = publication.verify(str(publication.manifest), "--key", str(publication.key))
    assert result.exit_code == 1 and "has no attestation-url: this version was published unsigned" in result.output


def test_org_name_version_uses_the_exchange_and_its_committed_key(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    signer = LocalKeySigner.from_pem(generate_private_key("ed25519"), "test key")
    made = publish(exchange_repo.root, signer)
    exchange_repo.write(f".exchange/keys/{signer.public_key.key_id}.pub", signer.public_key.pem.decode())
    exchange_repo.commit("published by hand")
    by_hand = CliRunner().invoke(cli, ["verify", "acme/hello@1.0.0", "--repo", str(exchange_repo.root)])
    assert by_hand.exit_code == 1 and "FAIL custody" in by_hand.output and "not a process run" in by_hand.output
    accepted = CliRunner().invoke(cli, ["verify", "acme/hello@1.0.0", "--repo", str(exchange_repo.root),
                                        "--allow-unprocessed"])
    assert accepted.exit_code == 0, accepted.output
    exchange_repo.git("commit", "-q", "--amend", "-m", "published\n\nExchange-Processed-By: exchange-cli test")
    result = CliRunner().invoke(cli, ["verify", "acme/hello@1.0.0", "--repo", str(exchange_repo.root)])
    assert result.exit_code == 0, result.output
    assert "a process run (Exchange-Processed-By: exchange-cli test)" in result.output
    assert result.output.splitlines()[-1] == "verified: acme/hello@1.0.0"
    assert f"signed by the exchange's key {signer.public_key.key_id}" in result.output
    other = LocalKeySigner.from_pem(generate_private_key("ed25519"), "other")
    result = CliRunner().invoke(cli, ["verify", "acme/hello", "--repo", str(exchange_repo.root), "--key",
                                      str(publish(tmp_path / "o", other).key)])
    assert result.exit_code == 1 and "FAIL signature" in result.output and "signed by another key" in result.output
    assert made.manifest.exists()

"""Signed provenance with the GCS emulator as the bucket: one machine, and fan-out shards (a clone each, run
one after another: what is signed where is the test here; shards at once are tests/test_shards.py's) with
the finalize step signing; `exchange verify` downloads over HTTP from the emulator."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.gcs import gcs_objects
from tests.infra.gitrepo import ExchangeRepo
from tests.infra.provenance import independent_verify
from tests.infra.shards import FanOut


def init_key(repo: ExchangeRepo, key_file: Path) -> bytes:
    result = CliRunner().invoke(cli, ["keys", "init", "--repo", str(repo.root), "--generate", str(key_file)])
    assert result.exit_code == 0, result.output
    repo.git("push", "-q", "origin", "master")
    (public,) = (repo.root / ".exchange" / "keys").glob("*.pub")
    return public.read_bytes()


def test_one_machine_signs_into_gcs_and_verify_downloads_over_http(fanout: FanOut, gcs_emulator) -> None:
    key_file = fanout.tmp / "secrets" / "exchange.key"
    public = init_key(fanout.repo, key_file)
    bucket = fanout.bucket_uri.removeprefix("gs://")
    result = CliRunner().invoke(cli, ["process", "--repo", str(fanout.repo.root), "--bucket", fanout.bucket_uri,
                                      "--download-url", f"{gcs_emulator.host}/{bucket}", "--oci-layout",
                                      str(fanout.images), "--cache-dir", str(fanout.tmp / "cache"), "--quiet",
                                      "--sign-key", str(key_file)])
    assert result.exit_code == 0, result.output
    objects = gcs_objects(fanout.bucket_uri)
    envelopes = {name: data for name, data in objects.items() if name.endswith(".intoto.jsonl")}
    assert len(envelopes) == 5 and len(objects) == 15  # each rootfs with its envelope and its SBOM
    for name, data in envelopes.items():
        statement = independent_verify(data.splitlines()[0], public)
        assert statement["subject"][0]["name"] == name.removesuffix(".intoto.jsonl")
    verified = CliRunner().invoke(cli, ["verify", "acme/charlie", "--repo", str(fanout.repo.root)])
    assert verified.exit_code == 0, verified.output
    assert f"{gcs_emulator.host}/{bucket}/acme-charlie-sha384-" in verified.output
    audit = CliRunner().invoke(cli, ["verify-storage", "--repo", str(fanout.repo.root), "--bucket", fanout.bucket_uri,
                                     "--deep", "--json"])
    assert audit.exit_code == 0, audit.output
    assert json.loads(audit.output)["envelopes-checked"] == 5


def test_shards_hash_and_finalize_signs_every_artifact(fanout: FanOut, tmp_path: Path) -> None:
    key_file = fanout.tmp / "secrets" / "exchange.key"
    public = init_key(fanout.repo, key_file)
    fanout.run_shards_here((1, 2, 3), "--sign-key", str(key_file))
    assert all(entry["sha256"] for record in fanout.records().values() for entry in record["artifacts"])
    assert not any(name.endswith(".intoto.jsonl") for name in gcs_objects(fanout.bucket_uri)), "shards do not sign"
    result = fanout.finalize("--sign-key", str(key_file))
    assert result.exit_code == 0, result.output
    objects = gcs_objects(fanout.bucket_uri)
    for path in sorted((fanout.repo.root / "manifests" / "acme").glob("*.json")):
        block = json.loads(path.read_text())["exchange"]
        artifact, envelope = Path(block["rootfs-url"]).name, Path(block["attestation-url"]).name
        assert envelope == artifact + ".intoto.jsonl"
        sbom = Path(block["sbom-url"]).name
        assert sbom == artifact + ".sbom.json"
        independent_verify(objects[envelope].splitlines()[0], public)
        for name in (artifact, envelope, sbom):
            (tmp_path / name).write_bytes(objects[name])
        verified = CliRunner().invoke(cli, ["verify", str(path), "--file", str(tmp_path / artifact),
                                            "--attestation", str(tmp_path / envelope), "--sbom", str(tmp_path / sbom)])
        assert verified.exit_code == 0, verified.output


def test_finalize_that_signs_refuses_shards_that_did_not_hash_and_removes_everything(fanout: FanOut) -> None:
    key_file = fanout.tmp / "secrets" / "exchange.key"
    init_key(fanout.repo, key_file)
    start = fanout.remote_head()
    fanout.run_shards_here()  # without --sign-key: no sha256 recorded
    result = fanout.finalize("--sign-key", str(key_file))
    assert result.exit_code == 1
    assert "run the shards with --sign-key or EXCHANGE_SIGNING_KEY too" in result.output
    assert gcs_objects(fanout.bucket_uri) == {}, "every shard's objects removed: signed all or nothing"
    assert fanout.remote_head() == start

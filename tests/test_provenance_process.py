"""`exchange process --sign-key` and `exchange verify` on what it published: a signed envelope beside
every artifact, under the run's transaction rules, and every attack on it refused with its reason.
Envelopes are also checked with `cryptography` alone, so our verifier is not the only judge."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.provenance.dsse import sign_envelope
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.testgates import GATES_ENV
from tests.infra.commands import catalog_site
from tests.infra.gitrepo import ExchangeRepo, run_git
from tests.infra.kms import KmsStandIn
from tests.infra.process_world import World, forget_sbom, manifests, reject_pushes
from tests.infra.provenance import KMS_NAME, Signed, independent_verify


def test_signed_run_puts_a_verifiable_envelope_beside_every_artifact(signed_process: Signed) -> None:
    result = signed_process.process()
    assert result.exit_code == 0, result.output
    for name in ("hello", "other"):
        block = signed_process.block(name)
        artifact, envelope = signed_process.bucket_file(block["rootfs-url"]), signed_process.bucket_file(block["attestation-url"])
        assert envelope.name == artifact.name + ".intoto.jsonl"
        content = envelope.read_bytes()
        assert block["attestation-sha256"] == hashlib.sha256(content).hexdigest()
        # cryptography alone: PAE rebuilt by hand, the signature checked with the committed public key.
        provenance_line, sbom_line = content.splitlines(keepends=True)
        statement = independent_verify(provenance_line, signed_process.signer.public_key.pem)
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        assert statement["subject"] == [{"name": artifact.name, "digest": {
            "sha384": hashlib.sha384(artifact.read_bytes()).hexdigest(),
            "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}}]
        definition = statement["predicate"]["buildDefinition"]
        spec_path = f"gears/acme/{name}.json"
        assert definition["externalParameters"]["spec"]["path"] == spec_path
        assert definition["externalParameters"]["spec"]["digest"]["gitBlob"] == \
            signed_process.world.repo.git("rev-parse", f"{block['git-commit']}:{spec_path}")
        dependencies = {d["name"]: d for d in definition["resolvedDependencies"]}
        assert dependencies["source"]["digest"] == {"gitCommit": block["git-commit"]}
        assert dependencies["source"]["uri"] == "git+" + signed_process.world.remote.resolve().as_uri()
        assert dependencies["image"]["annotations"]["configDigest"] == block["image-config-digest"]
        builder = statement["predicate"]["runDetails"]["builder"]
        assert set(builder["version"]) == {"exchange-cli", "isal"}
        # The second line: the SBOM beside the rootfs, signed for the same subject.
        sbom = signed_process.bucket_file(block["sbom-url"])
        assert sbom.name == artifact.name + ".sbom.json"
        assert block["sbom-sha256"] == hashlib.sha256(sbom.read_bytes()).hexdigest()
        sbom_statement = independent_verify(sbom_line, signed_process.signer.public_key.pem)
        assert sbom_statement["predicateType"] == "https://cyclonedx.org/bom"
        assert sbom_statement["subject"] == statement["subject"]
        assert sbom_statement["predicate"] == json.loads(sbom.read_bytes())
        verified = signed_process.verify(f"acme/{name}", "--format", "json")
        assert verified.exit_code == 0, verified.output
        checks = {check["check"]: check["ok"] for check in json.loads(verified.output)["checks"]}
        assert checks["sbom"] and checks["sbom-statement"]
    objects = sorted(p.name for p in signed_process.world.bucket.iterdir() if not p.name.startswith("."))
    assert len(objects) == 6 and sum(name.endswith(".intoto.jsonl") for name in objects) == 2
    assert sum(name.endswith(".sbom.json") for name in objects) == 2


def test_the_ci_run_url_is_the_invocation_id(signed_process: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCLE_BUILD_URL", "https://circleci.example.org/gh/acme/exchange/77")
    assert signed_process.process().exit_code == 0
    line = signed_process.bucket_file(signed_process.block("hello")["attestation-url"]).read_bytes().splitlines()[0]
    statement = json.loads(base64.b64decode(json.loads(line)["payload"]))
    assert statement["predicate"]["runDetails"]["metadata"] == {
        "invocationId": "https://circleci.example.org/gh/acme/exchange/77"}


# The attacks ---------------------------------------------------------------------------------------

def failure(signed: Signed, target: str, *extra: str) -> dict:
    result = signed.verify(target, "--format", "json", *extra)
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["verified"] is False
    return report["failure"]


@pytest.fixture
def verified_publication(signed_process: Signed) -> Signed:
    assert signed_process.process().exit_code == 0
    for name in ("hello", "other"):
        assert signed_process.verify(f"acme/{name}").exit_code == 0
    return signed_process


def test_attack_tampered_rootfs(verified_publication: Signed) -> None:
    artifact = verified_publication.bucket_file(verified_publication.block("hello")["rootfs-url"])
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "rootfs" and "the rootfs was tampered with or corrupted" in found["reason"]


def _envelope(published: Signed, name: str) -> tuple[Path, dict]:
    path = published.bucket_file(published.block(name)["attestation-url"])
    return path, json.loads(path.read_bytes().splitlines()[0])  # the provenance's envelope


def _store(published: Signed, name: str, path: Path, envelope: dict) -> None:
    """Write the altered envelope and, as an attacker who can push would, re-pin its sha256 in the manifest."""
    content = (json.dumps(envelope) + "\n").encode()
    path.write_bytes(content)
    published.edit_block(name, attestation_sha256=hashlib.sha256(content).hexdigest())


def test_attack_tampered_envelope_payload(verified_publication: Signed) -> None:
    path, envelope = _envelope(verified_publication, "hello")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["image"] = "evil.example.org/x:1"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    _store(verified_publication, "hello", path, envelope)
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "signature"
    assert "does not verify with the exchange's key" in found["reason"] and "altered after signing" in found["reason"]


def test_attack_tampered_signature(verified_publication: Signed) -> None:
    path, envelope = _envelope(verified_publication, "hello")
    signature = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    signature[-1] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(signature)).decode()
    _store(verified_publication, "hello", path, envelope)
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "signature" and "does not verify with the exchange's key" in found["reason"]


def test_attack_tampered_sbom(verified_publication: Signed) -> None:
    sbom = verified_publication.bucket_file(verified_publication.block("hello")["sbom-url"])
    document = json.loads(sbom.read_bytes())
    document.setdefault("components", []).clear()  # hide every package
    sbom.write_bytes(json.dumps(document).encode())
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "sbom" and "it was changed or corrupted" in found["reason"]
    # An attacker who can push re-pins the altered SBOM: its signed statement still tells.
    verified_publication.edit_block("hello", sbom_sha256=hashlib.sha256(sbom.read_bytes()).hexdigest())
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "sbom-statement"
    assert "the signed SBOM statement's predicate is not the SBOM file the manifest pins" in found["reason"]


def test_attack_sbom_of_another_rootfs(verified_publication: Signed) -> None:
    other = verified_publication.block("other")
    verified_publication.edit_block("hello", sbom_url=other["sbom-url"], sbom_sha256=other["sbom-sha256"])
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "sbom-statement" and "predicate is not the SBOM file" in found["reason"]


def test_attack_envelope_signed_by_another_key(verified_publication: Signed) -> None:
    path, envelope = _envelope(verified_publication, "hello")
    intruder = LocalKeySigner.from_pem(generate_private_key("ed25519"), "intruder")
    forged = sign_envelope(base64.b64decode(envelope["payload"]), intruder).as_json()
    _store(verified_publication, "hello", path, forged)
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "signature"
    assert f"signed by another key (key id {intruder.public_key.key_id[:16]})" in found["reason"]


def test_attack_envelope_for_another_artifact(verified_publication: Signed) -> None:
    other = verified_publication.block("other")
    verified_publication.edit_block("hello", attestation_url=other["attestation-url"],
                         attestation_sha256=other["attestation-sha256"])
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "subject" and "the envelope attests another artifact" in found["reason"]


def test_attack_manifest_edited_to_point_at_another_object(verified_publication: Signed) -> None:
    other = verified_publication.block("other")
    verified_publication.edit_block("hello", rootfs_url=other["rootfs-url"], rootfs_hash=other["rootfs-hash"],
                         rootfs_size=other["rootfs-size"])
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "subject" and "the envelope attests another artifact" in found["reason"]
    # Everything about the artifact swapped, its envelope and digests too: the signed spec still tells.
    verified_publication.edit_block("hello", **{key.replace("-", "_"): value for key, value in other.items()})
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "provenance"
    assert "the envelope attests gear acme/other (gears/acme/other.json), but the manifest is for gear acme/hello" \
        in found["reason"]


def test_attack_replayed_envelope_of_an_older_version(verified_publication: Signed) -> None:
    world = verified_publication.world
    old = verified_publication.block("hello")
    world.add_gear("acme", "hello", "2.0.0", description="A newer hello.")
    world.repo.commit("hello 2.0.0")
    world.repo.git("push", "-q", "origin", "master")
    assert verified_publication.process().exit_code == 0
    newer = [p for p in (world.repo.root / "manifests" / "acme").glob("acme-hello-*.json")
             if json.loads(p.read_text())["gear"]["version"] == "2.0.0"]
    assert len(newer) == 1
    assert verified_publication.verify("acme/hello@2.0.0").exit_code == 0
    # The newest manifest made to serve the old rootfs with its (valid, signed) old envelope.
    document = json.loads(newer[0].read_text())
    document["exchange"].update({key: old[key] for key in ("rootfs-url", "rootfs-hash", "rootfs-size",
                                                           "attestation-url", "attestation-sha256")})
    newer[0].write_text(json.dumps(document, indent=2))
    found = failure(verified_publication, "acme/hello@2.0.0")
    assert found["check"] == "provenance"
    assert ("the envelope attests version 1.0.0 of acme/hello, but the manifest is for version 2.0.0: an envelope "
            "replayed from another version") in found["reason"]


def test_attack_another_valid_envelope_than_the_manifest_pins(verified_publication: Signed) -> None:
    path, envelope = _envelope(verified_publication, "hello")
    again = sign_envelope(base64.b64decode(envelope["payload"]), verified_publication.signer)  # ECDSA: other bytes, same facts
    path.write_bytes(again.line())
    found = failure(verified_publication, "acme/hello")
    assert found["check"] == "attestation" and "but the manifest pins" in found["reason"]


# The transaction -----------------------------------------------------------------------------------

def test_push_failure_deletes_the_envelopes_with_the_artifacts(signed_process: Signed) -> None:
    before = signed_process.world.bucket_objects()
    start = signed_process.world.repo.git("rev-parse", "HEAD")
    reject_pushes(signed_process.world.remote)
    result = signed_process.process()
    assert result.exit_code == 2
    assert "deleted 6 object(s)" in result.output and ".intoto.jsonl" in result.output and ".sbom.json" in result.output
    assert signed_process.world.bucket_objects() == before
    assert signed_process.world.repo.git("rev-parse", "HEAD") == start


def test_a_signer_that_fails_midway_publishes_nothing(signed_process: Signed, kms_stand_in: KmsStandIn) -> None:
    # Every artifact signed, or none: the second signature is refused, the first envelope goes too.
    kms_stand_in.keys[KMS_NAME] = serialization_key(signed_process.key_file)
    kms_stand_in.signatures_left = 1
    start = signed_process.world.repo.git("rev-parse", "HEAD")
    result = CliRunner().invoke(cli, signed_process.world.args("--sign-key", f"gcpkms://{KMS_NAME}"))
    assert result.exit_code == 1, result.output
    assert "cannot sign with gcpkms://" in result.output and "HTTP 403" in result.output
    assert signed_process.world.bucket_objects() == {}
    assert signed_process.world.repo.git("rev-parse", "HEAD") == start and manifests(signed_process.world) == {}
    kms_stand_in.signatures_left = None
    assert CliRunner().invoke(cli, signed_process.world.args("--sign-key", f"gcpkms://{KMS_NAME}")).exit_code == 0
    assert signed_process.verify("acme/hello").exit_code == 0 and signed_process.verify("acme/other").exit_code == 0


def serialization_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def test_a_key_not_committed_to_the_exchange_is_refused_before_any_work(signed_process: Signed, tmp_path: Path) -> None:
    stray = tmp_path / "stray.key"
    stray.write_bytes(generate_private_key("ed25519"))
    result = CliRunner().invoke(cli, signed_process.world.args("--sign-key", str(stray)))
    assert result.exit_code == 2 and "is not in .exchange/keys/" in result.output
    assert signed_process.world.bucket_objects() == {}


def test_a_second_run_of_the_same_commit_reuses_the_envelopes(signed_process: Signed, tmp_path: Path) -> None:
    # Two CI runs of one commit (a retried job): the second finds the first's artifacts and envelopes,
    # attesting the same build, reuses them, and its replay finds the manifests already pushed.
    world = signed_process.world
    clone = tmp_path / "second"
    run_git(tmp_path, "clone", "-q", str(world.remote), str(clone))
    run_git(clone, "config", "user.name", "T")
    run_git(clone, "config", "user.email", "t@t.invalid")
    assert signed_process.process().exit_code == 0
    first, objects, head = manifests(world), world.bucket_objects(), world.remote_head()
    second = World(ExchangeRepo(clone), world.remote, world.images, world.bucket, tmp_path / "cache2")
    result = CliRunner().invoke(cli, second.args("--sign-key", str(signed_process.key_file), "--retries", "1"))
    assert result.exit_code == 0, result.output
    assert result.output.count("was already pushed by another run; skipped") == 2
    # Same bytes: re-signing with ECDSA would have made other envelopes, so these are the first run's.
    assert world.bucket_objects() == objects and world.remote_head() == head
    assert manifests(second) == first


def test_an_envelope_in_the_way_that_is_not_ours_stops_the_run(signed_process: Signed, tmp_path: Path) -> None:
    world = signed_process.world
    exported = CliRunner().invoke(cli, ["export", f"oci:{world.images}:registry.example.org/acme/hello:1.0.0", "-o",
                                        str(tmp_path / "hello.tgz"), "--quiet", "--format", "json"])
    name = f"acme-hello-{json.loads(exported.output)['sha384'].replace(':', '-')}.tgz.intoto.jsonl"
    intruder = LocalKeySigner.from_pem(generate_private_key("ed25519"), "intruder")
    (world.bucket / name).write_bytes(sign_envelope(b"{}", intruder).line())
    before, start = world.bucket_objects(), world.repo.git("rev-parse", "HEAD")
    result = signed_process.process()
    assert result.exit_code == 1
    assert f"{name} already exists and is not signed by this key; envelopes are never overwritten" in result.output
    assert world.bucket_objects() == before, "the run's artifacts are gone, the envelope in the way untouched"
    assert world.repo.git("rev-parse", "HEAD") == start


def test_the_private_key_never_leaves_its_file(process_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = generate_private_key("ed25519")
    signer = LocalKeySigner.from_pem(pem, "t")
    process_world.repo.write(f".exchange/keys/{signer.public_key.key_id}.pub", signer.public_key.pem.decode())
    process_world.repo.commit("key")
    process_world.repo.git("push", "-q", "origin", "master")
    encoded = base64.b64encode(pem).decode()
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY", encoded)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(cli, process_world.args("--report", str(reports), "--format", "json"))
    assert result.exit_code == 0, result.output
    assert len(list(process_world.bucket.glob("*.intoto.jsonl"))) == 2
    secrets = [encoded, "".join(pem.decode().splitlines()[1:-1]), "PRIVATE KEY"]
    places = {"output": result.output, "git": process_world.repo.git("log", "--all", "-p") + run_git(process_world.remote, "log", "-p")}
    places |= {str(p): p.read_bytes().decode(errors="replace") for p in reports.rglob("*") if p.is_file()}
    places |= {str(p): p.read_bytes().decode(errors="replace") for p in process_world.bucket.rglob("*") if p.is_file()}
    places |= {str(p): p.read_text() for p in (process_world.repo.root / "manifests").rglob("*.json")}
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"the private key shows in {where}"


# verify-storage --deep and the catalog ----------------------------------------------------------

def storage_audit(signed: Signed, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["verify-storage", "--repo", str(signed.world.repo.root), "--bucket",
                                      signed.world.bucket.as_uri(), "--json", *extra])
    return result.exit_code, json.loads(result.output)


def test_verify_storage_counts_envelopes_as_referenced_and_deep_checks_them(verified_publication: Signed) -> None:
    code, audit = storage_audit(verified_publication, "--deep")
    assert code == 0 and audit["ok"], audit
    assert audit["orphans"] == [] and audit["envelopes-checked"] == 2 and audit["unsigned-manifests"] == []
    # An envelope replaced by one that is signed by this key but attests the other artifact.
    hello, other = verified_publication.block("hello"), verified_publication.block("other")
    shutil.copy(verified_publication.bucket_file(other["attestation-url"]), verified_publication.bucket_file(hello["attestation-url"]))
    code, audit = storage_audit(verified_publication)
    assert code == 0, "without --deep an envelope is only looked for"
    code, audit = storage_audit(verified_publication, "--deep")
    assert code == 1
    [damaged] = audit["damaged"]
    assert damaged["object"] == Path(hello["attestation-url"]).name
    assert damaged["problem"].startswith("its envelope fails the subject check: the envelope attests another artifact")
    verified_publication.bucket_file(hello["attestation-url"]).unlink()
    code, audit = storage_audit(verified_publication)
    assert code == 1 and [m["object"] for m in audit["missing"]] == [Path(hello["attestation-url"]).name]


def test_verify_storage_counts_sboms_as_referenced_and_deep_checks_them(verified_publication: Signed) -> None:
    hello, other = verified_publication.block("hello"), verified_publication.block("other")
    sbom = verified_publication.bucket_file(hello["sbom-url"])
    sbom.write_bytes(verified_publication.bucket_file(other["sbom-url"]).read_bytes())  # another rootfs's SBOM
    code, audit = storage_audit(verified_publication)
    assert code == 0 and audit["orphans"] == [], "without --deep an SBOM is only looked for"
    code, audit = storage_audit(verified_publication, "--deep")
    assert code == 1
    [damaged] = audit["damaged"]
    assert damaged["object"] == sbom.name and "it was changed or corrupted" in damaged["problem"]
    sbom.unlink()
    code, audit = storage_audit(verified_publication)
    assert code == 1 and [m["object"] for m in audit["missing"]] == [sbom.name]


def test_verify_storage_deep_lists_unsigned_manifests_without_failing(signed_process: Signed) -> None:
    assert signed_process.process(sign=False).exit_code == 0
    code, audit = storage_audit(signed_process, "--deep")
    assert code == 0 and len(audit["unsigned-manifests"]) == 2 and audit["envelopes-checked"] == 0


def test_removing_a_signed_version_with_purge_deletes_its_envelope(verified_publication: Signed) -> None:
    hello = verified_publication.block("hello")
    result = CliRunner().invoke(cli, ["remove", "acme/hello", "--purge", "--yes", "--repo",
                                      str(verified_publication.world.repo.root), "--bucket", verified_publication.world.bucket.as_uri()])
    assert result.exit_code == 0, result.output
    assert not verified_publication.bucket_file(hello["attestation-url"]).exists()
    assert not verified_publication.bucket_file(hello["rootfs-url"]).exists()
    assert not verified_publication.bucket_file(hello["sbom-url"]).exists()
    code, audit = storage_audit(verified_publication)
    assert code == 0 and audit["orphans"] == []


def test_catalog_shows_a_signed_badge_and_the_verify_command(verified_publication: Signed, tmp_path: Path) -> None:
    world = verified_publication.world
    world.add_gear("acme", "plain", "1.0.0")
    world.repo.commit("an unsigned gear")
    world.repo.git("push", "-q", "origin", "master")
    assert verified_publication.process(sign=False).exit_code == 0
    site = catalog_site(world.repo.root, tmp_path)
    page = (site / "gears/acme/hello.html").read_text()
    assert '<span class="badge signed"' in page and ">exchange verify acme/hello@1.0.0</code>" in page
    unsigned = (site / "gears/acme/plain.html").read_text()
    assert "badge signed" not in unsigned and "exchange verify" not in unsigned


# Other judges --------------------------------------------------------------------------------------

def third_party_check(content: bytes, public_pem: bytes) -> None:
    """securesystemslib's DSSE verifier (by DSSE's authors) and the in-toto attestation framework's own
    protobuf bindings, which reject unknown fields, accept what `process` published: the provenance, and
    the SBOM statement, whose predicate also passes CycloneDX's own schema."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    provenance, sbom = content.splitlines()
    third_party_statement(provenance, public_pem, "https://slsa.dev/provenance/v1")
    predicate = third_party_statement(sbom, public_pem, "https://cyclonedx.org/bom")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(predicate)) is None


def third_party_statement(line: bytes, public_pem: bytes, predicate_type: str) -> dict:
    from cryptography.hazmat.primitives import serialization
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    document = json.loads(line)
    key = SSlibKey.from_crypto(serialization.load_pem_public_key(public_pem), keyid=document["signatures"][0]["keyid"])
    assert list(Envelope.from_dict(document).verify([key], 1)) == [key.keyid]
    statement = json.loads(base64.b64decode(document["payload"]))
    Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
    assert statement["predicateType"] == predicate_type
    if predicate_type == "https://slsa.dev/provenance/v1":
        json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())  # strict: no field of ours unknown
    return statement["predicate"]


def test_third_party_verifiers_accept_the_ecdsa_envelopes(verified_publication: Signed) -> None:
    for name in ("hello", "other"):
        third_party_check(verified_publication.bucket_file(verified_publication.block(name)["attestation-url"]).read_bytes(),
                          verified_publication.signer.public_key.pem)


def test_third_party_verifiers_accept_the_demos_ed25519_envelope(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")]).exit_code == 0
    (envelope,) = (tmp_path / "demo" / "bucket").glob("*.intoto.jsonl")
    (public,) = (tmp_path / "demo" / "exchange" / ".exchange" / "keys").glob("*.pub")
    third_party_check(envelope.read_bytes(), public.read_bytes())


def test_an_envelope_is_forgotten_with_its_artifact_when_another_runs_manifest_takes_them() -> None:
    from exchange_cli.process.ledger import CreatedObjects

    ledger = CreatedObjects()
    ledger.record("a.tgz", "1")
    ledger.record("a.tgz.intoto.jsonl", "2", beside="a.tgz")
    ledger.record("b.tgz", "3")
    ledger.forget("a.tgz")  # a replay found another run's manifest referencing a.tgz (and so its envelope)
    assert ledger.names() == ["b.tgz"]


def test_a_rollback_keeps_the_envelopes_that_pushed_manifests_reference(verified_publication: Signed) -> None:
    from git import Repo

    from exchange_cli.process.references import referenced_objects

    world = verified_publication.world
    references = referenced_objects(Repo(world.repo.root), world.repo.git("rev-parse", "HEAD"))
    for name in ("hello", "other"):
        block = verified_publication.block(name)
        assert references.keeps(Path(block["rootfs-url"]).name)
        assert references.keeps(Path(block["attestation-url"]).name), "an envelope a pushed manifest references"
    assert not references.keeps("acme-gone-sha384-0.tgz.intoto.jsonl")


def test_list_and_show_say_which_versions_are_signed_and_by_which_key(signed_process: Signed) -> None:
    """show and list never said whether a version was signed."""
    assert signed_process.process().exit_code == 0
    key_id = signed_process.signer.public_key.key_id
    listed = json.loads(CliRunner().invoke(cli, ["list", "--json", "--repo", str(signed_process.world.repo.root)]).stdout)
    assert {(e["name"], v["signed"], v["key-id"]) for e in listed for v in e["versions"]} == \
        {("hello", True, key_id), ("other", True, key_id)}
    text = CliRunner().invoke(cli, ["list", "--repo", str(signed_process.world.repo.root)]).stdout
    assert "processed, signed" in text
    shown = json.loads(CliRunner().invoke(cli, ["show", "acme/hello", "--json", "--repo",
                                                str(signed_process.world.repo.root)]).stdout)
    assert (shown["signed"], shown["key-id"]) == (True, key_id)


def test_verify_fails_when_the_manifest_names_another_signing_key(signed_process: Signed) -> None:
    assert signed_process.process().exit_code == 0
    manifest = signed_process.manifest("hello")
    document = json.loads(manifest.read_text())
    document["exchange"]["attestation-key-id"] = "0" * 64
    manifest.write_text(json.dumps(document))
    result = signed_process.verify(str(manifest), "--format", "json", "--allow-unprocessed")
    assert result.exit_code == 1
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "signature" and "the manifest says key 0000000000000000" in failure["reason"]


# --- backfill-sbom on versions signed before SBOMs ------------------------------------------------


def signed_before_sboms(signed: Signed, name: str) -> dict:
    """acme/<name> as a version signed before SBOMs existed: its envelope holds the provenance alone (the
    manifest pinning that file), and it has no SBOM. Verify passes on it. Its exchange block."""
    envelope = signed.bucket_file(signed.block(name)["attestation-url"])
    provenance = envelope.read_bytes().splitlines(keepends=True)[0]
    envelope.write_bytes(provenance)
    forget_sbom(signed.world, name, {"attestation-sha256": hashlib.sha256(provenance).hexdigest()})
    assert signed.verify(f"acme/{name}").exit_code == 0
    return signed.block(name)


def backfill(signed: Signed, *extra: str):
    return CliRunner().invoke(cli, ["backfill-sbom", "--bucket", signed.world.bucket.as_uri(), "--repo",
                                    str(signed.world.repo.root), *extra])


def test_backfill_signs_the_sbom_of_a_signed_version_which_verify_then_passes(verified_publication: Signed) -> None:
    """backfill-sbom used to give a signed version an SBOM its envelope did not sign: `exchange verify` then
    failed the version (no SBOM statement) that passed before."""
    signed = verified_publication
    before = signed_before_sboms(signed, "hello")
    old_envelope = signed.bucket_file(before["attestation-url"]).read_bytes()
    result = backfill(signed, "--sign-key", str(signed.key_file))
    assert result.exit_code == 0, result.output
    after = signed.block("hello")
    assert after["attestation-url"].endswith(".tgz.sbom.intoto.jsonl") and after["attestation-url"] != \
        before["attestation-url"], "a new envelope file: envelopes are never overwritten"
    assert signed.bucket_file(before["attestation-url"]).read_bytes() == old_envelope
    envelope = signed.bucket_file(after["attestation-url"]).read_bytes()
    assert hashlib.sha256(envelope).hexdigest() == after["attestation-sha256"]
    provenance, statement = envelope.splitlines(keepends=True)
    assert provenance == old_envelope, "the run's own provenance, as it signed it"
    found = independent_verify(statement, signed.signer.public_key.pem)
    sbom = signed.bucket_file(after["sbom-url"]).read_bytes()
    assert found["predicateType"] == "https://cyclonedx.org/bom" and found["predicate"] == json.loads(sbom)
    assert found["subject"][0]["digest"]["sha384"] == after["rootfs-hash"].removeprefix("sha384:")
    verified = signed.verify("acme/hello")
    assert verified.exit_code == 0, verified.output
    assert "sbom-statement" in verified.output and verified.output.splitlines()[-1] == "verified: acme/hello@1.0.0"
    audit = CliRunner().invoke(cli, ["verify-storage", "--bucket", signed.world.bucket.as_uri(), "--repo",
                                     str(signed.world.repo.root), "--deep", "--format", "json"])
    report = json.loads(audit.output)
    assert report["missing"] == report["damaged"] == [] and report["envelopes-checked"] == 2, audit.output
    assert [orphan["object"] for orphan in report["orphans"]] == [Path(before["attestation-url"]).name], \
        "the envelope the manifest pinned before is kept, and named, until the maintainer deletes orphans"


def test_backfill_without_the_key_refuses_a_signed_version_and_leaves_it_verifiable(
        verified_publication: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    signed = verified_publication
    monkeypatch.delenv("EXCHANGE_SIGNING_KEY", raising=False)
    before = signed_before_sboms(signed, "hello")
    head = signed.world.repo.git("rev-parse", "HEAD")
    objects = sorted(path.name for path in signed.world.bucket.iterdir())
    result = backfill(signed, "acme/hello")
    assert result.exit_code == 1
    assert "its SBOM would not be, so `exchange verify` would fail it: give --sign-key" in result.output
    assert signed.block("hello") == before and signed.world.repo.git("rev-parse", "HEAD") == head
    assert sorted(path.name for path in signed.world.bucket.iterdir()) == objects, "nothing uploaded"
    assert signed.verify("acme/hello").exit_code == 0


def test_backfill_with_another_key_signs_nothing(verified_publication: Signed, tmp_path: Path) -> None:
    signed = verified_publication
    before = signed_before_sboms(signed, "hello")
    other = tmp_path / "other.key"
    other.write_bytes(generate_private_key("ed25519"))
    result = backfill(signed, "acme/hello", "--sign-key", str(other))
    assert result.exit_code == 1
    assert "its provenance is not signed by this key" in result.output
    assert signed.block("hello") == before
    assert signed.verify("acme/hello").exit_code == 0


def test_an_interrupted_backfill_leaves_the_tree_clean_and_its_rerun_keeps_what_it_signed(
        verified_publication: Signed, tmp_path: Path) -> None:
    """Backfill wrote each manifest as it went: Ctrl-C left them modified and uncommitted, and the rerun,
    seeing their sbom-url, skipped them. Now the manifests are written and committed together at the end;
    the rerun finds the envelope it signed before (a new signature would differ) and keeps it."""
    signed = verified_publication
    for name in ("hello", "other"):
        signed_before_sboms(signed, name)
    repo = signed.world.repo
    head = repo.git("rev-parse", "HEAD")
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "backfill.armed").touch()
    run = subprocess.Popen([sys.executable, "-m", "exchange_cli", "backfill-sbom", "--bucket",
                            signed.world.bucket.as_uri(), "--repo", str(repo.root), "--sign-key", str(signed.key_file)],
                           env={**os.environ, GATES_ENV: str(gates)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 120
    while not (gates / "backfill.reached").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr
    assert repo.git("status", "--porcelain") == "" and repo.git("rev-parse", "HEAD") == head
    (signed_first,) = [path.name for path in signed.world.bucket.glob("*.sbom.intoto.jsonl")]
    uploaded = signed.world.bucket.joinpath(signed_first).read_bytes()
    (gates / "backfill.armed").unlink()
    result = backfill(signed, "--sign-key", str(signed.key_file))
    assert result.exit_code == 0, result.output
    assert signed.world.bucket.joinpath(signed_first).read_bytes() == uploaded
    for name in ("hello", "other"):
        verified = signed.verify(f"acme/{name}")
        assert verified.exit_code == 0 and "sbom-statement" in verified.output, verified.output

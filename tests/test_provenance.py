"""Signed provenance, piece by piece: DSSE against its spec, the statement, the signers (a PEM key,
the environment, Cloud KMS through a local stand-in of its REST API) and `exchange keys init`."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils

from exchange_cli.cli import cli
from exchange_cli.errors import UsageError
from exchange_cli.provenance.dsse import (
    EnvelopeError,
    check_signatures,
    pae,
    parse_envelope,
    parse_envelopes,
    sign_envelope,
)
from exchange_cli.provenance.keys import PublicKey, repository_keys
from exchange_cli.provenance.signers import (
    KmsSigner,
    LocalKeySigner,
    SigningFailed,
    SigningKeyError,
    generate_private_key,
    open_signer,
)
from exchange_cli.provenance.statement import (
    BUILD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    StatementError,
    build_statement,
    read_statement,
    statement_bytes,
)
from tests.infra.commands import one_error_line
from tests.infra.gitrepo import ExchangeRepo
from tests.infra.kms import KmsStandIn
from tests.infra.provenance import KMS_NAME, independent_verify
from tests.infra.publication import facts


def pem_of(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def local_signer(algorithm: str = "ed25519") -> LocalKeySigner:
    return LocalKeySigner.from_pem(generate_private_key(algorithm), "test key")


# DSSE ----------------------------------------------------------------------------------------------

def test_pae_is_the_specs_test_vector_and_its_signature_verifies_over_our_encoding() -> None:
    # secure-systems-lab/dsse protocol.md, "Test Vectors": PAE text, the P-256 key and its r||s signature.
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    x = 46950820868899156662930047687818585632848591499744589407958293238635476079160
    y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raw = base64.b64decode("A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==")
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, pae("http://example.com/HelloWorld", b"hello world"), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):  # one byte of the body changed: the spec's signature no longer holds
        key.verify(der, pae("http://example.com/HelloWorld", b"hello worle"), ec.ECDSA(hashes.SHA256()))
    envelope = parse_envelope('{"payload": "aGVsbG8gd29ybGQ=", "payloadType": "http://example.com/HelloWorld", '
                              '"signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F-FnZ-O88SjtR6rDAajabZKciJTfUiHqJ'
                              'PcIAriEGAHTVeCUjW2JIZA"}]}', "vector")  # URL-safe and unpadded: both allowed
    assert envelope.payload == b"hello world" and envelope.signatures[0].sig == raw and envelope.signatures[0].keyid == ""


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t/ü", "é".encode()) == "DSSEv1 4 t/ü 2 é".encode()


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_a_signed_envelope_verifies_independently_with_cryptography_alone(algorithm: str) -> None:
    signer = local_signer(algorithm)
    envelope = sign_envelope(b'{"_type": "x"}', signer)
    line = envelope.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one envelope per line: the .intoto.jsonl format"
    document = json.loads(line)
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert document["signatures"][0]["keyid"] == signer.public_key.key_id
    assert independent_verify(line, signer.public_key.pem) == {"_type": "x"}
    assert check_signatures(envelope, [signer.public_key]).ok


def test_tampered_payload_and_signature_and_another_key_are_told_apart() -> None:
    signer, other = local_signer(), local_signer("ecdsa-p256")
    line = json.loads(sign_envelope(b'{"a": 1}', signer).line())
    altered = dict(line, payload=base64.b64encode(b'{"a": 2}').decode())
    result = check_signatures(parse_envelope(json.dumps(altered), "t"), [signer.public_key])
    assert not result.ok and "does not verify with the exchange's key" in result.reason
    sig = bytearray(base64.b64decode(line["signatures"][0]["sig"]))
    sig[5] ^= 1
    altered = dict(line, signatures=[{"keyid": signer.public_key.key_id, "sig": base64.b64encode(bytes(sig)).decode()}])
    assert not check_signatures(parse_envelope(json.dumps(altered), "t"), [signer.public_key]).ok
    by_other = sign_envelope(b'{"a": 1}', other)
    result = check_signatures(by_other, [signer.public_key])
    assert not result.ok and f"signed by another key (key id {other.public_key.key_id[:16]})" in result.reason
    assert check_signatures(by_other, [signer.public_key, other.public_key]).key == other.public_key


@pytest.mark.parametrize("text, message", [
    ("not json", "not JSON"),
    ('["x"]', "is a JSON object"),
    ('{"payload": "eA==", "payloadType": "t"}', '"signatures" list'),
    ('{"payload": "eA==", "payloadType": "t", "signatures": [{"keyid": "k"}]}', 'signatures[0] has no "sig"'),
    ('{"payload": "*not base64*", "payloadType": "t", "signatures": []}', "payload is not base64"),
])
def test_malformed_envelopes_are_refused_with_the_place(text: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match="x.intoto.jsonl line 2") as raised:
        parse_envelopes(b"\n" + text.encode() + b"\n", "x.intoto.jsonl")
    assert message in str(raised.value)


# The statement -------------------------------------------------------------------------------------

def test_statement_is_in_toto_v1_with_slsa_provenance_v1_and_reads_back() -> None:
    statement = build_statement(facts())
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": facts().subject_name, "digest": {"sha384": "a" * 96, "sha256": "b" * 64}}]
    definition, run = statement["predicate"]["buildDefinition"], statement["predicate"]["runDetails"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"]["spec"]["digest"] == {"gitBlob": "c" * 40}
    assert definition["externalParameters"]["image"] == "registry.example.org/acme/hello:1.0.0"
    dependencies = {d["name"]: d for d in definition["resolvedDependencies"]}
    assert dependencies["image"]["digest"] == {"sha256": "d" * 64}
    assert dependencies["image"]["annotations"] == {"configDigest": "sha256:" + "e" * 64, "platform": "linux/amd64"}
    assert dependencies["source"] == {"name": "source", "uri": "git+https://git.example.org/acme/exchange.git",
                                      "digest": {"gitCommit": "f" * 40}}
    assert run["builder"] == {"id": "https://git.example.org/acme/exchange.git",
                              "version": {"exchange-cli": "0.1.0", "isal": "1.9.1"}}
    assert run["metadata"] == {"invocationId": "https://circleci.example.org/gh/acme/exchange/42"}
    assert read_statement(statement_bytes(statement)) == facts()
    assert statement_bytes(build_statement(facts())) == statement_bytes(statement), "no time stamps: reproducible"
    assert facts().same_build(facts(run_url=None)) and not facts().same_build(facts(source_commit="0" * 40))
    # The squashfs image built in the same pass is a second subject, read back as it was written.
    both = facts(more_subjects={"x.sqfs": {"sha384": "a" * 96, "sha256": "b" * 64}})
    assert build_statement(both)["subject"][1] == {"name": "x.sqfs", "digest": {"sha384": "a" * 96, "sha256": "b" * 64}}
    assert read_statement(statement_bytes(build_statement(both))) == both and not both.same_build(facts())


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type is"),
    (lambda s: s.update(predicateType="https://slsa.dev/provenance/v0.2"), "predicateType is"),
    (lambda s: s.update(subject=[]), "0 subjects"),
    (lambda s: s.update(subject=s["subject"] * 2), "names a subject twice"),
    (lambda s: s.update(subject=[*s["subject"], {"name": "x.sqfs", "digest": {}}]), "1].digest must map algorithms"),
    (lambda s: s["predicate"]["buildDefinition"].update(buildType="https://other"), "buildType is"),
    (lambda s: s["predicate"]["buildDefinition"]["externalParameters"]["spec"].pop("version"),
     "predicate.buildDefinition.externalParameters.spec.version is missing"),
])
def test_a_statement_of_another_shape_is_refused_naming_the_field(edit, message: str) -> None:
    statement = build_statement(facts())
    edit(statement)
    with pytest.raises(StatementError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_statement(statement_bytes(statement))


# Signers -------------------------------------------------------------------------------------------

def test_signing_keys_load_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    pem = generate_private_key("ecdsa-p256")
    (tmp_path / "k.pem").write_bytes(pem)
    from_file = open_signer(str(tmp_path / "k.pem"), {})
    from_env = open_signer(None, {"EXCHANGE_SIGNING_KEY": base64.b64encode(pem).decode()})
    assert from_file.public_key.key_id == from_env.public_key.key_id
    assert from_env.description == "EXCHANGE_SIGNING_KEY" and str(tmp_path / "k.pem") in from_file.description
    assert open_signer(None, {}) is None, "no key given: signing is off"
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    env = {"EXCHANGE_SIGNING_KEY": base64.b64encode(encrypted).decode()}
    with pytest.raises(SigningKeyError, match="it is encrypted: set EXCHANGE_SIGNING_KEY_PASSWORD"):
        open_signer(None, env)
    assert open_signer(None, env | {"EXCHANGE_SIGNING_KEY_PASSWORD": "pw"}).public_key.algorithm == "ed25519"


def test_unusable_signing_keys_are_refused_without_showing_them(tmp_path: Path) -> None:
    rsa_pem = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p384_pem = pem_of(ec.generate_private_key(ec.SECP384R1()))
    cases = {
        "not base64": ("secret-not-base64!!", "is set but is not base64"),
        "not a key": (base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n").decode(),
                      "not a PEM private key"),
        "rsa": (base64.b64encode(rsa_pem).decode(), "the key is a RSA key of 2048 bits; the exchange signs with Ed25519"),
        "p384": (base64.b64encode(p384_pem).decode(), "an elliptic-curve key on secp384r1"),
    }
    for value, expected in cases.values():
        with pytest.raises(UsageError) as raised:
            open_signer(None, {"EXCHANGE_SIGNING_KEY": value})
        message = str(raised.value)
        assert expected in message
        assert value not in message and "c2VjcmV0" not in message and "PRIVATE KEY" not in message
    signer = local_signer()
    secret_pem = pem_of(signer._key).decode()
    body = "".join(secret_pem.splitlines()[1:-1])
    for shown in (repr(signer), str(signer), repr(signer.public_key)):
        assert body[:20] not in shown and "PRIVATE" not in shown


@pytest.mark.parametrize("algorithm", ["ed25519", "p256"])
def test_kms_signer_through_the_rest_api_of_a_local_stand_in(kms_stand_in: KmsStandIn, algorithm: str) -> None:
    # The real google-cloud-kms client (REST transport) against a local server holding a local key:
    # Google's service itself cannot be reached from here.
    local = kms_stand_in.add_key(KMS_NAME, algorithm)
    signer = open_signer(f"gcpkms://{KMS_NAME}")
    assert isinstance(signer, KmsSigner) and signer.description == f"gcpkms://{KMS_NAME}"
    assert signer.public_key == PublicKey.of(local.public_key())
    line = sign_envelope(b'{"k": "v"}', signer).line()
    assert independent_verify(line, signer.public_key.pem) == {"k": "v"}
    calls = [call for call, _ in kms_stand_in.requests]
    assert calls == ["/publicKey", ":asymmetricSign"], "the public key is fetched once"
    cosign_style = open_signer(f"gcpkms://{KMS_NAME.replace('cryptoKeyVersions', 'versions')}")
    assert cosign_style.name == KMS_NAME


@pytest.mark.parametrize("tamper, message", [
    ("signature-crc", "the signature was corrupted in transit"),
    ("bad-signature", "KMS returned a signature its own public key does not verify"),
    ("unverified", "KMS did not confirm receiving the request intact"),
    ("pem-crc", "the public key was corrupted in transit"),
])
def test_kms_answers_that_fail_their_integrity_checks_sign_nothing(kms_stand_in: KmsStandIn, tamper: str,
                                                                    message: str) -> None:
    kms_stand_in.add_key(KMS_NAME, "p256")
    kms_stand_in.tamper = tamper
    with pytest.raises(SigningFailed, match=message):
        sign_envelope(b"{}", open_signer(f"gcpkms://{KMS_NAME}"))


def test_kms_errors_and_bad_references_are_one_line(kms_stand_in: KmsStandIn) -> None:
    with pytest.raises(SigningFailed, match=r"cannot read the public key of gcpkms://.*: HTTP 404 .*not found"):
        _ = open_signer(f"gcpkms://{KMS_NAME}").public_key
    with pytest.raises(SigningKeyError, match="a key version, not a key"):
        open_signer("gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k")


# keys init -----------------------------------------------------------------------------------------

def test_keys_init_generates_outside_the_repo_and_commits_only_the_public_key(exchange_repo: ExchangeRepo,
                                                                            tmp_path: Path) -> None:
    exchange_repo.commit("start")
    private = tmp_path / "secrets" / "exchange.key"
    result = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root), "--generate", str(private)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    keys = repository_keys(exchange_repo.root)
    assert len(keys) == 1 and f"key id:      {keys[0].key_id}" in result.output
    assert exchange_repo.git("log", "-1", "--format=%s") == f"Add the exchange's signing key {keys[0].key_id[:16]}"
    assert exchange_repo.git("show", "--name-only", "--format=", "HEAD") == f".exchange/keys/{keys[0].key_id}.pub"
    signer = open_signer(str(private), {})
    assert signer.public_key.key_id == keys[0].key_id
    secret_body = "".join(private.read_text().splitlines()[1:-1])
    assert secret_body not in result.output
    everything = exchange_repo.git("log", "--all", "-p") + exchange_repo.git("status", "--porcelain")
    assert secret_body not in everything and "PRIVATE KEY" not in everything
    head = exchange_repo.git("rev-parse", "HEAD")
    again = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root), "--sign-key", str(private)])
    assert again.exit_code == 0 and "already present" in again.output
    assert exchange_repo.git("rev-parse", "HEAD") == head, "the same key again: nothing to commit"


def test_keys_init_that_git_cannot_commit_leaves_no_key_file_behind(exchange_repo: ExchangeRepo,
                                                                     tmp_path: Path) -> None:
    """The key file used to stay, uncommitted: the retry found it "already present" and committed nothing."""
    exchange_repo.commit("start")
    private = tmp_path / "exchange.key"
    private.write_bytes(generate_private_key("ed25519"))
    lock = exchange_repo.root / ".git" / "index.lock"
    lock.write_text("")
    held = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root), "--sign-key", str(private)])
    assert held.exit_code == 2 and "index.lock exists" in one_error_line(held)
    lock.unlink()
    assert exchange_repo.git("status", "--porcelain") == "" and repository_keys(exchange_repo.root) == []
    again = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root), "--sign-key", str(private)])
    assert again.exit_code == 0, again.output
    assert exchange_repo.git("log", "-1", "--format=%s").startswith("Add the exchange's signing key ")


def test_keys_init_refuses_a_private_key_inside_the_repository(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.commit("start")
    result = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root), "--generate",
                                      str(exchange_repo.root / "exchange.key")])
    assert result.exit_code == 2 and "a private key must never be committed" in result.output
    assert not (exchange_repo.root / "exchange.key").exists()
    result = CliRunner().invoke(cli, ["keys", "init", "--repo", str(exchange_repo.root)], env={"EXCHANGE_SIGNING_KEY": ""})
    assert result.exit_code == 2 and "no signing key" in result.output


def test_a_key_file_named_after_another_key_id_is_refused(exchange_repo: ExchangeRepo) -> None:
    key = local_signer().public_key
    exchange_repo.write(f".exchange/keys/{'0' * 64}.pub", key.pem.decode())
    with pytest.raises(UsageError, match=f"the file name says key id {'0' * 64}, but the key's id is {key.key_id}"):
        repository_keys(exchange_repo.root)

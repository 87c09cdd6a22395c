"""`exchange backfill-sbom`: SBOMs for manifests published before SBOMs, from their rootfs in the bucket.

For each such manifest the rootfs object is read once, as a stream (never unpacked, never written to
disk), hashed as it is read and refused unless it is exactly the sha384 its manifest pins; its SBOM is
uploaded beside it (`<object>.sbom.json`, create-only: an identical one already there is kept, another
is an error) and the manifest gets the keys a run gives it (sbom-url, sbom-sha256, sbom-packages,
sbom-os). One commit for all, which the maintainer pushes.

A signed version (attestation-url) gets its SBOM signed too, or `verify` would fail it: its provenance
must be signed by the key given (`--sign-key`), the SBOM statement is signed by it with the provenance's
subject, and both lines go to a new envelope file (`<envelope stem>.sbom.intoto.jsonl`; envelopes are
never overwritten), which the manifest then pins. Without the key such a version is refused, not made
unverifiable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ..bounded import read_at_most
from ..commit_identity import commit_env
from ..committed import commit_changes
from ..errors import ExchangeError
from ..manifests import ProcessedManifest, manifest_text
from ..process.artifacts import sbom_name
from ..provenance.dsse import EnvelopeError, check_signatures, parse_envelopes
from ..provenance.sbom_statement import sbom_statement_problem, sign_sbom
from ..provenance.signers import Signer
from ..provenance.statement import StatementError, read_statement
from ..provenance.verify import ATTESTATION_SHA256, ATTESTATION_SUFFIX, ATTESTATION_URL, MAX_ENVELOPE_BYTES
from ..repository import Exchange
from ..sbom.query import read
from ..sbom.tarball import document_of_stored_rootfs
from ..storage.bucket import Bucket
from ..testgates import gate

COMMIT_MESSAGE = "Backfill SBOMs"


@dataclass
class Backfill:
    done: list[str] = field(default_factory=list)  # manifests given an SBOM
    failed: dict[str, str] = field(default_factory=dict)  # manifest -> why not
    commit: str | None = None


def needs_sbom(manifest: ProcessedManifest) -> bool:
    """A rootfs in the bucket (sha384) and no SBOM yet."""
    return manifest.sbom_object is None and manifest.bucket_object is not None and manifest.rootfs_sha384 is not None


def backfill(exchange: Exchange, manifests: list[ProcessedManifest], bucket: Bucket,
             signer: Signer | None = None, made: Callable[[str], None] = lambda path: None) -> Backfill:
    """Each manifest's SBOM (and envelope) uploaded as it is made (`made` is told); the manifests written and
    committed together at the end. An interrupt or failure before then leaves the work tree as it was (the
    objects uploaded are what a rerun makes again: it finds and keeps them)."""
    outcome = Backfill()
    changed: dict[str, str] = {}  # each manifest's new text, by its path
    for manifest in manifests:
        try:
            changed[manifest.relative] = _backfill_one(manifest, bucket, signer)
        except ExchangeError as error:
            outcome.failed[manifest.relative] = str(error)
        else:
            outcome.done.append(manifest.relative)
            made(manifest.relative)
        gate("backfill")  # tests: held after each manifest, before any is written
    if outcome.done:
        outcome.commit = commit_changes(exchange.repo, exchange.root, changed,
                                        f"{COMMIT_MESSAGE} for {len(outcome.done)} manifest(s)",
                                        commit_env(exchange.repo))
    return outcome


def _backfill_one(manifest: ProcessedManifest, bucket: Bucket, signer: Signer | None) -> str:
    """Uploads the SBOM (and a signed version's new envelope); the manifest's new text."""
    name, sha384 = manifest.bucket_object, manifest.rootfs_sha384
    assert name is not None and sha384 is not None, "needs_sbom chose it"
    signed = manifest.attestation_object
    if signed is not None and signer is None:
        raise ExchangeError(f"its provenance is signed ({signed}) and its SBOM would not be, so `exchange verify` "
                            "would fail it: give --sign-key, the key that signed it")
    document = document_of_stored_rootfs(bucket, name, sha384, manifest.exchange.get("rootfs-size"))
    summary = read(document)
    keys: dict[str, object] = {"sbom-url": bucket.download_url(sbom_name(name)),
                               "sbom-sha256": hashlib.sha256(document).hexdigest(),
                               "sbom-packages": len(summary.components)} | ({"sbom-os": summary.os} if summary.os else {})
    envelope: tuple[str, bytes] | None = None
    if signed is not None:
        assert signer is not None
        envelope = _envelope_with_sbom(bucket, manifest, signed, document, signer)
        keys |= {ATTESTATION_URL: bucket.download_url(envelope[0]),
                 ATTESTATION_SHA256: hashlib.sha256(envelope[1]).hexdigest()}
    bucket.upload_bytes(sbom_name(name), document)  # create-only: an identical one is kept, another refused
    if envelope is not None:
        bucket.upload_bytes(*envelope)
    content = json.loads(manifest.path.read_text(encoding="utf-8"))
    content["exchange"].update(keys)
    return manifest_text(content)


def _envelope_with_sbom(bucket: Bucket, manifest: ProcessedManifest, name: str, document: bytes,
                        signer: Signer) -> tuple[str, bytes]:
    """The envelope file the manifest pins, plus the SBOM statement signed for the subject its provenance
    names, under a new name: (name, content). Refused unless the file is the one pinned and its provenance
    is signed by `signer`'s key (verify checks the SBOM statement against the provenance's key)."""
    with bucket.open_read(name) as stream:
        content = read_at_most(stream, MAX_ENVELOPE_BYTES)
    if content is None or hashlib.sha256(content).hexdigest() != manifest.attestation_sha256:
        raise ExchangeError(f"{name} is not the envelope its manifest pins (attestation-sha256); nothing was signed")
    try:
        envelopes = parse_envelopes(content, name)
    except EnvelopeError as error:
        raise ExchangeError(f"{name}: {error}; nothing was signed") from None
    for envelope in envelopes:
        if check_signatures(envelope, [signer.public_key]).ok:
            try:
                facts = read_statement(envelope.payload)
            except StatementError:
                continue
            if facts.subject_digests.get("sha384") != manifest.rootfs_sha384:
                raise ExchangeError(f"{name}: its provenance's subject is not this rootfs; nothing was signed")
            new_name = f"{name.removesuffix(ATTESTATION_SUFFIX)}.sbom{ATTESTATION_SUFFIX}"
            made_before = _made_before(bucket, new_name, content, signer, facts.subject_name, facts.subject_digests,
                                       document)
            if made_before is not None:
                return new_name, made_before
            line = sign_sbom(facts.subject_name, facts.subject_digests, document, signer)
            return new_name, content.rstrip(b"\n") + b"\n" + line
    raise ExchangeError(f"{name}: its provenance is not signed by this key ({signer.public_key.short_id}); the SBOM "
                        "statement must be signed by the key that signed it")


def _made_before(bucket: Bucket, name: str, pinned: bytes, signer: Signer, subject_name: str,
                 digests: dict[str, str], document: bytes) -> bytes | None:
    """The envelope an interrupted backfill already uploaded under `name`, when it is this one: the pinned
    file's lines, then this SBOM's statement signed by this key (a new signature would differ, and envelopes
    are never overwritten). None when there is none; refused when it is another."""
    if bucket.stat(name) is None:
        return None
    with bucket.open_read(name) as stream:
        content = read_at_most(stream, MAX_ENVELOPE_BYTES)
    try:
        ours = content is not None and content.startswith(pinned.rstrip(b"\n") + b"\n") and sbom_statement_problem(
            parse_envelopes(content, name), [signer.public_key], subject_name, digests, document) is None
    except EnvelopeError:
        ours = False
    if not ours:
        raise ExchangeError(f"{name} already exists and is not this SBOM's envelope; envelopes are never "
                            "overwritten (if no manifest references it, `exchange verify-storage --delete-orphans` "
                            "removes it)")
    return content

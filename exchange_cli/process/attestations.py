"""The publish stage's signing hook: a DSSE-signed provenance envelope beside each artifact.

For every artifact of a run that signs (one machine, or the finalize step over the shards' records),
before its manifest is written: build the statement, sign it, upload the envelope create-only (named
after the manifest, see `attestation_object`: `<object>.intoto.jsonl` unless the version shares its
rootfs with another), record it in the run's ledger beside its artifact (a failed run deletes it with
the artifact; an artifact another run's manifest already references keeps it), and give the manifest its
"attestation-url" and "attestation-sha256". Any failure fails the run, so a run that signs publishes
every artifact signed or none.

An envelope already in the bucket under that name is reused only when it is ours (it verifies with
the signing key) and attests the same build (see BuildFacts.same_build); otherwise the run stops:
envelopes, like artifacts, are never overwritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, cast

from .. import git
from ..bounded import read_at_most
from ..errors import ExchangeError
from ..provenance.attest import ArtifactLike, RunContext, attest, facts_for
from ..provenance.dsse import EnvelopeError, check_signatures, parse_envelopes
from ..provenance.sbom_statement import sbom_statement_problem
from ..provenance.signers import Signer
from ..provenance.statement import BuildFacts, StatementError, read_statement
from ..provenance.verify import (
    ATTESTATION_KEY_ID,
    ATTESTATION_SHA256,
    ATTESTATION_SUFFIX,
    ATTESTATION_URL,
    MAX_ENVELOPE_BYTES,
    MAX_SBOM_BYTES,
    attestation_name,
)
from ..repository import Exchange
from ..storage.bucket import Bucket
from .artifacts import Artifact, sbom_name
from .ledger import CreatedObjects
from .publish import Published


class AttestationConflict(ExchangeError):
    """The bucket holds an envelope under this artifact's name that attests something else."""


@dataclass
class AttestationHook:
    exchange: Exchange
    signer: Signer
    context: RunContext
    bucket: Bucket
    log: Callable[[str], None]
    envelopes: dict[str, bytes] = field(default_factory=dict)  # name -> the bytes a manifest pins

    def manifest_fields(self, artifact: Artifact, manifest_path: str, ledger: CreatedObjects) -> dict[str, Any]:
        job = artifact.job
        if artifact.in_bucket and artifact.sha256 is None:
            raise ExchangeError(f"{job.relative_path}: no sha256 of {artifact.object_name} to sign with (a shard "
                                "that ran without signing?); run the shards with --sign-key or EXCHANGE_SIGNING_KEY too")
        # ArtifactLike declares plain (settable) attributes, which a frozen Artifact's fields are not.
        facts = facts_for(cast(ArtifactLike, artifact), sha256=artifact.sha256, context=self.context,
                          spec_blob=git.blob_id(self.exchange.repo, self.context.source_commit, job.relative_path))
        name = attestation_object(artifact, manifest_path)
        sbom = self._sbom_of(artifact)
        if self.bucket.stat(name) is not None:
            content = self._reusable(name, facts, sbom)
            self.log(f"already in the bucket: {name} (the same build, signed by this key)")
        else:
            content = attest(facts, self.signer, name.removesuffix(ATTESTATION_SUFFIX), sbom).content
            uploaded = self.bucket.upload_bytes(name, content)
            if uploaded.created:
                ledger.record(name, uploaded.info.generation, beside=artifact.object_name)
            self.log(f"signed {name} with key {self.signer.public_key.short_id}")
        self.envelopes[name] = content
        return {ATTESTATION_URL: self.bucket.download_url(name), ATTESTATION_SHA256: hashlib.sha256(content).hexdigest(),
                ATTESTATION_KEY_ID: self.signer.public_key.key_id}

    def after_push(self, published: Published) -> None:
        pass

    def restorable(self) -> dict[str, bytes]:
        """A signature made again would not match the pinned attestation-sha256 (ECDSA signs with a random
        nonce; the run URL changes), so the bytes themselves are kept for the after-push check."""
        return dict(self.envelopes)

    def _sbom_of(self, artifact: Artifact) -> bytes | None:
        """The SBOM uploaded beside the artifact (by this machine or a shard), read back and checked
        against the sha256 the manifest will pin: the statement signs exactly those bytes."""
        if artifact.sbom_url is None or artifact.sbom_sha256 is None:
            return None
        name = sbom_name(artifact.object_name)
        with self.bucket.open_read(name) as stream:
            content = stream.read(MAX_SBOM_BYTES + 1)
        if hashlib.sha256(content).hexdigest() != artifact.sbom_sha256:
            raise ExchangeError(f"{self.bucket.uri}: {name} is not the SBOM this run made (its sha256 differs); "
                                "nothing was signed")
        return content

    def _reusable(self, name: str, facts: BuildFacts, sbom: bytes | None) -> bytes:
        with self.bucket.open_read(name) as stream:
            content = read_at_most(stream, MAX_ENVELOPE_BYTES)
        problem = "is not an envelope of ours (too large)" if content is None else \
            _reuse_problem(content, facts, self.signer, sbom)
        if content is None or problem is not None:
            raise AttestationConflict(f"{self.bucket.uri}: {name} already exists and {problem}; envelopes are never "
                                      "overwritten (if no manifest references it, `exchange verify-storage "
                                      "--delete-orphans` removes it)")
        return content


def _reuse_problem(content: bytes, facts: BuildFacts, signer: Signer, sbom: bytes | None) -> str | None:
    try:
        envelopes = parse_envelopes(content, "it")
    except EnvelopeError as error:
        return f"is not a DSSE envelope ({error})"
    for envelope in envelopes:
        if check_signatures(envelope, [signer.public_key]).ok:
            try:
                theirs = read_statement(envelope.payload)
            except StatementError as error:
                return f"is signed by this key but is not a provenance statement ({error})"
            if theirs.same_build(facts):
                if sbom is not None and sbom_statement_problem(envelopes, [signer.public_key], facts.subject_name,
                                                               facts.subject_digests, sbom) is not None:
                    return "attests the same build but not with this SBOM"
                return None
            return (f"attests another build ({theirs.spec.org}/{theirs.spec.name} {theirs.spec.version} at commit "
                    f"{theirs.source_commit[:12]})")
    return "is not signed by this key"


def attestation_object(artifact: Artifact, manifest_path: str) -> str:
    """The envelope is named after its manifest, ``<manifest stem>.tgz.intoto.jsonl``: for the old
    pipeline's name that is ``<object>.intoto.jsonl``, beside the object; a version-qualified manifest
    (a version sharing its rootfs with another, process/placement.py) gets its own envelope, since each
    attests one version. An image-delivered gear has no ``.tgz``: ``<manifest stem>.intoto.jsonl``."""
    stem = PurePosixPath(manifest_path).stem
    return attestation_name(f"{stem}.tgz" if artifact.in_bucket else stem)

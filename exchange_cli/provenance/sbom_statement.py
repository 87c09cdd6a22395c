"""The SBOM's signed statement: an in-toto Statement v1 whose subject is the rootfs tarball (the same
name and digests as the provenance statement's) and whose predicate is the CycloneDX document itself
(predicate type https://cyclonedx.org/bom). Its envelope is the second line of the attestation file,
after the provenance's, so readers that take the first verified envelope see the provenance as before.
"""

from __future__ import annotations

import json
from typing import Any

from ..sbom import PREDICATE_TYPE
from .dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, check_signatures, sign_envelope
from .keys import PublicKey
from .signers import Signer
from .statement import STATEMENT_TYPE, statement_bytes

SBOM_CHECK = "sbom-statement"


def sbom_statement(subject_name: str, digests: dict[str, str], document: bytes) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE, "subject": [{"name": subject_name, "digest": dict(digests)}],
            "predicateType": PREDICATE_TYPE, "predicate": json.loads(document)}


def sign_sbom(subject_name: str, digests: dict[str, str], document: bytes, signer: Signer) -> bytes:
    """The envelope line of the SBOM statement."""
    return sign_envelope(statement_bytes(sbom_statement(subject_name, digests, document)), signer).line()


def sbom_statement_problem(envelopes: list[Envelope], keys: list[PublicKey], subject_name: str,
                           digests: dict[str, str], document: bytes) -> str | None:
    """None when a statement signed by one of `keys` says `document` is the SBOM of this rootfs; else why not."""
    for envelope in envelopes:
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE or not check_signatures(envelope, keys).ok:
            continue
        try:
            statement = json.loads(envelope.payload)
        except ValueError:
            continue
        if not isinstance(statement, dict) or statement.get("predicateType") != PREDICATE_TYPE:
            continue
        subjects = statement.get("subject")
        expected = [{"name": subject_name, "digest": dict(digests)}]
        if subjects != expected:
            return f"the signed SBOM statement's subject is {json.dumps(subjects)[:200]}, not this rootfs"
        try:
            same = statement.get("predicate") == json.loads(document)
        except ValueError:
            return "the SBOM file is not JSON"
        if not same:
            return "the signed SBOM statement's predicate is not the SBOM file the manifest pins"
        return None
    return "no envelope signed by the exchange's key holds an SBOM statement (predicate type " + PREDICATE_TYPE + ")"

"""DSSE v1 (Dead Simple Signing Envelope), as secure-systems-lab/dsse specifies it.

The signature covers PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, so the
payload type is authenticated with the payload. The JSON envelope is
{"payload": b64(body), "payloadType": type, "signatures": [{"keyid": id, "sig": b64(signature)}]};
readers accept standard and URL-safe base64 and ignore fields they do not know. An `.intoto.jsonl`
file holds one envelope per line (the in-toto bundle format cosign and slsa-verifier read).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ExchangeError
from ..jsonpos import strict_document
from .keys import PublicKey
from .signers import Signer, SigningFailed

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ExchangeError):
    """An envelope that cannot be read as DSSE."""


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def as_json(self) -> dict[str, Any]:
        return {"payload": _b64(self.payload), "payloadType": self.payload_type,
                "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures]}

    def line(self) -> bytes:
        """One compact JSON line, newline-terminated: the content of an `.intoto.jsonl` file."""
        return (json.dumps(self.as_json(), separators=(",", ":")) + "\n").encode()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding; LEN counts bytes, in ASCII decimal."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def sign_envelope(body: bytes, signer: Signer, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    """Sign, then verify with the signer's public key before anyone sees the envelope."""
    key = signer.public_key
    signature = signer.sign(pae(payload_type, body))
    if not key.verifies(signature, pae(payload_type, body)):
        raise SigningFailed(f"{signer.description}: the signature made does not verify with its own public key")
    return Envelope(body, payload_type, (Signature(key.key_id, signature),))


def parse_envelopes(data: bytes, source: str) -> list[Envelope]:
    """Every DSSE envelope of an `.intoto.jsonl` bundle (a single JSON envelope reads the same).
    Blank lines are skipped; a line that is not an envelope is an error: we wrote these files whole."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError(f"{source}: not UTF-8 text") from None
    envelopes = [parse_envelope(line, f"{source} line {number}")
                 for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not envelopes:
        raise EnvelopeError(f"{source}: holds no envelope")
    return envelopes


def parse_envelope(text: str, source: str) -> Envelope:
    document = strict_document(text.encode("utf-8", "surrogatepass"), source, EnvelopeError)
    if not isinstance(document, dict):
        raise EnvelopeError(f"{source}: a DSSE envelope is a JSON object")
    payload, payload_type, signatures = (document.get(k) for k in ("payload", "payloadType", "signatures"))
    if not isinstance(payload, str) or not isinstance(payload_type, str) or not isinstance(signatures, list):
        raise EnvelopeError(f"{source}: a DSSE envelope needs \"payload\" and \"payloadType\" strings and a "
                            "\"signatures\" list")
    parsed = []
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise EnvelopeError(f"{source}: signatures[{index}] has no \"sig\" string")
        keyid = entry.get("keyid")
        parsed.append(Signature(keyid if isinstance(keyid, str) else "", _unb64(entry["sig"], f"{source}: signatures[{index}].sig")))
    return Envelope(_unb64(payload, f"{source}: payload"), payload_type, tuple(parsed))


@dataclass(frozen=True)
class SignatureCheck:
    """Which trusted key verified the envelope; or why none did."""

    key: PublicKey | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.key is not None


def check_signatures(envelope: Envelope, trusted: list[PublicKey]) -> SignatureCheck:
    """A (1, n) check: valid when any signature verifies with any trusted key. The keyid is only a hint
    (DSSE: never used for a security decision); it only makes the failure message say more."""
    if not envelope.signatures:
        return SignatureCheck(None, "the envelope carries no signature")
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        for key in trusted:
            if key.verifies(signature.sig, message):
                return SignatureCheck(key)
    trusted_ids = {key.key_id for key in trusted}
    hinted = [s.keyid for s in envelope.signatures if s.keyid]
    shown = ", ".join(key.short_id for key in trusted) or "none"
    if hinted and not trusted_ids.intersection(hinted):
        return SignatureCheck(None, f"signed by another key (key id {', '.join(k[:16] for k in hinted)}), not by the "
                                    f"exchange's key ({shown}); the signature does not verify with the exchange's key")
    return SignatureCheck(None, f"the signature does not verify with the exchange's key ({shown}): the payload or "
                                "the signature was altered after signing")


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """DSSE verifiers must accept standard and URL-safe base64, padded or not."""
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    alphabet = b"-_" if ("-" in cleaned or "_" in cleaned) else b"+/"
    try:
        return base64.b64decode(cleaned, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not base64") from None

"""A local stand-in for Cloud KMS's REST API (getPublicKey, asymmetricSign) backed by local keys.

Not Google's service: a small HTTP server on 127.0.0.1 that answers the two calls the exchange makes
the way the v1 REST API documents them, including the CRC32C integrity fields, so the real
google-cloud-kms client (REST transport) talks to it through EXCHANGE_KMS_ENDPOINT. `tamper` makes
it misbehave in the ways the signer must catch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import google_crc32c
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from .http_thread import ServerThread
from .json_http import JsonHandler

_PATH = re.compile(r"/v1/(?P<name>projects/[^:?]+?)(?P<call>/publicKey|:asymmetricSign)(?:\?.*)?")


@dataclass
class KmsStandIn:
    endpoint: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # resource name -> private key
    requests: list[tuple[str, str]] = field(default_factory=list)  # (call, name)
    tamper: str | None = None  # "signature-crc", "bad-signature", "unverified", "pem-crc"
    signatures_left: int | None = None  # after that many signatures, answer 403 (permission revoked)

    def add_key(self, name: str, algorithm: str) -> Any:
        key = ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else ec.generate_private_key(ec.SECP256R1())
        self.keys[name] = key
        return key

    def answer(self, name: str, call: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append((call, name))
        key = self.keys.get(name)
        if key is None:
            return 404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}}
        if call == ":asymmetricSign" and self.signatures_left is not None:
            if self.signatures_left <= 0:
                return 403, {"error": {"code": 403, "message": "permission denied on the key", "status": "PERMISSION_DENIED"}}
            self.signatures_left -= 1
        if call == "/publicKey":
            pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            crc = google_crc32c.value(pem.encode()) + (1 if self.tamper == "pem-crc" else 0)
            algorithm = "EC_SIGN_ED25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "EC_SIGN_P256_SHA256"
            return 200, {"name": name, "pem": pem, "algorithm": algorithm, "pemCrc32c": str(crc)}
        return 200, self._sign(name, key, body)

    def _sign(self, name: str, key: Any, body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            data = base64.b64decode(body["data"])
            verified = {"verifiedDataCrc32c": int(body.get("dataCrc32c", -1)) == google_crc32c.value(data)}
            signature = key.sign(data)
        else:
            digest = base64.b64decode(body["digest"]["sha256"])
            verified = {"verifiedDigestCrc32c": int(body.get("digestCrc32c", -1)) == google_crc32c.value(digest)}
            signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if self.tamper == "bad-signature":
            signature = key.sign(b"something else") if isinstance(key, ed25519.Ed25519PrivateKey) else \
                key.sign(hashlib.sha256(b"x").digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if self.tamper == "unverified":
            verified = dict.fromkeys(verified, False)
        crc = google_crc32c.value(signature) + (1 if self.tamper == "signature-crc" else 0)
        return {"name": name, "signature": base64.b64encode(signature).decode(), "signatureCrc32c": str(crc),
                "protectionLevel": "SOFTWARE", **verified}


def _handler(stand_in: KmsStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            match = _PATH.fullmatch(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = (404, {"error": {"code": 404, "message": "no such call"}}) if match is None else \
                stand_in.answer(match["name"], match["call"], body)
            self.reply_json(status, answer)

    return Handler


@pytest.fixture
def kms_stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[KmsStandIn]:
    stand_in = KmsStandIn()
    with ServerThread(_handler(stand_in), name="kms-stand-in") as server:
        stand_in.endpoint = server.url
        monkeypatch.setenv("EXCHANGE_KMS_ENDPOINT", stand_in.endpoint)
        yield stand_in

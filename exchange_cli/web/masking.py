"""The secrets one registry client holds, so that none of them is ever shown.

A registry client knows a password or an identity token, the Basic pair made from them, and the
bearer tokens it is given. Text that comes from elsewhere (a registry's error body, a redirect
URL, a manifest) may repeat any of them, carelessly or not. Every error that leaves a client and
every line it logs passes `SecretMask.hide`, which replaces each secret, in the spellings it may
take in a URL, a JSON string or a header, with ``***``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from urllib.parse import quote, quote_plus

from ..errors import ExchangeError, redact

HIDDEN = "***"


def spellings(secret: str) -> set[str]:
    """`secret`, and its base64 (a Basic header's), each as it appears raw, percent-encoded (in a URL
    or a form) and JSON-escaped."""
    forms = set()
    for value in (secret, base64.b64encode(secret.encode()).decode("ascii")):
        forms |= {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1]}
    return {form for form in forms if form}


class SecretMask:
    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # layers are fetched by several threads, each may get a token

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        with self._lock:
            self._secrets = self._secrets | spellings(secret)
            # Longest first, so a secret that contains another is hidden whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_basic(self, username: str, password: str) -> None:
        """The password, and the ``user:password`` pair a Basic Authorization header encodes."""
        self.add(password)
        if password:
            self.add(f"{username}:{password}")

    def hide(self, text: str) -> str:
        pattern = self._pattern
        text = pattern.sub(HIDDEN, text) if pattern is not None else text
        return redact(text)

    def hide_in(self, error: ExchangeError) -> None:
        """Hide secrets in an error on its way out: its message and every text attribute (a BlobError's
        reason), so whatever shows it, shows no secret."""
        error.args = tuple(self.hide(arg) if isinstance(arg, str) else arg for arg in error.args)
        for name, value in vars(error).items():
            if isinstance(value, str):
                setattr(error, name, self.hide(value))

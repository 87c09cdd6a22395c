"""The error for a layer whose content cannot be turned into a safe root filesystem."""

from __future__ import annotations

from ..errors import ExchangeError


class LayerError(ExchangeError):
    """A layer entry breaks a rule; names the layer digest, the entry and the rule."""

    def __init__(self, digest: str, entry: str, reason: str) -> None:
        super().__init__(f"layer {digest}: entry {entry!r}: {reason}")
        self.digest, self.entry, self.reason = digest, entry, reason

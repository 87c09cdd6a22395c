"""What the run asks of delivery: the conformance checks to skip and the mirror registry, if any."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...validation.problems import parse_skipped_checks


@dataclass(frozen=True)
class DeliverySettings:
    skipped_checks: tuple[str, ...] = ()
    mirror_registry: str | None = None  # HOST[/PATH]

    @classmethod
    def from_options(cls, skip_checks: Iterable[str], mirror_registry: str | None) -> DeliverySettings:
        return cls(parse_skipped_checks(skip_checks), mirror_registry or None)


def delivers_image(spec: dict[str, Any]) -> bool:
    """A gear that sets custom.flywheel.beta_exchange: true is delivered as an image, as existing exchanges do."""
    custom = spec.get("custom")
    flywheel = custom.get("flywheel") if isinstance(custom, dict) else None
    return isinstance(flywheel, dict) and flywheel.get("beta_exchange") is True

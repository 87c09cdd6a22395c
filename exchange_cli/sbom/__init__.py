"""The software bill of materials of a rootfs: the packages its package managers installed.

Collected while the flattener writes the rootfs (`Collector`, shown only the few database files it
asks for), written as CycloneDX 1.6 JSON (`render`), read back for the exchange's questions
(`query`). A library layer: no command line, no rendering. See docs/sbom.md.
"""

from __future__ import annotations

from .collect import Collector
from .document import MEDIA_TYPE, PREDICATE_TYPE, render
from .model import Findings, OperatingSystem, Package

__all__ = ["MEDIA_TYPE", "PREDICATE_TYPE", "Collector", "Findings", "OperatingSystem", "Package", "render"]

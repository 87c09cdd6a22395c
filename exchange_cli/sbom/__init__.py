"""The software bill of materials of a rootfs: the packages its package managers installed.

Collected while the flattener writes the rootfs (`collect.Collector`, shown only the few database files it
asks for), written as CycloneDX 1.6 JSON (`render`; an export has a child process build it while
the layers stream, `renderer`), read back for the exchange's questions (`query`). A library
layer: no command line, no rendering. See docs/sbom.md.
"""

from __future__ import annotations

from .model import MEDIA_TYPE, PREDICATE_TYPE, Findings, OperatingSystem, Package

# Not the collector (sbom.collect, which loads every parser): an export whose document a child makes
# needs only the gate in its own process (sbom.gate), and most commands none of it.
__all__ = ["MEDIA_TYPE", "PREDICATE_TYPE", "Findings", "OperatingSystem", "Package", "render"]


def render(findings: Findings, rootfs_sha384: str) -> bytes:
    """The CycloneDX document (see document.py), whose library is imported only when a document is made:
    an export without --sbom never loads it."""
    from .document import render as render_document

    return render_document(findings, rootfs_sha384)

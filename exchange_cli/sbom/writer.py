"""The SBOM document written by a process of its own, beside the export.

The export's Python work (the flattener) holds the interpreter; the document's (cyclonedx-python-lib's
import, a model object per component, its serializer) would wait for it, in any thread. In a child
process it runs on the core the flattener leaves to compression: the child is started as the export
begins and imports the library meanwhile; once the stream is written it is handed the findings and
writes the document while the tarball goes to the disk.

The child is only a faster way to the same bytes: whatever goes wrong with it (it cannot start, it
fails, it is killed), the document is made here instead, by the same `document.render`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from typing import Any

from .model import Findings, OperatingSystem, Package

# A document of 100,000 components takes a few seconds; a child that takes this long is stuck.
CHILD_SECONDS = 600


class DocumentWriter:
    """Start it before the export streams; `begin` once the findings are complete, `result` for the bytes.
    Use as a context manager: leaving it ends the child, whatever happened."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.findings: Findings | None = None
        self.sha384 = ""
        self.document: bytes | None = None
        self._from_child = False
        try:
            # Its own session: the terminal's Ctrl-C is ours to handle; we end the child (__exit__).
            self.child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            self.child = None  # rendered here instead

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end_child()

    def begin(self, findings: Findings, rootfs_sha384: str) -> None:
        """Hand the findings over; the child renders while the caller goes on (the output's fsync)."""
        self.findings, self.sha384 = findings, rootfs_sha384
        if self.child is not None:
            self.thread = threading.Thread(target=self._exchange, args=(encode_findings(findings, rootfs_sha384),),
                                           name="sbom-writer", daemon=True)
            self.thread.start()

    @property
    def from_child(self) -> bool:
        """Whether the child wrote the document (after `result`)."""
        return self.child is not None and self.child.returncode == 0 and self._from_child

    def result(self) -> bytes:
        """The document: the child's, or made here if the child gave none."""
        assert self.findings is not None, "begin() first"
        if self.thread is not None:
            self.thread.join()
        if self.document is None:
            from .document import render

            self.document = render(self.findings, self.sha384)
        return self.document

    def _exchange(self, request: bytes) -> None:
        assert self.child is not None
        try:
            output, _ = self.child.communicate(request, timeout=CHILD_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            return
        if self.child.returncode == 0 and output:
            self.document, self._from_child = output, True

    def _end_child(self) -> None:
        if self.child is None:
            return
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        for stream in (self.child.stdin, self.child.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def encode_findings(findings: Findings, rootfs_sha384: str) -> bytes:
    os = findings.os
    return json.dumps({
        "rootfs-sha384": rootfs_sha384,
        "os": [os.id, os.version_id, os.name, os.pretty_name] if os is not None else None,
        "warnings": findings.warnings,
        "packages": [[p.ecosystem, p.name, p.version, p.path, list(p.licenses), [list(q) for q in p.qualifiers]]
                     for p in findings.packages],
    }).encode()  # ASCII: any name travels as \u escapes


def decode_findings(data: bytes) -> tuple[Findings, str]:
    """Only ever our own encode_findings' output, from our parent."""
    request: dict[str, Any] = json.loads(data)
    os = OperatingSystem(*request["os"]) if request["os"] is not None else None
    packages = [Package(ecosystem, name, version, path, tuple(licenses), tuple((k, v) for k, v in qualifiers))
                for ecosystem, name, version, path, licenses, qualifiers in request["packages"]]
    return Findings(packages, os, list(request["warnings"])), request["rootfs-sha384"]


def _child() -> None:
    """Writes the document, or nothing: then the parent makes it itself and reports what fails there."""
    from .document import render  # first: the library loads while the parent is still exporting

    request = sys.stdin.buffer.read()
    with contextlib.suppress(Exception):
        findings, sha384 = decode_findings(request)
        sys.stdout.buffer.write(render(findings, sha384))


if __name__ == "__main__":
    _child()

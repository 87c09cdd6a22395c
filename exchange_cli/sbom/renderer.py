"""The SBOM document, made by a child process on the machine's other core while the export goes on.

Made in the exporting process, the document cost about a fifth of a small image's warm export
(benchmarks/export.py: the library's import, about 70 ms, and its serializer, about 0.1 ms per
component, all of it holding the interpreter the flattener needs). The child imports the library
while the image is opened, parses each package database the flattener shows the collector's gate
(all of them before the stream is written), builds their components (collect.Collector,
document.DocumentBuilder) while the stream is written, and at the end has only the document's frame
left to make.

A rootfs below PROCESS_FROM_BYTES has its document made in the exporting process (document.DocumentHere):
its export is shorter than the child's start, which would cost more than it saves; unless the child was
started early (child_started_early, as `exchange export` does), its start then paid already.

The protocol, on the child's standard input, a Unix socket: JSON lines. An `open` line carries a
descriptor of a layer's tar file (SCM_RIGHTS) and numbers it; each `file` line names a file the gate
took (path, kind) and where its bytes lie in one of those layers, which the child reads itself (a
copyright file per Debian package, 5 MB in the benchmark's image, once cost the exporter the copy and
the writes through a pipe); `warn` lines are the files the gate refused, in the order they came; then
one `end` with the rootfs digest. The child reads through its own descriptors, so a layer file the
cache evicts meanwhile (another process's trim) is still there for it. A thread writes the lines, so
that a child still importing never holds up the flattener. On its standard output: the document's
length on a line, then the document (child.py). The child lives in a session of its own, as every
child of the tool does (children.py), and ends with its input: an exporter killed outright leaves no
renderer behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from .gate import Gate

if TYPE_CHECKING:
    from .document import DocumentHere

# The child: the parent's sys.path, led by the directory this package is in, so that it runs this same
# code whatever the installation; -I so that nothing from the environment (PYTHONPATH, PYTHONSTARTUP, user
# site) changes what it imports; -S, no site: the path is already whole, and site's work (an editable
# install's finder among it) was an eighth of the child's start.
_BOOT = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); from exchange_cli.sbom.child import serve; serve()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
NICENESS = 10  # behind the export's own threads (19 did no better in the benchmark's runs)
# Layers' tar bytes from which an export's document is made by a child (below, in the exporting process):
# about a third of a second of export on this 2-core machine, the child's start and import costing 0.1 s
# of CPU.
PROCESS_FROM_BYTES = 32 << 20
BATCH_BYTES = 16 << 10  # of lines handed to the feeder at once
# Of lines handed to the feeder and not yet written to the child: beyond it the flattener waits for the
# child. A hostile image's 200,000 files (the gate's limit) with long paths would otherwise pile up here.
MAX_QUEUED_BYTES = 32 << 20
MAX_ERROR_BYTES = 64 << 10  # of the child's standard error, read back for the failure's line
# One encoder for every line (json.dumps makes one per call when given separators). ensure_ascii: a path's
# undecodable bytes (surrogates) travel as escapes and come back the same.
_LINES = json.JSONEncoder(separators=(",", ":"))


class RendererFailed(Exception):
    """The child did not deliver the document; the text is its last line of error output, or its exit status."""


# What the feeder writes: lines, alone or with the descriptor an `open` line carries; None ends the input.
_Item: TypeAlias = "tuple[bytes, int | None] | None"


class DocumentProcess:
    """The parent's side: its `watch` decides, as the flattener shows it the files, which the collector
    reads (gate.Gate) and tells the child where they lie; the child reads and parses them and builds the
    document (child.py)."""

    def __init__(self) -> None:
        # A file, not a pipe: the child never blocks on it. Closed by abandon.
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        self.channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, json.dumps([_PACKAGE_ROOT, *sys.path])],
                stdin=child_end.fileno(), stdout=subprocess.PIPE, stderr=self.errors, start_new_session=True)
        except OSError as error:
            self.errors.close()
            self.channel.close()
            raise RendererFailed(f"the SBOM's process could not start: {error.strerror or error}") from error
        finally:
            child_end.close()
        # Behind the exporter's own threads for a core: its work is in no hurry until the export ends, and
        # then it is the only thing left to run.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.process.pid, NICENESS)
        self.lines: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.layers: dict[int, int] = {}  # the number each layer's descriptor was sent as, by descriptor
        self.pending: list[bytes] = []  # lines not yet handed to the feeder
        self.pending_bytes = 0
        self.room = threading.Condition()  # guards the two below
        self.queued = 0  # bytes handed to the feeder, not yet written
        self.feeding = True  # False once the feeder has stopped: the child is gone, or has all it needs
        self.feeder = threading.Thread(target=self._feed, name="sbom-feed", daemon=True)
        self.feeder.start()

    def watch(self) -> Gate:
        """What the flattener shows files to: the child is told where the files the collector reads lie,
        so that reading and parsing them is the child's work and not the flattener's."""
        return _Forwarder(self)

    def finish(self, rootfs_sha384: str) -> None:
        """The last message: the document can now be written (see `document`). Every file was sent as read."""
        self.send({"end": rootfs_sha384})
        self._hand_over()
        self.lines.put(None)

    def document(self) -> bytes:
        """The document, once the child has written it (after `finish`): its length on a line, then its bytes.
        Read by length rather than to the end of the stream, so the child's own exit is not waited for."""
        stdout = self.process.stdout
        assert stdout is not None
        header = stdout.readline(32)
        written = stdout.read(int(header)) if header.rstrip(b"\n").isdigit() else b""
        if not header.endswith(b"\n") or len(written) != int(header) or not written:
            raise RendererFailed(self._failure(self.process.wait()))
        return written

    def abandon(self) -> None:
        """Ends the child, whatever it is doing (it exits by itself once it has delivered), and frees the pipes
        and the layers' descriptors not yet sent."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the group is only the child
            self.process.wait()
        self.lines.put(None)
        self.feeder.join()
        while not self.lines.empty():
            item = self.lines.get()
            if item is not None and item[1] is not None:
                os.close(item[1])
        self.channel.close()
        for stream in (self.process.stdout, self.errors):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def send(self, message: dict[str, Any]) -> None:
        """A message: one JSON line."""
        line = _LINES.encode(message).encode() + b"\n"
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= BATCH_BYTES:
            self._hand_over()

    def send_span(self, kind: str, path: str, fd: int, offset: int, size: int) -> None:
        """A file the gate took, as where its bytes lie: `size` bytes at `offset` of the layer open as `fd`.
        A layer's first file sends the child its own descriptor of it first."""
        layer = self.layers.get(fd)
        if layer is None:
            layer = self.layers[fd] = len(self.layers)
            self._hand_over()  # the lines before it go before it
            line = _LINES.encode({"open": layer}).encode() + b"\n"
            self._put(line, os.dup(fd))  # the feeder sends it later: the flattener may close its own by then
        self.send({"file": path, "kind": kind, "layer": layer, "at": offset, "bytes": size})

    def all_shown(self) -> None:
        self._hand_over()  # the child parses while the stream is written, not after

    def _hand_over(self) -> None:
        """The lines sent so far, to the feeder as one write: a wake-up of its thread per line took the
        interpreter from the flattener hundreds of times (a Debian image has a copyright file per package)."""
        if not self.pending:
            return
        batch = b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        self._put(batch, None)

    def _put(self, batch: bytes, descriptor: int | None) -> None:
        """To the feeder, once the queue has room; `descriptor` (closed once sent) goes with `batch`."""
        with self.room:
            self.room.wait_for(lambda: self.queued < MAX_QUEUED_BYTES or not self.feeding)
            feeding = self.feeding
            if feeding:
                self.queued += len(batch)
        if not feeding:  # nobody would write it: `document` names why the child is gone
            if descriptor is not None:
                os.close(descriptor)
            return
        self.lines.put((batch, descriptor))

    def _feed(self) -> None:
        try:
            while (item := self.lines.get()) is not None:
                batch, descriptor = item
                if descriptor is None:
                    self.channel.sendall(batch)  # the child builds what it has been sent while the export goes on
                else:
                    try:
                        sent = socket.send_fds(self.channel, [batch], [descriptor])
                    finally:
                        os.close(descriptor)
                    self.channel.sendall(batch[sent:])
                with self.room:
                    self.queued -= len(batch)
                    self.room.notify_all()
            self.channel.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the child is gone: `document` finds its output short, and names why from its error output
        finally:
            with self.room:
                self.feeding = False
                self.room.notify_all()

    def _failure(self, status: int) -> str:
        self.errors.seek(0)
        lines = self.errors.read(MAX_ERROR_BYTES).decode("utf-8", "replace").strip().splitlines()
        if lines:
            return lines[-1]
        if status < 0:
            return f"the SBOM's process ended by signal {-status}"
        return f"the SBOM's process ended with exit status {status}" if status else "the SBOM's process wrote nothing"


class _Forwarder(Gate):
    """The Gate of an export whose document the child makes: where the files it takes lie, and its
    warnings, go to the child in the order they come, where a collect.Collector is told them (child.py)."""

    def __init__(self, process: DocumentProcess) -> None:
        super().__init__()
        self.process = process

    def take_span(self, path: str, fd: int, offset: int, size: int) -> None:
        if (kind := self._admit(path, size)) is not None:
            self.process.send_span(kind, path, fd, offset, size)

    def all_shown(self) -> None:
        self.process.all_shown()

    def read(self, kind: str, path: str, data: bytes) -> None:
        raise AssertionError("the flattener shows the child's gate where files lie (take_span), not their bytes")

    def warn(self, line: str) -> None:
        self.process.send({"warn": line})


DocumentMaker: TypeAlias = "DocumentProcess | DocumentHere"


@contextlib.contextmanager
def document_maker(rootfs_bytes: int, started: DocumentProcess | None = None) -> Iterator[DocumentMaker]:
    """Where the document of a rootfs of `rootfs_bytes` (its layers' tars) is made: in `started`, a child
    started early (see child_started_early), whatever the size, its start being paid already; else in a
    child from PROCESS_FROM_BYTES on; here below that. A child is ended on the way out whatever happened."""
    if started is None and rootfs_bytes < PROCESS_FROM_BYTES:
        from .document import DocumentHere  # the library, loaded here only for a small rootfs

        yield DocumentHere()
        return
    child = started or DocumentProcess()
    try:
        yield child
    finally:
        child.abandon()


@contextlib.contextmanager
def child_started_early(wanted: bool) -> Iterator[DocumentProcess | None]:
    """A child for the document of the one export to come, started before that export's code is even
    imported: the child's interpreter start and its library's import (0.1 s of CPU) then run on the other
    core while this process imports the exporter and opens the image, on one core, instead of beside the
    flattener, which keeps both busy (benchmarks/export.py: the big image's SBOM ratio 1.06 -> 1.00-1.03).
    Hand it to document_maker; ended on the way out if no export took it (the image could not be opened)."""
    if not wanted:
        yield None
        return
    child = DocumentProcess()
    try:
        yield child
    finally:
        child.abandon()  # a second time, after document_maker's, it has nothing left to do

"""The renderer's child process (renderer.py starts it): reads and parses the files it is told of, and builds the document.

A module of its own so that the child imports what it runs and no more: the parent's side of the
renderer (subprocess, tempfile, threads) cost a tenth of the child's start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections import deque
from collections.abc import Iterator

from .document import DocumentHere, warm_up

RECEIVE_BYTES = 1 << 16
MAX_DESCRIPTORS = 4  # per receipt: the kernel ends a receipt at the message that carries one


class InputRefused(Exception):
    """What the exporter sent cannot be read as it says: the line the exporter's error names (renderer.py)."""


class Inbox:
    """The exporter's lines, from the socket that is this process's standard input, and the descriptors
    `open` lines carry, in the order they came: each arrives with its line's first byte, so it is here
    by the time that line is."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.buffer = bytearray()
        self.descriptors: deque[int] = deque()

    def lines(self) -> Iterator[bytes]:
        """Each whole line, until the exporter closes its end (a last line cut short is dropped)."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                yield bytes(self.buffer[start:end])
                start = end + 1
                continue
            del self.buffer[:start]
            start = 0
            data, descriptors, flags, _ = socket.recv_fds(self.channel, RECEIVE_BYTES, MAX_DESCRIPTORS)
            self.descriptors.extend(descriptors)
            if flags & socket.MSG_CTRUNC:
                raise InputRefused("more layer descriptors came at once than the SBOM's process takes")
            if not data:
                return
            self.buffer += data


def serve() -> None:
    """Loads the document's library first (the reason the child exists), then has a DocumentHere's collector
    read the files and warnings as it is told of them, in their order, so that both sides make the document
    by one code. An input that ends without its end (the exporter is gone, or gave up) ends it, writing
    nothing; one it cannot read as it says is a line on its error output, which the exporter's error is."""
    warm_up()
    try:
        _serve()
    except InputRefused as error:
        sys.stderr.write(f"{error}\n")
        sys.stderr.flush()
        os._exit(1)


def _serve() -> None:
    here = DocumentHere()
    collector = here.watch()
    inbox = Inbox(socket.socket(fileno=sys.stdin.fileno()))
    layers: list[int] = []
    for line in inbox.lines():
        message = json.loads(line)
        if "file" in message:
            collector.read(message["kind"], message["file"], _read(layers[message["layer"]], message))
        elif "open" in message:
            if not inbox.descriptors:
                raise InputRefused(f"layer {message['open']} came without its descriptor")
            layers.append(inbox.descriptors.popleft())
        elif "warn" in message:
            collector.warn(message["warn"])
        elif "end" in message:
            here.finish(message["end"])
            document = here.document()
            sys.stdout.buffer.write(b"%d\n%s" % (len(document), document))
            sys.stdout.buffer.flush()
            os._exit(0)  # the parent has what it waits for; an interpreter's orderly exit would only cost time


def _read(descriptor: int, message: dict[str, object]) -> bytes:
    """The file's bytes, from this process's own descriptor of its layer."""
    size, offset = message["bytes"], message["at"]
    assert isinstance(size, int) and isinstance(offset, int)
    data = os.pread(descriptor, size, offset)
    if len(data) != size:
        raise InputRefused(f"{message['file']}: its layer file ends {size - len(data):,} bytes short of it")
    return data

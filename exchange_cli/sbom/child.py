"""The renderer's child process (renderer.py starts it): parses the files it is sent and builds the document.

A module of its own so that the child imports what it runs and no more: the parent's side of the
renderer (subprocess, tempfile, threads) cost a tenth of the child's start.
"""

from __future__ import annotations

import json
import os
import sys

from .document import DocumentHere, warm_up


def serve() -> None:
    """Loads the document's library first (the reason the child exists), then has a DocumentHere's collector
    read the files and warnings as they are sent, in their order, so that both sides make the document by
    one code. An input that ends without its end (the exporter is gone, or gave up) ends it, writing
    nothing."""
    warm_up()
    here = DocumentHere()
    collector = here.watch()
    stdin = sys.stdin.buffer
    while line := stdin.readline():
        message = json.loads(line)
        if "file" in message:
            data = stdin.read(message["bytes"])
            if len(data) != message["bytes"]:
                return  # cut off mid-file: the exporter is gone
            collector.read(message["kind"], message["file"], data)
        elif "warn" in message:
            collector.warn(message["warn"])
        elif "end" in message:
            here.finish(message["end"])
            document = here.document()
            sys.stdout.buffer.write(b"%d\n%s" % (len(document), document))
            sys.stdout.buffer.flush()
            os._exit(0)  # the parent has what it waits for; an interpreter's orderly exit would only cost time

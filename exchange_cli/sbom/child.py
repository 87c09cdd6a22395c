"""The renderer's child process (renderer.py starts it): builds the document from the findings it is sent.

A module of its own so that the child imports what it runs and no more: the parent's side of the
renderer (subprocess, tempfile, threads) cost a tenth of the child's start.
"""

from __future__ import annotations

import json
import os
import sys

from .document import DocumentHere, warm_up
from .model import Findings
from .wire import decode_package, os_of


def serve() -> None:
    """Loads the document's library first (the reason the child exists), then has a DocumentHere build as
    told, so both sides make the document by one code. An input that ends without its end (the exporter
    is gone, or gave up) ends it, writing nothing."""
    warm_up()
    here = DocumentHere()
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "packages" in message:
            here.found([decode_package(fields) for fields in message["packages"]])
        elif "os" in message:
            here.os_chosen(os_of(message["os"]))
        elif "licenses" in message:
            here.licenses_declared(tuple(message["licenses"]))
        elif "end" in message:
            end = message["end"]
            here.finish(Findings(os=os_of(end["os"]), warnings=end["warnings"]), end["sha384"])
            document = here.document()
            sys.stdout.buffer.write(b"%d\n%s" % (len(document), document))
            sys.stdout.buffer.flush()
            os._exit(0)  # the parent has what it waits for; an interpreter's orderly exit would only cost time

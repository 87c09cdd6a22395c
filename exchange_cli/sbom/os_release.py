"""etc/os-release (or usr/lib/os-release): which distribution the rootfs is, for the purls' namespace."""

from __future__ import annotations

import shlex

from .errors import Unreadable
from .fields import decode
from .model import OperatingSystem

WANTED = {"ID", "VERSION_ID", "NAME", "PRETTY_NAME"}


def parse(path: str, data: bytes) -> OperatingSystem:
    values: dict[str, str] = {}
    for line in decode(data).splitlines():
        key, equals, raw = line.strip().partition("=")
        if not equals or key not in WANTED:
            continue
        try:
            words = shlex.split(raw)  # the file is shell-quoted: ID="debian", PRETTY_NAME='A B'
        except ValueError:
            continue
        values[key] = " ".join(words)
    os_id = values.get("ID", "").lower()
    if not os_id or not all(c.isalnum() or c in "._-" for c in os_id):
        raise Unreadable(f"{path}: no ID=, or one that is not a lowercase word")
    return OperatingSystem(os_id, values.get("VERSION_ID", ""), values.get("NAME", ""), values.get("PRETTY_NAME", ""))

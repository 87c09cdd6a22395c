"""Who owns a lease, a work directory or a partial upload, and whether that owner is certainly gone.

An owner is a process on a machine. Another process can only be *sure* the owner is gone when it
runs on the same machine, in the same PID namespace (containers have their own), since the same
boot: then the PID either no longer exists or belongs to a process started at another time. In every
other case the answer is "not known to be gone", and callers keep what the owner left.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

_TOKEN_SEPARATOR = "."


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str
    pid_namespace: str
    pid: int
    started: str  # the process's start time in clock ticks since boot, from /proc; "" where unknown

    @classmethod
    def current(cls) -> Owner:
        return _current(os.getpid())

    def is_gone(self) -> bool:
        """True only when this process can tell for sure (see the module docstring)."""
        here = Owner.current()
        if not self.boot_id or (self.host, self.boot_id, self.pid_namespace) != (here.host, here.boot_id,
                                                                                 here.pid_namespace):
            return False
        if not _pid_exists(self.pid):
            return True
        return bool(self.started) and _start_time(self.pid) not in ("", self.started)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        try:
            return cls(str(data["host"]), str(data["boot_id"]), str(data["pid_namespace"]), int(data["pid"]),
                       str(data["started"]))
        except (TypeError, KeyError, ValueError):
            return None

    def token(self) -> str:
        """A compact form for file names: boot id, PID namespace, PID and start time (no host: a file
        name stays short, and boot id plus namespace already tell machines apart)."""
        return _TOKEN_SEPARATOR.join([self.boot_id[:12], self.pid_namespace, str(self.pid), self.started])

    @classmethod
    def from_token(cls, token: str) -> Owner | None:
        parts = token.split(_TOKEN_SEPARATOR)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        here = Owner.current()
        if not here.boot_id.startswith(parts[0]) or not parts[0]:
            return cls("", parts[0], parts[1], int(parts[2]), parts[3])  # another boot or machine: never "gone"
        return cls(here.host, here.boot_id, parts[1], int(parts[2]), parts[3])

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host or 'another machine'}"


@cache
def _current(pid: int) -> Owner:
    return Owner(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace(), pid,
                 _start_time(pid))


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""

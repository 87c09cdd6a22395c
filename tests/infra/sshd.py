"""A real OpenSSH server on 127.0.0.1 with a fresh host key that no client knows, and no account anyone
can log in to: what a contributor meets when `add-gear git@host:…` reaches a server for the first time
or without a key, where ssh would stop and ask."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import missing_component, require_executable


@dataclass(frozen=True)
class SshServer:
    port: int
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, deadline: float = 20) -> None:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if process.poll() is not None:
            missing_component(f"sshd exited at start: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    missing_component(f"sshd did not listen on 127.0.0.1:{port} within {deadline}s")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    binary = require_executable("sshd")
    keygen = require_executable("ssh-keygen")
    home = tmp_path / "sshd"
    home.mkdir()
    host_key = home / "host_key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    port = _free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {home / 'sshd.pid'}",
        "AuthorizedKeysFile none", "PasswordAuthentication yes", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "PermitRootLogin no", "AllowUsers nobody-here",
    ]) + "\n")
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege-separation directory
    log = home / "sshd.log"
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log.open("w"),
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, log)
        yield SshServer(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)

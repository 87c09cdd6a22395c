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

from tests.infra import free_port, missing_component, require_executable

STARTUP_ATTEMPTS = 3


@dataclass(frozen=True)
class SshServer:
    port: int
    process: subprocess.Popen


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, deadline: float = 20) -> bool:
    """Whether sshd listens on `port`; False when another process took the port first."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if process.poll() is not None:
            if "Address already in use" in log.read_text():
                return False
            missing_component(f"sshd exited at start: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    missing_component(f"sshd did not listen on 127.0.0.1:{port} within {deadline}s")
    return False


def _start(binary: str, home: Path, host_key: Path) -> tuple[int, subprocess.Popen]:
    """sshd on a free port. The port is picked, then bound by sshd: another process (a parallel test
    worker) may take it in between, and then a new one is picked."""
    for attempt in range(STARTUP_ATTEMPTS):
        port = free_port()
        config = home / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {home / 'sshd.pid'}",
            "AuthorizedKeysFile none", "PasswordAuthentication yes", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "PermitRootLogin no", "AllowUsers nobody-here",
        ]) + "\n")
        log = home / f"sshd-{attempt}.log"
        with log.open("w") as output:
            process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=output,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            if _wait_for_port(port, process, log):
                return port, process
        except BaseException:
            _stop(process)
            raise
    missing_component(f"sshd found no free port in {STARTUP_ATTEMPTS} attempts")
    raise AssertionError("unreachable")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    binary = require_executable("sshd")
    keygen = require_executable("ssh-keygen")
    home = tmp_path / "sshd"
    home.mkdir()
    host_key = home / "host_key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege-separation directory
    port, process = _start(binary, home, host_key)
    try:
        yield SshServer(port, process)
    finally:
        _stop(process)

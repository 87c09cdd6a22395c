"""Running the exchange command as CI does, in a process of its own, and reading what it printed."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from exchange_cli.cli import cli


def exchange(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what CI sees, tracebacks included."""
    return subprocess.run([sys.executable, "-m", "exchange_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout, check=False)


def run_with_memory_cap(args: list[str], cap: int, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`exchange ARGS` in a process that cannot map more than `cap` bytes: reading a huge file whole fails."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.run([sys.executable, "-m", "exchange_cli", *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=300, cwd=cwd, check=False)


def one_error_line(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The single line a failure prints on stderr; nothing like a traceback around it."""
    stderr = result.stderr
    assert "Traceback" not in stderr and "Error:" not in stderr.replace("error:", ""), stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def catalog_site(repo: Path, scratch: Path) -> Path:
    """`exchange index --html` of the exchange at `repo`, into `scratch`/site (the JSON index beside it)."""
    site = scratch / "site"
    result = CliRunner().invoke(cli, ["index", "--repo", str(repo), "-o", str(scratch / "exchange.json"),
                                      "--html", str(site)])
    assert result.exit_code == 0, result.output
    return site

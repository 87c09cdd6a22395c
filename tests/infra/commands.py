"""Running the exchange command as CI does, in a process of its own or through the same CLI in the test's
process, and reading what it printed."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli


def exchange(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what CI sees, tracebacks included. For a test whose subject is
    the process (a signal, a pipe, a memory cap, a terminal, what it loads); `exchange_here` otherwise.
    `env` is added to this process's environment (exchange_here's is the whole environment)."""
    return subprocess.run([sys.executable, "-m", "exchange_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout, check=False)


def exchange_here(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`exchange ARGS` run by the same CLI in this process, as `exchange` would run in `cwd` with the
    environment `env` (as subprocess.run takes it: the whole environment; tempfile reads TMPDIR again):
    its status, stdout and stderr, a crash's traceback on stderr as a process prints it. A process of its
    own spent 0.2 s of CPU importing the package before it did anything."""
    with pytest.MonkeyPatch.context() as patch:
        if env is not None:
            for key in os.environ.keys() - env.keys():
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
        patch.setattr(tempfile, "tempdir", None)
        if cwd is not None:
            patch.chdir(cwd)
        result = CliRunner().invoke(cli, list(args), prog_name="exchange")
    crash = result.exception is not None and not isinstance(result.exception, SystemExit)
    stderr = result.stderr + ("".join(traceback.format_exception(*result.exc_info)) if crash else "")
    return subprocess.CompletedProcess(["exchange", *args], result.exit_code, result.stdout, stderr)


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

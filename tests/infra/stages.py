"""Stages for real `exchange process` runs in processes of their own, on one remote and one bucket: clones,
runs started and held at the remote's pre-receive hook until released (`Stage`), and the fixtures
`local_stage` and `gcs_stage`. A run is held at a step of its own (its export, its upload) by arming a
test gate (exchange_cli/testgates.py): `stage.arm("upload")`, then `stage.wait_at("upload", run)`.

A run that nothing happens to while it works (the rerun after a kill, a second clone's run that ends while the
first is held, a maintainer's clean-up that waits for nobody) runs in the test's process (`stage.run_here`):
with the same arguments, TMPDIR, gates and log as one started in a process of its own, it meets the same
checkout, remote and bucket, and saves the 0.4 s CPU that starting `exchange process` costs. A run the
test holds, kills or overlaps with another stays a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_cli.ownership import OWNER_RECORD
from exchange_cli.testgates import GATES_ENV
from tests.infra.commands import exchange_here
from tests.infra.gcs import gcs_objects
from tests.infra.gitrepo import ExchangeRepo, gears_on_a_remote, run_git

EXCHANGE = Path(sys.executable).with_name("exchange")
GEARS = ("hello", "other")
DEADLINE = 180.0
# Holds the first push in its pre-receive hook until the test creates the file `release`.
HOLD_FIRST_PUSH = """#!/bin/sh
if mkdir "{gates}/held" 2>/dev/null; then
  echo $$ > "{gates}/held/pid"
  while [ ! -e "{gates}/release" ]; do sleep 0.05; done
fi
exit 0
"""


@dataclass
class Stage:
    tmp: Path
    remote: Path
    images: Path
    bucket_uri: str
    gates: Path
    tmpdir: Path  # the runs' TMPDIR: where their work directories are made
    objects: Callable[[], dict[str, bytes]]  # the whole bucket, control objects and partial uploads included

    def clone(self, name: str) -> Path:
        path = self.tmp / name
        run_git(self.tmp, "clone", "-q", str(self.remote), str(path))
        run_git(path, "config", "user.name", "Exchange Test")
        run_git(path, "config", "user.email", "test@exchange.invalid")
        return path

    def process_args(self, checkout: Path, *extra: str) -> list[str]:
        return ["process", "--repo", str(checkout), "--bucket", self.bucket_uri, "--oci-layout", str(self.images),
                "--cache-dir", str(self.tmp / f"cache-{checkout.name}"), "--quiet", *extra]

    def start(self, checkout: Path, *extra: str, terminal_group: bool = False) -> subprocess.Popen[str]:
        """`terminal_group`: the run leads a process group of its own, as a shell's foreground job does, so a
        test can send the terminal's Ctrl-C to the whole group (os.killpg)."""
        log = (self.tmp / f"{checkout.name}.log").open("a")
        # PYTHONFAULTHANDLER: a run that hangs prints every thread's stack when `finish` aborts it.
        env = {**os.environ, "TMPDIR": str(self.tmpdir), GATES_ENV: str(self.gates), "PYTHONFAULTHANDLER": "1"}
        return subprocess.Popen([str(EXCHANGE), *self.process_args(checkout, *extra)], stdout=log,
                                stderr=subprocess.STDOUT, text=True, env=env,
                                process_group=0 if terminal_group else None)

    def run_here(self, checkout: Path, *extra: str) -> int:
        """`exchange process` as `start` runs it, to its end, in this process: its exit status."""
        return self.invoke_here(checkout, self.process_args(checkout, *extra))

    def invoke_here(self, checkout: Path, args: list[str]) -> int:
        """`exchange ARGS` in this process, with a started run's TMPDIR (where work directories are made and
        looked for) and gates; what it prints goes to the checkout's log, as a started run's does."""
        done = exchange_here(*args, env={**os.environ, "TMPDIR": str(self.tmpdir), GATES_ENV: str(self.gates)})
        with (self.tmp / f"{checkout.name}.log").open("a") as log:
            log.write(done.stdout + done.stderr)  # a crash's traceback included, as a process prints it
        return done.returncode

    def log(self, checkout: Path) -> str:
        path = self.tmp / f"{checkout.name}.log"
        return path.read_text() if path.exists() else ""

    def start_held(self, name: str, *extra: str, terminal_group: bool = False) -> tuple[Path, subprocess.Popen[str]]:
        """A run in a fresh clone, held in its push (the first push to the remote) until release_push."""
        self.hold_first_push()
        checkout = self.clone(name)
        run = self.start(checkout, *extra, terminal_group=terminal_group)
        wait_for(self.push_is_held, f"{name} is pushing", running=run)
        return checkout, run

    def hold_first_push(self) -> None:
        hook = self.remote / "hooks" / "pre-receive"
        hook.write_text(HOLD_FIRST_PUSH.format(gates=self.gates))
        hook.chmod(0o755)

    def release_push(self) -> None:
        (self.gates / "release").touch()

    def push_is_held(self) -> bool:
        return (self.gates / "held" / "pid").is_file()

    def remote_head(self) -> str:
        return run_git(self.remote, "rev-parse", "master")

    def arm(self, gate: str) -> None:
        """Runs of this stage that reach `gate` (exchange_cli/testgates.py) wait there until released."""
        (self.gates / f"{gate}.armed").touch()

    def wait_at(self, gate: str, run: subprocess.Popen[str]) -> None:
        wait_for((self.gates / f"{gate}.reached").exists, f"the run is held at {gate}", running=run)

    def release(self, gate: str) -> None:
        (self.gates / f"{gate}.armed").unlink()


def finish(process: subprocess.Popen[str], stage: Stage, checkout: Path) -> int:
    try:
        return process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # the fault handler writes where each thread is to the log
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        pytest.fail(f"{checkout.name} did not finish:\n{stage.log(checkout)}")


def wait_for(condition: Callable[[], bool], what: str, *, running: subprocess.Popen[str] | None = None,
             poll: float = 0.05) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        assert running is None or running.poll() is None, f"the run ended before {what}"
        time.sleep(poll)


def local_objects(root: Path) -> Callable[[], dict[str, bytes]]:
    """Every file in a local bucket but the sha384 sidecars, the (always empty) control lock file and the
    ownership record (written once, kept by design)."""
    def read() -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and ".exchange-sha384" not in p.parts
                and p.name not in (".exchange-control.lock", OWNER_RECORD)}
    return read


def make_stage(exchange_repo: ExchangeRepo, tmp_path: Path, bucket_uri: str,
               objects: Callable[[], dict[str, bytes]]) -> Stage:
    remote, images = gears_on_a_remote(exchange_repo, tmp_path, GEARS)
    (tmp_path / "gates").mkdir()
    (tmp_path / "tmpdir").mkdir()
    return Stage(tmp_path, remote, images, bucket_uri, tmp_path / "gates", tmp_path / "tmpdir", objects)


@pytest.fixture
def local_stage(exchange_repo: ExchangeRepo, tmp_path: Path) -> Stage:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    return make_stage(exchange_repo, tmp_path, bucket.as_uri(), local_objects(bucket))


@pytest.fixture
def gcs_stage(exchange_repo: ExchangeRepo, tmp_path: Path, gcs_bucket_uri: str) -> Stage:
    return make_stage(exchange_repo, tmp_path, gcs_bucket_uri, lambda: gcs_objects(gcs_bucket_uri))

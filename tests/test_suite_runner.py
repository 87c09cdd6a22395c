"""`./scripts/test` (the README's second command, what CI runs) puts the run's temporary files in memory,
in a directory of its own that it removes after a run that passed and keeps, named, after one that
failed; a TMPDIR the caller set is left as it is. Run here on a copy of the script whose venv's pip and
pytest are stand-ins that record what they were given: the real suite is what calls this."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import require_executable
from tests.infra.hypothesis_storage import STORAGE_ENV, storage_maker

ROOT = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")
MIN_FREE = 4 << 30  # what the script asks of /dev/shm before it puts the run there

# The venv's pytest: records the TMPDIR it got, whether it is a directory on a tmpfs, and whether the first
# collection (the venv's python, below) had finished when it started, then exits as told.
FAKE_PYTEST = """#!/usr/bin/env bash
printf '%s\\n' "${TMPDIR:-}" "$(stat -f -c %T "${TMPDIR:-/nonexistent}" 2>/dev/null)" "$*" \\
    "$(cat "$RECORD.python" 2>/dev/null)" > "$RECORD"
exit "${PYTEST_STATUS:-0}"
"""
# The venv's python, which the script runs for the first collection only: records, once done, what it
# was asked and whether it may write bytecode.
FAKE_PYTHON = """#!/usr/bin/env bash
sleep 0.3
printf '%s' "${PYTHONDONTWRITEBYTECODE-unset}|$*" > "$RECORD.python"
"""


@dataclass(frozen=True)
class SuiteRun:
    status: int
    stderr: str
    tmpdir: str  # what pytest saw as TMPDIR
    filesystem: str  # of that directory, as stat -f names it
    arguments: str
    first_collection: str  # what the first collection had recorded when pytest started: PYTHONDONTWRITEBYTECODE|args


@pytest.fixture
def shm_to_ourselves(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One of these tests at a time across the pytest-xdist workers (a lock in the session's temporary root,
    which they share): the failed run's kept directory must not appear in /dev/shm while another test
    counts what a passing run left there."""
    lock = tmp_path_factory.getbasetemp().parent / "suite-runner.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def scripts_directories() -> set[Path]:
    """What scripts/test makes in /dev/shm (`mktemp -d /dev/shm/ex.XXXXXX`): other programs' files there
    (Python's semaphores, say) come and go on their own."""
    return set(SHM.glob("ex.*")) if SHM.is_dir() else set()


@pytest.fixture
def suite_runner_copy(tmp_path: Path, shm_to_ourselves: None) -> Path:
    """A checkout's shape with scripts/test as it is and a venv whose pip does nothing."""
    require_executable("dpkg-query")  # the script's check for its Debian packages
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "test", copy / "scripts" / "test")
    venv_bin = copy / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("pip", "#!/bin/sh\nexit 0\n"), ("pytest", FAKE_PYTEST)):
        (venv_bin / name).write_text(text)
        (venv_bin / name).chmod(0o755)
    return copy


def run_suite(copy: Path, *, pytest_status: int = 0, tmpdir: str | None = None) -> SuiteRun:
    record = copy / "pytest-saw"
    env = {key: value for key, value in os.environ.items() if key != "TMPDIR"}
    env |= {"RECORD": str(record), "PYTEST_STATUS": str(pytest_status)}
    if tmpdir is not None:
        env["TMPDIR"] = tmpdir
    done = subprocess.run([str(copy / "scripts" / "test"), "-q", "tests/test_x.py"], env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    saw = record.read_text().splitlines()
    return SuiteRun(done.returncode, done.stderr, saw[0], saw[1], saw[2], saw[3] if len(saw) > 3 else "")


def in_memory_here() -> bool:
    """Whether this machine's /dev/shm is a tmpfs with room for the run: the branch the script takes."""
    if not SHM.is_dir():
        return False
    filesystem = subprocess.run(["stat", "-f", "-c", "%T", str(SHM)], capture_output=True, text=True, check=False)
    return filesystem.stdout.strip() == "tmpfs" and shutil.disk_usage(SHM).free >= MIN_FREE


def test_a_passing_run_has_its_temporary_files_in_memory_and_leaves_none(suite_runner_copy: Path) -> None:
    before = scripts_directories()
    run = run_suite(suite_runner_copy)
    assert run.status == 0 and run.arguments == "-n 4 -q tests/test_x.py"
    if in_memory_here():
        assert run.stderr == ""
        assert Path(run.tmpdir).parent == SHM and Path(run.tmpdir).name.startswith("ex.")
        assert run.filesystem == "tmpfs"
        assert not Path(run.tmpdir).exists() and scripts_directories() == before
    else:  # a container's 64 MiB: on disk, said in one line
        assert run.tmpdir == "" and run.stderr.startswith("scripts/test: temporary files on disk: /dev/shm")


def test_a_failed_run_keeps_them_says_where_and_exits_as_pytest_did(suite_runner_copy: Path) -> None:
    run = run_suite(suite_runner_copy, pytest_status=1)
    if not in_memory_here():
        assert (run.status, run.tmpdir) == (1, "")
        return
    try:
        assert run.status == 1
        assert Path(run.tmpdir).is_dir() and Path(run.tmpdir).parent == SHM
        assert run.stderr == (f"scripts/test: the run's temporary files are kept in {run.tmpdir} "
                              "(in memory: rm -rf it when done)\n")
    finally:
        shutil.rmtree(run.tmpdir, ignore_errors=True)


def test_a_tmpdir_the_caller_set_is_used_as_it_is(suite_runner_copy: Path, tmp_path: Path) -> None:
    own = tmp_path / "own-tmp"
    own.mkdir()
    run = run_suite(suite_runner_copy, pytest_status=1, tmpdir=str(own))
    assert (run.status, run.tmpdir, run.stderr) == (1, str(own), "")
    assert own.is_dir()  # the caller's, never removed


def test_one_collection_writes_the_compiled_code_before_the_workers_start(suite_runner_copy: Path) -> None:
    """docs/testing.md, "Compiled code": the first collection may write bytecode whatever the machine says,
    collects without workers, and is finished when the run's pytest starts."""
    run = run_suite(suite_runner_copy)
    assert run.status == 0
    no_bytecode, _, arguments = run.first_collection.partition("|")
    assert no_bytecode in ("", "unset")  # empty or unset: Python writes bytecode
    assert arguments == "-m pytest --collect-only -q -p no:xdist -p no:cacheprovider"


def test_pytest_reads_a_rewrite_another_collection_wrote_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    """What that first collection is for, asked of the pytest installed (its debug trace names what it
    does with each module): without a cache a process told not to write bytecode rewrites the module and
    keeps nothing; after one collection allowed to write, it reads the rewrite."""
    module = tmp_path / "test_m.py"
    module.write_text("def test_one():\n    assert 1 + 1 == 2\n")

    def pytest_run(*options: str, write: bool) -> str:
        # as scripts/test runs them: without the prefix the suite gives the processes its tests start
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPYCACHEPREFIX"}
        env |= {"PYTHONDONTWRITEBYTECODE": "" if write else "1", "PYTEST_DEBUG": "1"}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                               *options, str(module)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]
        return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if str(module) in line)

    assert "rewriting" in pytest_run(write=False)
    assert not (tmp_path / "__pycache__").exists()
    pytest_run("--collect-only", write=True)
    assert [path.name for path in (tmp_path / "__pycache__").iterdir()] == [
        f"test_m.{sys.implementation.cache_tag}-pytest-{pytest.__version__}.pyc"]
    traced = pytest_run(write=False)
    assert "found cached rewritten pyc" in traced and "rewriting" not in traced


def test_the_workers_share_the_hypothesis_storage_their_controller_made() -> None:
    """tests/infra/hypothesis_storage.py: under xdist, the storage this worker uses was made by the process
    that started it, so its Unicode tables are made once for the run; run alone, pytest makes its own."""
    storage = os.environ[STORAGE_ENV]
    assert Path(storage).is_dir()
    expected_maker = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
    assert storage_maker(storage) == expected_maker, storage

"""Honest progress: bars that end at 100%, one line per spec that never wraps, "cached" for cache hits,
IEC units; on a real terminal (tmux), in a captured console, and in plain logs."""

from __future__ import annotations

import io
import json
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from exchange_cli.progress import LogProgress, RichProgress, RowLayout, format_bytes, format_fraction
from tests.infra import require_executable
from tests.infra.gitrepo import example_gear, init_repo, run_git

DECIMAL_UNITS = re.compile(r"\d\s?(kB|MB|GB|TB)\b")
ROW = re.compile(r"^acme/\S+@1\.0\.0 +(fetch|fetched|cached|write|written|upload|uploaded|in bucket|failed)\b")
HISTORY_LINES = 50_000  # the terminal's scrollback: every line a test's command prints
SPECS = ("hello", "a-gear-with-a-rather-long-name-that-cannot-fit", "bids-fmriprep", "qsiprep")


def noise(size: int, seed: int) -> bytes:
    """Bytes gzip cannot shrink, so each image takes a moment to write."""
    return random.Random(seed).randbytes(size)


def gear_image(images: Path, name: str, *, data_mib: int = 0) -> dict:
    image = f"registry.example.org/acme/{name}:1.0.0"
    gear = example_gear(name=name, version="1.0.0", custom={"gear-builder": {"image": image}})
    data = {f"opt/{name}/data.bin": noise(data_mib << 20, len(name))} if data_mib else None
    build_demo_image(images, image, gear, data=data)
    return gear


def exchange_with_specs(root: Path, names: tuple[str, ...], *, data_mib: int = 0) -> list[str]:
    """A work tree with a remote, one gear per name; returns the `process` arguments for it."""
    work, remote, images, bucket = root / "work", root / "remote.git", root / "images", root / "bucket"
    for directory in (images, bucket):
        directory.mkdir(parents=True)
    init_repo(remote, bare=True)
    init_repo(work)
    for name in names:
        gear = gear_image(images, name, data_mib=data_mib)
        path = work / "gears" / "acme" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gear, indent=4) + "\n")
    run_git(work, "add", "-A")
    run_git(work, "commit", "-q", "-m", "gears")
    run_git(work, "remote", "add", "origin", str(remote))
    run_git(work, "push", "-q", "origin", "master")
    return ["process", "--repo", str(work), "--bucket", bucket.as_uri(), "--oci-layout", str(images),
            "--cache-dir", str(root / "cache"), "--report", str(root / "reports")]


# --- the terminal: tmux runs `exchange process --jobs 4` in an 80-column window --------------------------

class Tmux:
    """A private tmux server (its own socket), so nothing else on the machine is touched."""

    def __init__(self, binary: str, socket: Path) -> None:
        self.binary, self.socket = binary, socket

    def __call__(self, *args: str) -> str:
        return subprocess.run([self.binary, "-S", str(self.socket), *args], check=True, capture_output=True,
                              text=True).stdout


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(require_executable("tmux"), tmp_path / "tmux.sock")
    yield server
    subprocess.run([server.binary, "-S", str(server.socket), "kill-server"], capture_output=True)


def run_in_terminal(tmux: Tmux, command: list[str], *, width: int, height: int = 40, timeout: float = 240) -> list[str]:
    """Run `command` in a `width`-column terminal until it exits; the whole screen and scrollback,
    wrapped lines joined (-J), so a row that wrapped shows up as one over-long line."""
    shell = shlex.join(command)
    # The history limit is a pane's from its creation: set before the session, in the same server start.
    tmux("set-option", "-g", "history-limit", str(HISTORY_LINES), ";",
         "new-session", "-d", "-s", "progress", "-x", str(width), "-y", str(height), f"{shell}; echo EXIT=$?; sleep 600")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-J", "-t", "progress", "-S", f"-{HISTORY_LINES}")
        if re.search(r"^EXIT=\d+$", screen, re.MULTILINE):
            return screen.splitlines()
        time.sleep(0.5)
    raise AssertionError("the command did not finish:\n" + tmux("capture-pane", "-p", "-t", "progress"))


def test_process_jobs_4_on_a_terminal_draws_one_line_per_spec_each_finished(tmux: Tmux, tmp_path: Path) -> None:
    arguments = exchange_with_specs(tmp_path, SPECS, data_mib=6)
    exchange = [sys.executable, "-c", "from exchange_cli.cli import main; main()"]
    lines = run_in_terminal(tmux, [*exchange, *arguments, "--jobs", "4"], width=80)
    assert "EXIT=0" in lines, "\n".join(lines)
    rows = [line for line in lines if ROW.match(line)]
    assert len(rows) == len(SPECS), "one line per spec, none left behind or drawn twice:\n" + "\n".join(lines)
    for row in rows:
        assert len(row.rstrip()) <= 79, f"a row wider than the terminal wraps: {row!r}"
        assert row.split()[1] == "uploaded", row
        done, total = re.search(r" (\S+)/(\S+) (?:B|KiB|MiB|GiB) ", row + " ").groups()
        assert done == total, f"every bar finishes at 100%: {row!r}"
    assert any("…" in row for row in rows), "the long name is shortened, not wrapped"
    names = {row.split()[0] for row in rows}
    assert {name for name in names if "…" not in name} == {f"acme/{n}@1.0.0" for n in SPECS if len(n) < 20}
    screen = "\n".join(lines)
    assert not DECIMAL_UNITS.search(screen), "sizes in IEC units"
    assert "MiB" in screen and "Traceback" not in screen


# Lines logged by three threads as fast as they can while a display starts, redraws and stops, in many
# short processes (a process's first frame is the slowest to draw, so its windows are the widest): a
# line written between rich choosing the cursor movement and drawing, or straight to the terminal
# while the first frame is drawn, leaves a frame behind. The code before the fix left at least one in
# each of 5 tries of these 90 processes.
CHATTER = """
import sys, threading, time
from exchange_cli.logs import Verbosity, configure, logger
from exchange_cli.progress import progress_for

configure(Verbosity.NORMAL)
log = logger("chatter")
stop = threading.Event()
def chatter(thread):
    while not stop.is_set():
        log.info("line from thread %d", thread)
        time.sleep(0.0005)
threads = [threading.Thread(target=chatter, args=(n,)) for n in range(3)]
with progress_for(sys.stderr) as progress:
    for thread in threads:
        thread.start()
    time.sleep(0.02)
    with progress.row(f"acme/x{sys.argv[1]}@1.0.0", "fetch", done="fetched") as row, row.task("layer", 10) as task:
        task.advance(10)
    stop.set()
    for thread in threads:
        thread.join()
"""


def test_lines_logged_by_other_threads_never_leave_a_frame_behind(tmux: Tmux, tmp_path: Path) -> None:
    runs = 90
    program = tmp_path / "chatter.py"
    program.write_text(CHATTER)
    loop = f"for n in $(seq {runs}); do {shlex.join([sys.executable, str(program)])} $n || break; done"
    lines = run_in_terminal(tmux, ["sh", "-c", loop], width=80)
    assert "EXIT=0" in lines, "\n".join(lines)
    frames = [line.split()[:2] for line in lines if line.startswith("acme/x")]
    assert sorted(frames) == sorted([f"acme/x{n}@1.0.0", "fetched"] for n in range(1, runs + 1)), \
        "each display leaves its last frame once, and nothing else:\n" + "\n".join(
            line for line in lines if line.startswith("acme/x"))


# --- a captured rich console of fixed width ---------------------------------------------------------

def frame(progress: RichProgress, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    with console.capture() as captured:
        console.print(progress._bar.make_tasks_table(progress._bar.tasks))
    return captured.get().splitlines()


@pytest.mark.parametrize("width", [40, 60, 80, 132])
def test_rows_fit_any_console_width_and_finish_at_100_percent(width: int) -> None:
    progress = RichProgress(Console(file=io.StringIO(), width=width, force_terminal=True))
    names = [f"acme/{name}@1.0.0" for name in SPECS]
    for name in names:
        with progress.row(name, "fetch", done="fetched") as row, row.task("layer", 3 << 20) as task:
            task.skip(1 << 20)  # a cached layer: less to do, not a faster transfer
            task.advance(2 << 20)
        with progress.row(name, "write", done="written") as row, row.task("Writing") as task:
            task.set_total(419 << 20)
            for _ in range(419):
                task.advance(1 << 20)
    shown = frame(progress, width)
    progress.close()
    assert len(shown) == len(names)
    assert all(len(line) <= width - 1 for line in shown), shown
    assert all(" written " in line for line in shown)
    if RowLayout.fit(width - 1).bytes:
        assert all("419.0/419.0 MiB" in line for line in shown), shown


def test_a_failed_stage_says_so_and_keeps_its_bar_where_it_stopped() -> None:
    progress = RichProgress(Console(file=io.StringIO(), width=100, force_terminal=True))
    with pytest.raises(OSError):
        with progress.row("acme/x@1.0", "upload") as row, row.task("upload", 100) as task:
            task.advance(30)
            raise OSError("disk full")
    (line,) = frame(progress, 100)
    progress.close()
    assert " failed " in line and "30/100 B" in line


# --- plain logs (CI) -----------------------------------------------------------------------------------

def export_log(tmp_path: Path, layout: Path, reference: str, cache: Path) -> list[str]:
    stream = io.StringIO()
    from exchange_cli.export import ExportOptions, export_rootfs
    from exchange_cli.image.blobcache import BlobCache

    with LogProgress(stream, interval=0) as progress:
        export_rootfs(reference, tmp_path / "out.tgz", options=ExportOptions(cache=BlobCache(cache), oci_layout=layout),
                      progress=progress)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("data_mib", [0, 3])
def test_the_write_bar_counts_exactly_the_bytes_it_announced(tmp_path: Path, data_mib: int) -> None:
    """The demo image (small files: headers dominate) stopped at 4%; a big one at 419.4 of 419.5 MB."""
    images = tmp_path / "images"
    gear_image(images, "hello", data_mib=data_mib)
    lines = export_log(tmp_path, images, "registry.example.org/acme/hello:1.0.0", tmp_path / "cache")
    (written,) = [line for line in lines if " written: " in line]
    done, total = re.search(r"written: (.+?) of (.+?)(?: \(|$)", written).groups()
    assert done == total, written


def test_cache_hits_say_cached_and_no_rate(tmp_path: Path) -> None:
    images = tmp_path / "images"
    gear_image(images, "hello", data_mib=2)
    reference = "registry.example.org/acme/hello:1.0.0"
    first = export_log(tmp_path, images, reference, tmp_path / "cache")
    second = export_log(tmp_path, images, reference, tmp_path / "cache")
    assert any(line.startswith(f"{reference} fetched: ") for line in first), first
    assert f"{reference} cached" in second, second
    assert not any("/s)" in line for line in second if "cached" in line)


def test_sizes_are_iec_units_in_logs_and_summaries(tmp_path: Path) -> None:
    arguments = exchange_with_specs(tmp_path, ("hello",), data_mib=2)
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "MiB" in result.stderr and "MiB" in result.stdout, "progress lines and the summary"
    assert not DECIMAL_UNITS.search(result.output)
    report = next((tmp_path / "reports").rglob("*.md")).read_text()
    assert "MiB" in report and not DECIMAL_UNITS.search(report)


@pytest.mark.parametrize(("count", "shown"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                               (419 * 2**20 + 2**19, "419.5 MiB"), (3 * 2**30, "3.0 GiB")])
def test_format_bytes_is_iec(count: int, shown: str) -> None:
    assert format_bytes(count) == shown


def test_format_fraction_uses_the_totals_unit() -> None:
    assert format_fraction(2**19, 2**20) == "0.5/1.0 MiB"
    assert format_fraction(2**20, 2**20) == "1.0/1.0 MiB"
    assert format_fraction(5, None) == "5 B"

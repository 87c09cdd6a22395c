"""Honest progress: bars that end at 100%, one line per spec that never wraps, "cached" for cache hits,
IEC units; on a real terminal (tmux), in a captured console, and in plain logs."""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from exchange_cli.display import LogProgress, RichProgress, RowLayout, estimate_eta, format_duration
from exchange_cli.process.signals import CancellableProgress
from exchange_cli.progress import NullProgress, format_bytes, format_fraction
from tests.infra import require_executable
from tests.infra.gitrepo import gear_and_image, init_repo, run_git

DECIMAL_UNITS = re.compile(r"\d\s?(kB|MB|GB|TB)\b")
ROW = re.compile(r"^acme/\S+@1\.0\.0 +(fetch|fetched|cached|write|written|upload|uploaded|in bucket|failed)\b")
HISTORY_LINES = 50_000  # the terminal's scrollback: every line a test's command prints
SPECS = ("hello", "a-gear-with-a-rather-long-name-that-cannot-fit", "bids-fmriprep", "qsiprep")


def noise(size: int, seed: int) -> bytes:
    """Bytes gzip cannot shrink, so each image takes a moment to write."""
    return random.Random(seed).randbytes(size)


def gear_image(images: Path, name: str, *, data_mib: int = 0) -> dict:
    gear, image = gear_and_image("acme", name)
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
    subprocess.run([server.binary, "-S", str(server.socket), "kill-server"], check=False, capture_output=True)


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
from exchange_cli.display import progress_for

configure(Verbosity.NORMAL)
log = logger("chatter")
stop = threading.Event()
def chatter(thread):
    while not stop.is_set():
        log.info("line from thread %d", thread)
        time.sleep(0.0005)
# One display after another in one process: each starts and stops while three threads log.
for run in range(1, int(sys.argv[1]) + 1):
    stop.clear()
    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(3)]
    with progress_for(sys.stderr) as progress:
        for thread in threads:
            thread.start()
        time.sleep(0.02)
        with progress.row(f"acme/x{run}@1.0.0", "fetch", done="fetched") as row, row.task("layer", 10) as task:
            task.advance(10)
        stop.set()
        for thread in threads:
            thread.join()
"""


def test_lines_logged_by_other_threads_never_leave_a_frame_behind(tmux: Tmux, tmp_path: Path) -> None:
    runs = 90
    program = tmp_path / "chatter.py"
    program.write_text(CHATTER)
    lines = run_in_terminal(tmux, [sys.executable, str(program), str(runs)], width=80)
    assert "EXIT=0" in lines, "\n".join(lines)
    frames = [line.split()[:2] for line in lines if line.startswith("acme/x")]
    assert sorted(frames) == sorted([f"acme/x{n}@1.0.0", "fetched"] for n in range(1, runs + 1)), \
        "each display leaves its last frame once, and nothing else:\n" + "\n".join(
            line for line in lines if line.startswith("acme/x"))


# --- a captured rich console of fixed width ---------------------------------------------------------

def frame(progress: RichProgress, width: int) -> list[str]:
    """What the live display draws now: the overall line, then a line per row."""
    console = Console(file=io.StringIO(), width=width, color_system=None)
    with console.capture() as captured:
        console.print(progress.frame())
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
    overall, *shown = frame(progress, width)
    progress.close()
    assert len(shown) == len(names)
    assert all(len(line) <= width - 1 for line in [overall, *shown]), shown
    assert all(" written " in line for line in shown)
    if RowLayout.fit(width - 1, max(map(len, names))).bytes:
        assert all("419.0/419.0 MiB" in line for line in shown), shown


def test_a_failed_stage_says_so_and_keeps_its_bar_where_it_stopped() -> None:
    progress = RichProgress(Console(file=io.StringIO(), width=100, force_terminal=True))
    with pytest.raises(OSError), progress.row("acme/x@1.0", "upload") as row, row.task("upload", 100) as task:
        task.advance(30)
        raise OSError("disk full")
    overall, line = frame(progress, 100)
    progress.close()
    assert " failed " in line and "30/100 B" in line
    assert overall.startswith("0 of 1 done, 1 failed · 30 B moved"), overall


# --- one bar per spec over all its stages, one overall line, names that fit -------------------------------

MIB = 1 << 20
ARTIFACT = "acme-bids-fmriprep-23.2.1-sha384-" + "0f1e2d3c4b5a6978" * 6 + ".tgz"  # a 96-hex object name


class FakeClock:
    """Time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drawn(line: str) -> float:
    """The cells of a row's bar drawn as done (rich draws a half cell as ╸; without colours, the rest blank)."""
    return line.count("━") + line.count("╸") / 2


def run_pipeline(progress: RichProgress | LogProgress, name: str, clock: FakeClock, *, seconds: float = 0,
                 sizes: tuple[int, int, int] = (MIB, 2 * MIB, 2 * MIB)) -> None:
    """A spec through fetch, write and upload, each stage moving its size in `seconds`."""
    stages = (("fetch", "fetched"), ("write", "written"), ("upload", "uploaded"))
    for (stage, done), size in zip(stages, sizes, strict=True):
        with progress.row(name, stage, done=done) as row, row.task(stage, size) as task:
            clock.now += seconds
            task.advance(size)


def test_a_specs_bar_never_goes_back_across_its_stages() -> None:
    """Layers opened one after another (one cached), a write whose total is unknown, then known, then
    larger, an upload: each used to start the bar again. The bar spans all three stages instead."""
    progress = RichProgress(Console(file=io.StringIO(), width=80, force_terminal=True))
    name = "acme/hello@1.0.0"
    samples: list[tuple[str, float, float]] = []

    def sample(where: str) -> None:
        samples.append((where, progress.rows[name].fraction, drawn(frame(progress, 80)[-1])))

    with progress.row(name, "fetch", done="fetched") as row:
        with row.task("layer 1", 10 * MIB) as task:
            task.advance(5 * MIB)
            sample("fetch layer 1 half")
            task.advance(5 * MIB)
            sample("fetch layer 1 done")
        with row.task("layer 2", 30 * MIB) as task:
            sample("fetch layer 2 opened")
            task.skip(30 * MIB)
            sample("fetch layer 2 cached")
        with row.task("layer 3", 20 * MIB) as task:
            sample("fetch layer 3 opened")
            task.advance(20 * MIB)
    sample("fetched")
    with progress.row(name, "write", done="written") as row, row.task("Writing") as task:
        sample("write, total unknown")
        task.set_total(100 * MIB)
        task.advance(60 * MIB)
        sample("write 60 of 100")
        task.set_total(150 * MIB)
        sample("write 60 of 150")
        task.advance(90 * MIB)
    sample("written")
    with progress.row(name, "upload", done="uploaded", unchanged="in bucket") as row, \
            row.task("upload", 80 * MIB) as task:
        sample("upload opened")
        task.advance(40 * MIB)
        sample("upload half")
        task.advance(40 * MIB)
    sample("uploaded")
    progress.close()
    for (before, fraction, cells), (after, next_fraction, next_cells) in itertools.pairwise(samples):
        assert next_fraction >= fraction, f"the bar went back from {before} to {after}: {samples}"
        assert next_cells >= cells, f"the drawn bar went back from {before} to {after}: {samples}"
    by_step = {where: fraction for where, fraction, _ in samples}
    assert by_step["fetched"] == pytest.approx(1 / 3) and by_step["written"] == pytest.approx(2 / 3)
    assert 2 / 3 < by_step["upload half"] < 1, "each stage fills its share as it goes"
    assert by_step["uploaded"] == 1.0 and samples[-1][2] == RowLayout.fit(79, len(name)).bar, samples


def test_the_overall_line_counts_specs_done_of_those_expected_bytes_moved_and_the_eta() -> None:
    clock = FakeClock()
    progress = RichProgress(Console(file=io.StringIO(), width=80, force_terminal=True), clock=clock)
    progress.expect(4)
    for name in ("acme/a@1.0.0", "acme/b@1.0.0"):
        run_pipeline(progress, name, clock, seconds=10)
    overall, *rows = frame(progress, 80)
    # Half the work in 60 seconds: as much again to go.
    assert overall == "2 of 4 done · 10.0 MiB moved · ETA 1m 00s", overall
    assert len(rows) == 2
    with pytest.raises(OSError), progress.row("acme/c@1.0.0", "fetch", done="fetched") as row, \
            row.task("layer", 4 * MIB) as task:
        task.advance(MIB)
        raise OSError("connection reset")
    assert frame(progress, 80)[0].startswith("2 of 4 done, 1 failed · 11.0 MiB moved"), frame(progress, 80)
    progress.close()


def test_without_expect_the_count_is_the_rows_opened_and_there_is_no_eta() -> None:
    """More may come: no count to finish against, so no ETA, however long the work has gone on."""
    clock = FakeClock()
    progress = RichProgress(Console(file=io.StringIO(), width=80, force_terminal=True), clock=clock)
    run_pipeline(progress, "acme/a@1.0.0", clock, seconds=100)
    with progress.row("acme/b@1.0.0", "fetch", done="fetched") as row, row.task("layer", 4 * MIB) as task:
        clock.now += 100
        task.advance(2 * MIB)
        overall = frame(progress, 80)[0]
    progress.close()
    assert overall == "1 of 2 done · 7.0 MiB moved", overall


def test_a_bare_task_has_a_row_but_is_not_one_of_the_specs() -> None:
    progress = RichProgress(Console(file=io.StringIO(), width=80, force_terminal=True))
    progress.expect(1)
    with progress.task(f"Writing restore-{ARTIFACT}", 3 * MIB) as task:
        task.advance(3 * MIB)
    overall, row = frame(progress, 80)
    progress.close()
    assert overall.startswith("0 of 1 done · 3.0 MiB moved"), overall
    assert row.startswith("Writing resto…") and ".tgz " in row and len(row) <= 79, row


def test_the_eta_is_the_time_taken_scaled_by_what_is_left_and_only_when_it_can_be_told() -> None:
    assert estimate_eta(0.25, 60.0) == pytest.approx(180.0)
    assert estimate_eta(0.5, 4.0) is None, "too soon to tell"
    assert estimate_eta(0.01, 600.0) is None, "too little done to tell"
    assert estimate_eta(1.0, 60.0) is None, "nothing left"
    assert [format_duration(seconds) for seconds in (0.4, 45, 245, 3900)] == ["0s", "45s", "4m 05s", "1h 05m"]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_names_are_shortened_in_the_middle_to_fit_and_whole_when_they_fit(width: int) -> None:
    """A spec name or a 96-hex object name never wraps: cut in the middle, its start and its end kept."""
    names = ["acme/hello@1.0.0", "acme/a-gear-with-a-rather-long-name-that-cannot-fit@1.0.0", ARTIFACT]
    progress = RichProgress(Console(file=io.StringIO(), width=width, force_terminal=True))
    progress.expect(len(names))
    for name in names:
        with progress.row(name, "upload", done="uploaded") as row, row.task("upload", 419 * MIB) as task:
            task.advance(100 * MIB)
    overall, *rows = frame(progress, width)
    progress.close()
    assert all(len(line) <= width - 1 for line in [overall, *rows]), [overall, *rows]
    assert re.match(r"3( of |/)3", overall), overall
    for name, line in zip(names, rows, strict=True):
        shown = line.split(" ")[0]
        if "…" in shown:
            head, tail = shown.split("…")
            assert name.startswith(head) and name.endswith(tail) and min(len(head), len(tail)) >= 8, (name, line)
        else:
            assert shown == name, (name, line)
    if width == 200:
        assert all(line.split(" ")[0] == name
                   for name, line in zip(names, rows, strict=True)), "room for every name whole"
    else:
        assert "…" in rows[2], "the 96-hex name is shortened"


def test_log_lines_say_n_of_n_at_every_tick_until_all_are_done() -> None:
    clock = FakeClock()
    progress = LogProgress(io.StringIO(), interval=0, clock=clock)
    progress.expect(2)
    run_pipeline(progress, "acme/a@1.0.0", clock, seconds=2)
    with progress.row("acme/b@1.0.0", "fetch", done="fetched") as row, row.task("layer", 4 * MIB) as task:
        task.advance(MIB // 2)
        clock.now += 4
        task.advance(MIB // 2)
        ticking = progress.periodic_lines()
    run_pipeline(progress, "acme/b@1.0.0", clock)
    assert ticking[0].startswith("progress: 1 of 2 done · 6.0 MiB moved · ETA "), ticking
    assert ticking[1:] == ["acme/b@1.0.0 fetch: 1.0 MiB of 4.0 MiB (256.0 KiB/s)"], ticking
    assert progress.periodic_lines() == [], "nothing left to report"


def test_every_progress_takes_the_expected_count_and_stages() -> None:
    NullProgress().expect(3)
    display = LogProgress(io.StringIO(), interval=0)
    progress = CancellableProgress(display, threading.Event())
    # A spec delivered as an image is only fetched: done once it is.
    progress.expect(3, stages_of={"acme/image@1.0.0": ("fetch",)})
    for name in ("acme/image@1.0.0", "acme/tarball@1.0.0"):
        with progress.row(name, "fetch", done="fetched") as row, row.task("layer", 10) as task:
            task.advance(10)
    overall = display.overall()
    assert (overall.done, overall.expected, overall.moved) == (1, 3, 20)
    assert display.rows["acme/tarball@1.0.0"].fraction == pytest.approx(1 / 3)
    with progress.row("acme/x@1.0.0", "fetch") as row:
        row.expect(5)  # a row hands the display's own expect on
    assert display.overall().expected == 5


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

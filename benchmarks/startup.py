"""How long the CLI takes to start, as a ratio to a bare interpreter measured in the same run.

Goals (issue 22): `exchange --help` and `exchange --version` within 3x of `python3 -c pass`;
`exchange validate` of one spec within 8x. A pre-commit hook pays this on every commit. A command's own
--help loads only what defining its options needs: `process --help`, the command with the most behind it,
within 4x (it was 15x while it imported the whole pipeline). `exchange process` with nothing to do (a CI
job on a branch with no new spec; file:// bucket, images from an OCI layout) loads none of the machinery
the work needs, within 12x (it was 18x); the rest is GitPython and the git commands a run always asks.
Each figure is the median of --runs runs of a fresh process, after one run that warms the page cache and
writes the bytecode cache, as an installed tool has it. The commands take turns (the bare interpreter too), so
a machine busier at one moment than at another weighs on every figure alike.
Run: .venv/bin/python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"--help": 3.0, "--version": 3.0, "process --help": 4.0, "validate one spec": 8.0,
         "process, nothing to do": 12.0}


def median_seconds(commands: dict[str, list[str]], cwd: Path, runs: int, env: dict[str, str]) -> dict[str, float]:
    for argv in commands.values():
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)  # warm the page cache and .pyc files
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(taken) for name, taken in samples.items()}


def one_spec_exchange(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    spec = root / "gears" / "examples" / "file-metadata.json"
    spec.parent.mkdir(parents=True)
    shutil.copy(ROOT / "gears/examples/file-metadata.json", spec)
    return spec


def processed_exchange(root: Path, exe: str, env: dict[str, str]) -> list[str]:
    """`exchange demo`'s exchange (processed, with a bare remote, a file:// bucket and an OCI layout), and the
    `exchange process` that finds nothing left to do in it."""
    subprocess.run([exe, "demo", "--dir", str(root), "-q"], env=env, capture_output=True, check=True)
    return [exe, "process", "--repo", str(root / "exchange"), "--bucket", (root / "bucket").as_uri(),
            "--oci-layout", str(root / "images"), "--cache-dir", str(root / "cache"), "-q"]


def installed_environment(cache: Path) -> dict[str, str]:
    """An installed tool runs from compiled bytecode; a shell with PYTHONDONTWRITEBYTECODE=1 (this machine's) would
    measure compiling every module instead. The cache goes to a temporary prefix, not into the source tree."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("exchange"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "exchange"
        spec = one_spec_exchange(root)
        env = installed_environment(Path(tmp) / "pycache")
        figures = median_seconds({
            "baseline": [sys.executable, "-c", "pass"],
            "--help": [exe, "--help"],
            "--version": [exe, "--version"],
            "process --help": [exe, "process", "--help"],
            "validate one spec": [exe, "validate", str(spec.relative_to(root))],
            "process, nothing to do": processed_exchange(Path(tmp) / "demo", exe, env),
        }, root, args.runs, env)
    baseline = figures.pop("baseline")
    print(f"baseline  python3 -c pass: {baseline * 1000:7.1f} ms (median of {args.runs})")
    failed = False
    for name, seconds in figures.items():
        ratio = seconds / baseline
        met = ratio <= GOALS[name]
        failed |= not met
        print(f"{name:<22} {seconds * 1000:7.1f} ms  {ratio:5.1f}x  (goal <= {GOALS[name]:.0f}x: "
              f"{'met' if met else 'NOT met'})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

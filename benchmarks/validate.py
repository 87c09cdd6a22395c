"""How long `exchange validate --all` takes over 1,000 generated gear specs (target: under 3 s).

Baseline, measured in the same run: validating the same specs the way the flywheel-gears package
does it (`generator.validate_manifest`, which re-checks the schema on every call), in-process.
Run: .venv/bin/python benchmarks/validate.py [--count N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_exchange(root: Path, count: int) -> list[Path]:
    template = json.loads((ROOT / "gears/examples/file-metadata.json").read_text())
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    paths = []
    for index in range(count):
        gear = dict(template, name=f"gear-{index:04d}", label=f"Gear {index}", version=f"1.{index % 7}.{index}")
        gear["custom"] = {"gear-builder": {"image": f"registry.example.org/org{index % 10}/gear-{index:04d}:1.{index}"}}
        path = root / "gears" / f"org{index % 10}" / f"gear-{index:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gear, indent=4))
        paths.append(path)
    return paths


def time_cli(root: Path) -> float:
    exe = Path(sys.executable).with_name("exchange")
    started = time.perf_counter()
    proc = subprocess.run([str(exe), "validate", "--all", "--format", "text"], cwd=root, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"validate failed:\n{proc.stdout}{proc.stderr}")
    print(f"  {proc.stdout.strip()}")
    return elapsed


def time_baseline(paths: list[Path]) -> float:
    from gears import generator

    started = time.perf_counter()
    for path in paths:
        generator.validate_manifest(json.loads(path.read_text()))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_exchange(root, args.count)
        ours = min(time_cli(root) for _ in range(3))
        baseline = time_baseline(paths)
    print(f"exchange validate --all over {args.count} gears: {ours:.2f} s (best of 3, whole process; target < 3 s)")
    print(f"baseline, flywheel-gears validate_manifest per file, in-process, no URI format check: {baseline:.2f} s")
    print(f"ratio ours/baseline: {ours / baseline:.2f}")


if __name__ == "__main__":
    main()

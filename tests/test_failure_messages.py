"""Failures of the environment, each one clear line on stderr with exit 2 and never a traceback: outputs
that cannot be written, a full bucket disk, a GCS server that dies mid-run, an unreachable token
endpoint, a git URL that cannot be cloned, a download URL carrying a secret. Secrets stay out of
everything the run writes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.storage.bucket import StorageUnavailable, open_bucket
from tests.catalog_world import CatalogWorld, populate
from tests.infra.gcs import GcsEmulator
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo
from tests.infra.tmpfs import Mount, fill

SECRET = "pa55-w0rd-that-must-not-leak"


def one_error_line(result) -> str:  # noqa: ANN001 - a click Result or a CompletedProcess
    """The single line a failure prints on stderr; nothing like a traceback around it."""
    stderr = result.stderr
    assert "Traceback" not in stderr and "Error:" not in stderr.replace("error:", ""), stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def exchange(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what CI sees, tracebacks included."""
    return subprocess.run([sys.executable, "-m", "exchange_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def world(exchange_repo: ExchangeRepo, tmp_path: Path) -> dict[str, Path]:
    """Two gears with OCI-layout images, a bare remote, and places for the bucket, cache and reports."""
    images = tmp_path / "images"
    exchange_repo.add_gear_with_image(images, "acme", "alpha")
    exchange_repo.add_gear_with_image(images, "acme", "beta")
    exchange_repo.commit("two gears")
    exchange_repo.push_to_new_remote(tmp_path / "remote.git")
    return {"root": exchange_repo.root, "images": images, "cache": tmp_path / "cache", "reports": tmp_path / "reports"}


def process_args(world: dict[str, Path], bucket: str, *extra: str, quiet: bool = True) -> list[str]:
    return ["process", "--repo", str(world["root"]), "--bucket", bucket, "--oci-layout", str(world["images"]),
            "--cache-dir", str(world["cache"]), "--report", str(world["reports"]), *(["--quiet"] if quiet else []),
            *extra]


def assert_untouched(repo: ExchangeRepo, head: str) -> None:
    assert repo.git("rev-parse", "HEAD") == head
    assert repo.git("status", "--porcelain") == ""
    assert not list((repo.root / "manifests").glob("*/*.json"))


def text_of_every_file(*roots: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for root in roots if root.exists()
                     for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts)


# The download URL --------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["option", "environment"])
@pytest.mark.parametrize("url", [f"https://ci-bot:{SECRET}@downloads.example.org/rootfs",
                                 f"https://{SECRET}@downloads.example.org/rootfs",
                                 f"https://downloads.example.org/rootfs?X-Goog-Signature={SECRET}"])
def test_a_download_url_with_a_secret_is_refused_before_any_work(exchange_repo: ExchangeRepo, world, tmp_path: Path,
                                                                 how: str, url: str) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    head = exchange_repo.git("rev-parse", "HEAD")
    args = process_args(world, bucket.as_uri(), *(["--download-url", url] if how == "option" else []))
    result = CliRunner().invoke(cli, args, env={"EXCHANGE_DOWNLOAD_URL": url} if how == "environment" else {})
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("error: download URL (--download-url or EXCHANGE_DOWNLOAD_URL) ")
    assert "credentials" in line or "query or fragment" in line
    assert SECRET not in result.output
    assert SECRET not in text_of_every_file(world["reports"], bucket, exchange_repo.root)
    assert list(bucket.iterdir()) == []
    assert_untouched(exchange_repo, head)


@pytest.mark.parametrize("uri", [f"gs://ci-bot:{SECRET}@bucket/rootfs", f"file://ci-bot:{SECRET}@/srv/bucket"])
def test_a_bucket_uri_with_a_secret_is_refused_without_echoing_it(exchange_repo: ExchangeRepo, world, uri: str) -> None:
    result = CliRunner().invoke(cli, process_args(world, uri))
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"error: bucket URI {uri.split(':')[0]}://***@")
    assert SECRET not in result.output


# Outputs that cannot be written ------------------------------------------------------------------

@pytest.fixture
def catalog(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    return populate(CatalogWorld(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work"))


OUTPUTS = {
    # command: (arguments before the output path, what the message calls it, path below the place)
    "fetch --output-dir": (["fetch", "acme/hello", "--output-dir"], "the download", "out"),
    "fetch -o": (["fetch", "acme/hello", "-o"], "the download", "out.tgz"),
    "index -o": (["index", "-o"], "the catalog", "exchange.json"),
    "index --html": (["index", "-o", "-", "--html"], "the catalog site", "site"),
    "inventory --csv": (["inventory", "--csv"], "the inventory", "gears.csv"),
    "validate --junit-xml": (["validate", "--all", "--junit-xml"], "the JUnit report", "reports/validate.xml"),
    "fetch --extract": (["fetch", "acme/hello", "--extract", "--output-dir"], "the download", "out"),
}


# fetch, --html and --junit-xml make missing directories, as they should; the others write one file.
WRITES_INTO_A_MISSING_DIRECTORY = ("index -o", "inventory --csv")


@pytest.mark.parametrize(("command", "place"), [
    *((command, place) for command in sorted(OUTPUTS) for place in ("below-a-file", "read-only")),
    *((command, "missing-parent") for command in WRITES_INTO_A_MISSING_DIRECTORY)])
def test_an_output_that_cannot_be_written_is_one_line(catalog: CatalogWorld, tmp_path: Path, tmpfs: Mount,
                                                      command: str, place: str) -> None:
    args, what, below = OUTPUTS[command]
    if place == "below-a-file":
        (tmp_path / "a-file").write_text("not a directory\n")
        target = tmp_path / "a-file" / below
    elif place == "read-only":
        target = tmpfs("read-only", read_only=True) / below
    else:
        target = tmp_path / "no-such-directory" / below
    result = CliRunner().invoke(cli, [*args, str(target), "--repo", str(catalog.repo.root)])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result)
    reason = {"below-a-file": ("Not a directory", "is a file, not a directory"), "read-only": ("Read-only file system",),
              "missing-parent": ("No such file or directory",)}[place]
    assert line.startswith(f"error: cannot write {what} to {target}"), line  # fetch: the file in it
    assert line.endswith(reason), line


def test_fetch_onto_a_full_disk_names_the_file_and_keeps_nothing(catalog: CatalogWorld, tmpfs: Mount) -> None:
    out = tmpfs("full")
    fill(out)
    published = catalog.find("acme", "hello", "1.0.0-rc.1")
    result = CliRunner().invoke(cli, ["fetch", "acme/hello", "--output-dir", str(out), "--repo", str(catalog.repo.root)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert one_error_line(result) == (f"error: cannot write the download to {out / published.object_name}: "
                                      "No space left on device")
    assert [p.name for p in out.iterdir()] == ["filler"]


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    result = CliRunner().invoke(cli, ["demo", "--dir", str(mine)])
    assert result.exit_code == 2
    assert one_error_line(result) == (f"error: {mine} exists and is not empty; the demo makes its throwaway exchange "
                                      "in a new or empty directory, so that nothing of yours is mixed in or overwritten")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_demo_into_a_read_only_place(tmpfs: Mount) -> None:
    target = tmpfs("read-only", read_only=True) / "demo"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(target)])
    assert result.exit_code == 2
    assert one_error_line(result) == f"error: cannot write the demo exchange to {target}: Read-only file system"


def test_an_os_error_nobody_anticipated_is_still_one_line(tmpfs: Mount, tmp_path: Path) -> None:
    """The CLI's last line of defence: any OSError becomes `error: <path>: <reason>`, exit 2. Here add-gear
    meets a checkout on a file system that went read-only (as a full or failing disk is remounted)."""
    checkout = tmpfs("checkout", size="4m")
    repo = ExchangeRepo(init_repo(checkout / "exchange"))
    repo.write("manifests/README.md", "manifests\n")
    repo.commit("empty exchange")
    subprocess.run(["mount", "-o", "remount,ro", str(checkout)], check=True, capture_output=True)
    source = tmp_path / "manifest.json"
    source.write_text(json.dumps(example_gear()))
    result = exchange("add-gear", str(source), "--org", "acme", "--repo", str(repo.root))
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == f"error: {repo.root / 'gears'}: Read-only file system"


# A full bucket disk -------------------------------------------------------------------------------

PAGE = 4096  # tmpfs hands out space a page at a time


@pytest.mark.parametrize("room", ["none", "for-the-lease-only"])
def test_a_full_local_bucket_names_the_path_and_leaves_nothing(exchange_repo: ExchangeRepo, world, tmpfs: Mount,
                                                               room: str) -> None:
    bucket = tmpfs("bucket", size="64k")
    fill(bucket)
    if room == "for-the-lease-only":  # the run's lease fits in one page; then the first artifact does not
        filler = bucket / "filler"
        os.truncate(filler, filler.stat().st_size - PAGE)
    head = exchange_repo.git("rev-parse", "HEAD")
    result = CliRunner().invoke(cli, process_args(world, bucket.as_uri()))
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result)
    if room == "none":
        assert line == (f"error: {bucket.as_uri()}: creating .exchange-lease.json: {bucket}/.exchange-lease.json: "
                        "No space left on device")
    else:
        assert line.startswith(f"error: {bucket.as_uri()}: uploading acme-alpha-sha384-"), line
        assert f": {bucket}/acme-alpha-sha384-" in line and line.endswith(".tgz: No space left on device"), line
    # No partial upload, lease or temporary file is left behind (the lock file holds no data).
    assert sorted(p.name for p in bucket.iterdir() if p.stat().st_size) == ["filler"]
    assert_untouched(exchange_repo, head)


# GCS: the server dies, the token endpoint is unreachable -------------------------------------------

def test_gcs_server_dying_mid_run_is_one_line_and_the_run_is_undone(exchange_repo: ExchangeRepo, world,
                                                                     private_gcs_emulator: GcsEmulator) -> None:
    emulator = private_gcs_emulator
    emulator.create_bucket("dies-mid-run")
    head = exchange_repo.git("rev-parse", "HEAD")
    env = {**os.environ, "STORAGE_EMULATOR_HOST": emulator.host, "EXCHANGE_GCS_RETRY_SECONDS": "3"}
    env.pop("GCLOUD_SERVICE_ACCOUNT", None)
    # Not quiet: the log line "uploaded …" tells when to stop the server.
    seen: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "exchange_cli", *process_args(world, "gs://dies-mid-run", quiet=False)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as run:
        try:
            for line in run.stderr:  # type: ignore[union-attr]
                seen.append(line)
                if line.startswith("uploaded acme-alpha-"):
                    emulator.stop()  # alpha is in the bucket; beta's upload meets a dead server
                    break
            stderr = "".join(seen) + run.stderr.read()  # type: ignore[union-attr]
            run.wait(timeout=90)
        finally:
            run.kill()
    assert any(line.startswith("uploaded acme-alpha-") for line in seen), stderr
    assert run.returncode == 2, stderr
    line = one_error_line(subprocess.CompletedProcess(run.args, run.returncode, "", stderr))
    port = emulator.host.rsplit(":", 1)[1]
    assert line.startswith("error: gs://dies-mid-run: "), line
    assert line.endswith(f"cannot reach Google Cloud Storage at 127.0.0.1:{port}: Connection refused; gave up after "
                         "retrying for 3s (EXCHANGE_GCS_RETRY_SECONDS)"), line
    assert "acme-alpha-" in stderr and "could NOT delete" in stderr  # the rollback says what it could not undo
    assert_untouched(exchange_repo, head)


def test_gcs_listing_against_a_dead_server(catalog: CatalogWorld, private_gcs_emulator: GcsEmulator) -> None:
    private_gcs_emulator.create_bucket("gone")
    private_gcs_emulator.stop()
    result = exchange("verify-storage", "--bucket", "gs://gone", "--repo", str(catalog.repo.root),
                      env={"STORAGE_EMULATOR_HOST": private_gcs_emulator.host, "EXCHANGE_GCS_RETRY_SECONDS": "2"})
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).endswith("Connection refused; gave up after retrying for 2s "
                                           "(EXCHANGE_GCS_RETRY_SECONDS)")


def test_a_gcs_download_whose_server_dies_is_a_storage_error(private_gcs_emulator: GcsEmulator, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`fetch` and `verify-storage --deep` read through this reader: its failures are one-line errors too."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", private_gcs_emulator.host)
    monkeypatch.delenv("GCLOUD_SERVICE_ACCOUNT", raising=False)
    private_gcs_emulator.create_bucket("reader")
    bucket = open_bucket("gs://reader", retry_seconds=2)
    source = tmp_path / "object.tgz"
    source.write_bytes(b"rootfs bytes" * 1000)
    bucket.upload("object.tgz", source, size=12000, sha384=hashlib.sha384(source.read_bytes()).hexdigest())
    with bucket.open_read("object.tgz") as reader:
        private_gcs_emulator.stop()  # the reader downloads on its first read
        with pytest.raises(StorageUnavailable, match=r"^gs://reader: reading object.tgz: cannot reach Google Cloud "
                                                     r"Storage at 127.0.0.1:\d+: Connection refused; gave up after "
                                                     r"retrying for 2s"):
            reader.read(1024)


@pytest.fixture
def unreachable_service_account() -> tuple[str, str, int]:
    """A service-account key (a real RSA key) whose token_uri is a closed port on 127.0.0.1:
    (base64 of the JSON, the private key, the port)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    port = closed_port()
    info = {"type": "service_account", "project_id": "exchange-test", "private_key_id": "k1", "private_key": pem,
            "client_email": "ci@exchange-test.iam.gserviceaccount.com", "token_uri": f"http://127.0.0.1:{port}/token"}
    return base64.b64encode(json.dumps(info).encode()).decode(), pem, port


def test_an_unreachable_token_endpoint_is_one_line_without_the_key(catalog: CatalogWorld,
                                                                   unreachable_service_account) -> None:
    encoded, pem, port = unreachable_service_account
    # Anything that tried Google itself would meet a closed local proxy instead of the internet.
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {"GCLOUD_SERVICE_ACCOUNT": encoded, "EXCHANGE_GCS_RETRY_SECONDS": "2", "HTTPS_PROXY": proxy,
           "HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1", "STORAGE_EMULATOR_HOST": ""}
    result = exchange("verify-storage", "--bucket", "gs://exchange-test-bucket", "--repo", str(catalog.repo.root),
                      env=env)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert line.endswith(f"cannot get an access token (Google authentication) at 127.0.0.1:{port}: Connection "
                         "refused; gave up after retrying for 2s (EXCHANGE_GCS_RETRY_SECONDS)"), line
    key_body = "".join(pem.strip().splitlines()[1:-1])
    for part in (encoded, key_body[:64], key_body[-64:], "PRIVATE KEY"):
        assert part not in result.stdout + result.stderr


# add-gear from a URL that cannot be cloned ---------------------------------------------------------

def test_add_gear_from_an_unclonable_url_shows_gits_reason(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    port = closed_port()
    unreachable = exchange("add-gear", f"https://ci-bot:{SECRET}@127.0.0.1:{port}/acme/gear.git", "--org", "acme",
                           "--repo", str(exchange_repo.root), env={"GIT_TERMINAL_PROMPT": "0"})
    line = one_error_line(unreachable)
    assert unreachable.returncode == 2
    assert line.startswith(f"error: cannot clone https://***@127.0.0.1:{port}/acme/gear.git: fatal: unable to access "), line
    assert "Connection refused" in line or "Couldn't connect to server" in line, line
    assert SECRET not in unreachable.stdout + unreachable.stderr
    missing = tmp_path / "nowhere.git"
    not_a_repo = exchange("add-gear", missing.as_uri(), "--org", "acme", "--repo", str(exchange_repo.root))
    assert not_a_repo.returncode == 2
    assert one_error_line(not_a_repo) == (f"error: cannot clone {missing.as_uri()}: fatal: '{missing}' does not appear "
                                          "to be a git repository; fatal: Could not read from remote repository.")
    assert exchange_repo.git("status", "--porcelain") == ""

"""Every read bounded, every interrupt clean, every failure one line: what a server, a manifest or a file
hands the tool can neither hold it forever, nor fill memory or disk, nor leave a half-written file behind,
nor end it with a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.provenance.statement import ImageRef
from exchange_cli.storage.lease import LEASE_OBJECT
from tests.catalog_world import CatalogWorld
from tests.cli_world import exchange_command, make_world
from tests.infra.gitrepo import ExchangeRepo, init_repo
from tests.infra.http_thread import ServerThread
from tests.infra.lying_registry import LyingRegistry, Reply
from tests.infra.publication import publish

TRACEBACK = "Traceback (most recent call last)"


class HostileServer:
    """Serves, by the path's first part: `/endless/…` (zeros forever), `/trickle/…` (one byte every `pause` s),
    `/flaky/NAME` (503 the first two times, then the file NAME below `root`), else a file below `root`."""

    def __init__(self, root: Path, pause: float = 5.0) -> None:
        self.root, self.pause, self.stop_event = root, pause, threading.Event()
        self.flaky_answers: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                kind, _, rest = self.path.strip("/").partition("/")
                if kind == "flaky":
                    status = 503 if len(server.flaky_answers) < 2 else 200
                    server.flaky_answers.append(status)
                    body = b"" if status == 503 else (server.root / rest).read_bytes()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                try:
                    if kind == "endless":
                        while not server.stop_event.is_set():
                            self.wfile.write(bytes(64 * 1024))
                    elif kind == "trickle":
                        while not server.stop_event.wait(server.pause):
                            self.wfile.write(b"{")
                            self.wfile.flush()
                    else:
                        self.wfile.write((server.root / self.path.lstrip("/")).read_bytes())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ServerThread(Handler, name="hostile-server")
        self.url = self.server.url

    def close(self) -> None:
        self.stop_event.set()
        self.server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HostileServer]:
    (tmp_path / "served").mkdir()
    hostile = HostileServer(tmp_path / "served")
    yield hostile
    hostile.close()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "exchange.pub"
    path.write_bytes(LocalKeySigner.from_pem(generate_private_key("ed25519"), "k").public_key.pem)
    return path


def manifest_with(tmp_path: Path, **record: object) -> Path:
    """A local manifest file (outside any exchange) whose record is `record`."""
    made = publish(tmp_path / "pub", LocalKeySigner.from_pem(generate_private_key("ed25519"), "k"))
    document = json.loads(made.manifest.read_text())
    document["exchange"].update(record)
    made.manifest.write_text(json.dumps(document))
    return made.manifest


def timed_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[subprocess.CompletedProcess,
                                                                                          float]:
    started = time.monotonic()
    result = subprocess.run([*exchange_command(), *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})}, check=False)
    return result, time.monotonic() - started


def one_error(result: subprocess.CompletedProcess) -> None:
    assert TRACEBACK not in result.stderr, result.stderr
    assert result.stderr.count("error: ") <= 1, result.stderr


# verify: an endless rootfs, /dev/zero, a trickled envelope ----------------------------------------

def test_verify_stops_a_rootfs_that_streams_forever_at_its_recorded_size(tmp_path: Path, server: HostileServer,
                                                                          key: Path) -> None:
    manifest = manifest_with(tmp_path, **{"rootfs-url": f"{server.url}/endless/x.tgz", "rootfs-size": 690})
    result, took = timed_cli("verify", str(manifest), "--key", str(key), "--format", "json")
    assert result.returncode == 1, result.stderr
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "rootfs" and "more than 690 bytes, which the manifest says it holds" in failure["reason"]
    assert took < 30


def test_verify_refuses_a_rootfs_that_is_not_a_regular_file(tmp_path: Path, key: Path) -> None:
    for special in ("/dev/zero", str(tmp_path)):
        manifest = manifest_with(tmp_path, **{"rootfs-url": Path(special).as_uri()})
        result, took = timed_cli("verify", str(manifest), "--key", str(key), "--format", "json")
        assert result.returncode == 1 and took < 30, result.stderr
        assert "not a regular file" in json.loads(result.stdout)["failure"]["reason"]


def test_verify_gives_up_on_an_envelope_sent_a_byte_every_five_seconds(tmp_path: Path, server: HostileServer,
                                                                       key: Path) -> None:
    manifest = manifest_with(tmp_path, **{"attestation-url": f"{server.url}/trickle/x.intoto.jsonl"})
    rootfs = next((tmp_path / "pub" / "bucket").glob("*.tgz"))
    result, took = timed_cli("verify", str(manifest), "--key", str(key), "--file", str(rootfs), "--format", "json",
                             env={"EXCHANGE_DOWNLOAD_FLOOR_SECONDS": "3"})
    assert result.returncode == 1, result.stderr
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "envelope" and "was not received within" in failure["reason"], failure
    assert took < 20, took


def test_an_envelope_nested_100000_levels_is_one_failed_check(tmp_path: Path, key: Path) -> None:
    envelope = tmp_path / "deep.intoto.jsonl"
    envelope.write_text("[" * 100_000)
    manifest = manifest_with(tmp_path, **{"attestation-url": envelope.as_uri()})
    result, _ = timed_cli("verify", str(manifest), "--key", str(key), "--format", "json")
    one_error(result)
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "envelope" and "nested more than 100 levels deep" in failure["reason"]


@pytest.mark.parametrize("deep", [b"[" * 100_000, b'{"gear": ' * 100_000])
def test_verify_of_a_manifest_nested_100000_levels_is_one_line_naming_its_place(tmp_path: Path, key: Path,
                                                                                 deep: bytes) -> None:
    """Issue 24: verify on deeply nested JSON gave a RecursionError. One line: the file, line and column, the rule."""
    manifest = tmp_path / "deep.json"
    manifest.write_bytes(deep)
    result, _ = timed_cli("verify", str(manifest), "--key", str(key))
    one_error(result)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {manifest}: not valid JSON (line 1, column ") and \
        "nested more than 100 levels deep" in line, line


def test_a_download_by_url_sends_no_netrc_credentials(tmp_path: Path, key: Path) -> None:
    """The one HTTP client (web/) never lets requests add ~/.netrc's password to a request of its own."""
    from tests.infra.capturing_registry import CapturingRegistry

    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    (home / ".netrc").chmod(0o600)
    server = CapturingRegistry()
    try:
        manifest = manifest_with(tmp_path, **{"attestation-url": f"http://{server.host}/x.intoto.jsonl"})
        result, _ = timed_cli("verify", str(manifest), "--key", str(key), "--format", "json",
                              env={"HOME": str(home), "NETRC": str(home / ".netrc")})
    finally:
        server.stop()
    assert result.returncode == 1, result.stderr
    assert "HTTP 401" in json.loads(result.stdout)["failure"]["reason"]
    assert server.authorizations == [None]


@pytest.mark.parametrize("which", ["spec", "invocation"])
def test_validate_invocation_refuses_dev_zero_unread(tmp_path: Path, which: str) -> None:
    """A file the user names is read as every document is: capped, a regular file (it read /dev/zero whole)."""
    from tests.infra.gitrepo import example_gear

    spec = tmp_path / "gear.json"
    spec.write_text(json.dumps(example_gear()))
    invocation = tmp_path / "job.json"
    invocation.write_text("{}")
    args = ["/dev/zero", str(invocation)] if which == "spec" else [str(spec), "/dev/zero"]
    result, took = timed_cli("validate-invocation", *args, timeout=30)
    one_error(result)
    assert result.returncode in (1, 2) and took < 20, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: /dev/zero is not a regular file"), line


def test_a_download_by_url_is_retried_after_a_503(tmp_path: Path, server: HostileServer, key: Path) -> None:
    """The one HTTP client's retries serve fetch and verify too (a 503 failed the download at once)."""
    manifest = manifest_with(tmp_path)
    envelope = Path(json.loads(manifest.read_text())["exchange"]["attestation-url"].removeprefix("file://"))
    (server.root / envelope.name).write_bytes(envelope.read_bytes())
    manifest = manifest_with(tmp_path / "again", **{"attestation-url": f"{server.url}/flaky/{envelope.name}"})
    result, _ = timed_cli("verify", str(manifest), "--key", str(key), "--format", "json")
    assert server.flaky_answers == [503, 503, 200]
    # Downloaded and read: only the signature (another publication's key) is left to fail.
    assert json.loads(result.stdout)["failure"]["check"] == "signature", result.stdout


# fetch: endless, interrupted, killed ---------------------------------------------------------------

def point_rootfs_at(world: CatalogWorld, url: str, size: int | None = None) -> None:
    (manifest,) = (world.repo.root / "manifests").rglob("*.json")
    document = json.loads(manifest.read_text())
    document["exchange"]["rootfs-url"] = url
    if size is not None:
        document["exchange"]["rootfs-size"] = size
    manifest.write_text(json.dumps(document))
    world.repo.commit("moved")


def test_fetch_writes_no_more_than_the_manifest_says_and_keeps_nothing(one_gear_catalog: CatalogWorld, server: HostileServer,
                                                                       tmp_path: Path) -> None:
    point_rootfs_at(one_gear_catalog, f"{server.url}/endless/x.tgz", 690)
    out = tmp_path / "out"
    result, took = timed_cli("fetch", "acme/hello", "--output-dir", str(out), "--repo", str(one_gear_catalog.repo.root))
    assert result.returncode == 1 and took < 30, result.stderr
    one_error(result)
    assert "more than 690 bytes" in result.stderr
    assert list(out.iterdir()) == [], "nothing kept, no .part"


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_interrupted_fetch_leaves_no_part_file_and_a_killed_ones_is_swept(one_gear_catalog: CatalogWorld,
                                                                             server: HostileServer, tmp_path: Path,
                                                                             how: str) -> None:
    """SIGTERM: the .part is removed on the way out. SIGKILL cannot be caught: the next fetch removes the
    dead one's .part (its lock is gone), and keeps a live one's."""
    good = json.loads(next((one_gear_catalog.repo.root / "manifests").rglob("*.json")).read_text())["exchange"]
    name = Path(good["rootfs-url"]).name
    point_rootfs_at(one_gear_catalog, f"{server.url}/trickle/{name}")
    out = tmp_path / "out"
    fetching = subprocess.Popen([*exchange_command(), "fetch", "acme/hello", "--output-dir", str(out), "--repo",
                                 str(one_gear_catalog.repo.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: out.is_dir() and list(out.glob(".*.part")), "the download has started")
    fetching.send_signal(getattr(signal, how))
    _, stderr = fetching.communicate(timeout=30)
    if how == "SIGTERM":
        assert fetching.returncode == 143 and stderr.strip() == "interrupted (SIGTERM)", stderr
        assert list(out.iterdir()) == []
        return
    (stale,) = out.glob(".*.part")
    point_rootfs_at(one_gear_catalog, good["rootfs-url"])
    result, _ = timed_cli("fetch", "acme/hello", "--output-dir", str(out), "--repo", str(one_gear_catalog.repo.root))
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and [p.name for p in out.iterdir()] == [name]


def test_an_interrupted_extraction_leaves_no_staging_directory_and_a_killed_ones_is_swept(one_gear_catalog: CatalogWorld,
                                                                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".acme-hello-1.0.0.x1y2z3.extracting"  # as a SIGKILLed extraction leaves it: nobody holds it
    (dead / "etc").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["fetch", "acme/hello", "--output-dir", str(out), "--extract", "--repo",
                                      str(one_gear_catalog.repo.root)])
    assert result.exit_code == 0, result.output
    assert not dead.exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["acme-hello-1.0.0"]


# documents that break parsers ------------------------------------------------------------------------

def test_verify_storage_deep_reports_every_envelope_and_goes_on(one_gear_catalog: CatalogWorld, tmp_path: Path) -> None:
    signer = LocalKeySigner.from_pem(generate_private_key("ed25519"), "k")
    one_gear_catalog.repo.write(f".exchange/keys/{signer.public_key.key_id}.pub", signer.public_key.pem.decode())
    (manifest,) = (one_gear_catalog.repo.root / "manifests").rglob("*.json")
    document = json.loads(manifest.read_text())
    name = Path(document["exchange"]["rootfs-url"]).name + ".intoto.jsonl"
    envelope = tmp_path / "deep"
    envelope.write_text("[" * 100_000)
    one_gear_catalog.bucket.upload(name, envelope, size=envelope.stat().st_size,
                        sha384=hashlib.sha384(envelope.read_bytes()).hexdigest())
    document["exchange"]["attestation-url"] = one_gear_catalog.bucket.download_url(name)
    document["exchange"]["attestation-sha256"] = hashlib.sha256(envelope.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(document))
    one_gear_catalog.repo.commit("signed, badly")
    result, _ = timed_cli("verify-storage", "--bucket", one_gear_catalog.bucket.uri, "--deep", "--format", "json",
                          "--repo", str(one_gear_catalog.repo.root))
    one_error(result)
    report = json.loads(result.stdout)
    assert report["envelopes-checked"] == 1 or report.get("envelopes"), report
    assert "nested more than 100 levels deep" in result.stdout


@pytest.mark.parametrize("field, value", [
    ("internalParameters", "x"), ("version", "abc"), ("metadata", 5), ("resolvedDependencies", "x")])
def test_a_trusted_statement_with_fields_of_the_wrong_type_is_one_failed_check(field: str, value: object) -> None:
    from exchange_cli.provenance.statement import StatementError, build_statement, read_statement, statement_bytes
    from tests.infra.publication import facts

    statement = build_statement(facts())
    holders = {"internalParameters": statement["predicate"]["buildDefinition"],
               "resolvedDependencies": statement["predicate"]["buildDefinition"],
               "version": statement["predicate"]["runDetails"]["builder"],
               "metadata": statement["predicate"]["runDetails"]}
    holders[field][field] = value
    with pytest.raises(StatementError, match=field):
        read_statement(statement_bytes(statement))


@pytest.mark.parametrize("text, where, says", [
    ("images:\n  allow-latest: " + "9" * 5000 + "\n", ":2:17", "5,000 characters"),
    ("a: " + "[" * 1000 + "]" * 1000 + "\n", ":1:", "nested more than"),
    ("images:\n  allow-latest: tr\0ue\n", ":2:19", "special characters"),
    (("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b]\n"
      "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"), ":1:4", "anchors and aliases"),
])
def test_a_hostile_policy_file_is_one_line_at_its_line_and_column(exchange_repo: ExchangeRepo, text: str, where: str,
                                                                  says: str) -> None:
    (exchange_repo.root / ".exchange.yaml").write_text(text)
    result, took = timed_cli("validate", "--all", "--repo", str(exchange_repo.root))
    assert result.returncode == 2 and took < 30, result.stderr
    one_error(result)
    line = result.stderr.strip()
    assert line.startswith(f"error: .exchange.yaml{where}") and says in line, line


@pytest.mark.parametrize("what", ["/dev/zero", "big", "fifo"])
def test_key_files_that_are_huge_or_not_files_are_refused_unread(tmp_path: Path, what: str) -> None:
    manifest = manifest_with(tmp_path)
    path = Path(what) if what.startswith("/") else tmp_path / what
    init_repo(tmp_path / "exchange")
    if what == "big":
        with path.open("wb") as handle:
            handle.truncate(300 * 1024 * 1024)
    elif what == "fifo":
        os.mkfifo(path)
    exchange = ExchangeRepo(tmp_path / "exchange")
    for args in (["verify", str(manifest), "--key", str(path)],
                 ["keys", "init", "--sign-key", str(path), "--repo", str(exchange.root)]):
        result, took = timed_cli(*args)
        one_error(result)
        assert result.returncode == 2 and took < 30, result.stderr
        assert "is not a regular file" in result.stderr or "over the limit" in result.stderr, result.stderr


def test_a_cloud_kms_key_without_google_credentials_is_one_line(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    reference = "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
    env = {"NO_GCE_CHECK": "True", "GOOGLE_APPLICATION_CREDENTIALS": "", "GCLOUD_SERVICE_ACCOUNT": "",
           "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    result, _ = timed_cli("keys", "init", "--sign-key", reference, "--repo", str(exchange_repo.root), env=env)
    one_error(result)
    assert result.returncode == 2, result.stderr
    assert "no Google credentials to sign with Cloud KMS" in result.stderr and "GCLOUD_SERVICE_ACCOUNT" in result.stderr


@pytest.mark.parametrize("expires", ["NaN", "Infinity", "-Infinity", "1e400", "99999999999999999"])
def test_a_lease_record_with_an_impossible_time_is_an_unreadable_record(one_gear_catalog: CatalogWorld, tmp_path: Path,
                                                                        expires: str) -> None:
    one_gear_catalog.own_bucket(tmp_path / "remote.git")
    record = ('{"token": "t", "owner": {"host": "h", "boot_id": "b", "pid_namespace": "n", "pid": 1, '
              f'"started": ""}}, "purpose": "p", "expires": {expires}}}')
    (Path(one_gear_catalog.bucket.root) / LEASE_OBJECT).write_text(record)  # type: ignore[attr-defined]
    result, _ = timed_cli("verify-storage", "--bucket", one_gear_catalog.bucket.uri, "--delete-orphans", "-y", "--repo",
                          str(one_gear_catalog.repo.root))
    one_error(result)
    assert result.returncode == 0, result.stderr
    assert "breaking the lease" in result.stderr and "it cannot be read" in result.stderr, result.stderr


def test_a_manifest_holding_a_lone_surrogate_is_named_and_the_catalog_still_written(one_gear_catalog: CatalogWorld,
                                                                                    tmp_path: Path) -> None:
    one_gear_catalog.repo.write("manifests/acme/acme-odd-sha384-0.json", '{"gear": {"name": "odd\\ud800", "version": "1"}, '
                                                              '"exchange": {}}')
    one_gear_catalog.repo.commit("odd")
    out = tmp_path / "exchange.json"
    result, _ = timed_cli("index", "-o", str(out), "--repo", str(one_gear_catalog.repo.root))
    one_error(result)
    assert result.returncode == 0, result.stderr
    assert "not listed: manifests/acme/acme-odd-sha384-0.json" in result.stderr and "surrogate" in result.stderr
    assert json.loads(out.read_text())["entries"]


def test_a_clone_from_a_server_that_stalls_ends_at_its_deadline_with_its_helpers(exchange_repo: ExchangeRepo) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/gear.git"
    try:
        result, took = timed_cli("add-gear", url, "--org", "acme", "--repo", str(exchange_repo.root),
                                 env={"EXCHANGE_CLONE_TIMEOUT_SECONDS": "3"})
    finally:
        listener.close()
    one_error(result)
    assert result.returncode == 2 and took < 30, result.stderr
    assert "took longer than 3 s" in result.stderr
    left = subprocess.run(["pgrep", "-f", url], capture_output=True, text=True, check=False).stdout.split()
    assert left == [], f"git processes left running: {left}"


@pytest.mark.parametrize("lie", ["header", "body"])
def test_verify_image_fails_when_the_registry_serves_another_digest(tmp_path: Path, key: Path, lie: str) -> None:
    """`verify --image` passed on any 200 for the attested digest reference: a registry (or a proxy) answering
    with another manifest went unnoticed."""
    registry = LyingRegistry()
    try:
        real = b'{"schemaVersion": 2, "the": "manifest that was built"}'
        attested = "sha256:" + hashlib.sha256(real).hexdigest()
        other = b'{"schemaVersion": 2, "the": "manifest served today"}'
        served = real if lie == "header" else other
        header = ("sha256:" + hashlib.sha256(other).hexdigest()) if lie == "header" else attested
        registry.replies[f"/v2/acme/hello/manifests/{attested}"] = Reply(
            body=served, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                  "Docker-Content-Digest": header})
        image = ImageRef(f"{registry.host}/acme/hello:1.0.0", f"{registry.host}/acme/hello@{attested}", attested,
                         "sha256:" + "e" * 64, "linux/amd64")
        signer = LocalKeySigner.from_pem(generate_private_key("ed25519"), "k")
        made = publish(tmp_path / "pub", signer, image=image)
        key.write_bytes(signer.public_key.pem)
        result, _ = timed_cli("verify", str(made.manifest), "--key", str(key), "--image", "--insecure-registry",
                              registry.host, "--format", "json")
    finally:
        registry.stop()
    one_error(result)
    assert result.returncode == 1, result.stdout
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "image", failure
    assert ("Docker-Content-Digest" if lie == "header" else "sends a manifest whose digest is") in failure["reason"]


def test_process_publishing_the_index_beside_a_lone_surrogate_prints_its_json(tmp_path: Path) -> None:
    """A manifest holding "\\ud800" made `process --publish-index --format json` print no JSON at all."""
    world = make_world(tmp_path, ("hello",))
    (world.work / "manifests" / "acme").mkdir(parents=True, exist_ok=True)
    (world.work / "manifests" / "acme" / "acme-odd-sha384-0.json").write_text(
        '{"gear": {"name": "odd\\ud800", "version": "1"}, "exchange": {}}')
    run_git = ExchangeRepo(world.work).git
    run_git("add", "-A")
    run_git("commit", "-q", "-m", "odd")
    run_git("push", "-q", "origin", "master")
    result = CliRunner().invoke(cli, [*world.process_args(), "--publish-index", "gh-pages-json", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["catalog"]["published"], report

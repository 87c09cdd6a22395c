"""Failures of the environment, each one clear line on stderr with exit 2 and never a traceback: outputs
that cannot be written, a full bucket disk, a GCS server that dies mid-run, an unreachable token
endpoint, a git URL that cannot be cloned, a download URL carrying a secret. Secrets stay out of
everything the run writes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.storage.bucket import StorageUnavailable, open_bucket
from tests.catalog_world import CatalogWorld
from tests.infra.commands import closed_port, exchange, one_error_line
from tests.infra.failure_world import assert_untouched, process_args, text_of_every_file
from tests.infra.gcs import GcsEmulator
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo
from tests.infra.http_thread import ServerThread
from tests.infra.tmpfs import Mount, fill

SECRET = "pa55-w0rd-that-must-not-leak"


# The download URL --------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["option", "environment"])
@pytest.mark.parametrize("url", [f"https://ci-bot:{SECRET}@downloads.example.org/rootfs",
                                 f"https://{SECRET}@downloads.example.org/rootfs",
                                 f"https://downloads.example.org/rootfs?X-Goog-Signature={SECRET}"])
def test_a_download_url_with_a_secret_is_refused_before_any_work(exchange_repo: ExchangeRepo, failure_world, tmp_path: Path,
                                                                 how: str, url: str) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    head = exchange_repo.git("rev-parse", "HEAD")
    args = process_args(failure_world, bucket.as_uri(), *(["--download-url", url] if how == "option" else []))
    result = CliRunner().invoke(cli, args, env={"EXCHANGE_DOWNLOAD_URL": url} if how == "environment" else {})
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("error: download URL (--download-url or EXCHANGE_DOWNLOAD_URL) ")
    assert "credentials" in line or "query or fragment" in line
    assert SECRET not in result.output
    assert SECRET not in text_of_every_file(failure_world["reports"], bucket, exchange_repo.root)
    assert list(bucket.iterdir()) == []
    assert_untouched(exchange_repo, head)


@pytest.mark.parametrize("uri", [f"gs://ci-bot:{SECRET}@bucket/rootfs", f"file://ci-bot:{SECRET}@/srv/bucket"])
def test_a_bucket_uri_with_a_secret_is_refused_without_echoing_it(exchange_repo: ExchangeRepo, failure_world, uri: str) -> None:
    result = CliRunner().invoke(cli, process_args(failure_world, uri))
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"error: bucket URI {uri.split(':')[0]}://***@")
    assert SECRET not in result.output


# Outputs that cannot be written ------------------------------------------------------------------

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
def test_an_output_that_cannot_be_written_is_one_line(catalog_world: CatalogWorld, tmp_path: Path, tmpfs: Mount,
                                                      command: str, place: str) -> None:
    args, what, below = OUTPUTS[command]
    if place == "below-a-file":
        (tmp_path / "a-file").write_text("not a directory\n")
        target = tmp_path / "a-file" / below
    elif place == "read-only":
        target = tmpfs("read-only", read_only=True) / below
    else:
        target = tmp_path / "no-such-directory" / below
    result = CliRunner().invoke(cli, [*args, str(target), "--repo", str(catalog_world.repo.root)])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result)
    reason = {"below-a-file": ("Not a directory", "is a file, not a directory"), "read-only": ("Read-only file system",),
              "missing-parent": ("No such file or directory",)}[place]
    assert line.startswith(f"error: cannot write {what} to {target}"), line  # fetch: the file in it
    assert line.endswith(reason), line


# The outputs that a later run writes again, over the last one: (arguments before the path, what the error
# line calls it, the file's name).
REWRITTEN = {
    "index -o": (["index", "-o"], "the catalog", "exchange.json"),
    "index --html": (["index", "-o", "-", "--html"], "the catalog site", "index.html"),
    "inventory --csv": (["inventory", "--csv"], "the inventory", "gears.csv"),
    "validate --junit-xml": (["validate", "--all", "--junit-xml"], "the JUnit report", "validate.xml"),
}


@pytest.mark.parametrize("command", sorted(REWRITTEN))
def test_an_output_that_no_longer_fits_leaves_the_last_one_whole(catalog_world: CatalogWorld, tmpfs: Mount,
                                                                 command: str) -> None:
    """A catalog served while `index -o` rewrote it on a full disk was left truncated (write_text opens with
    O_TRUNC); now each output is written beside its name and renamed over it, or not at all."""
    args, what, name = REWRITTEN[command]
    out = tmpfs("full")
    last = b"the last run's output\n" * 8
    given = out if command == "index --html" else out / name
    (out / name).write_bytes(last)
    fill(out)
    result = CliRunner().invoke(cli, [*args, str(given), "--repo", str(catalog_world.repo.root)])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result)
    assert what in line and line.endswith("No space left on device"), line
    assert (out / name).read_bytes() == last
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(["filler", name]), "no temporary file"


def test_fetch_onto_a_full_disk_names_the_file_and_keeps_nothing(catalog_world: CatalogWorld, tmpfs: Mount) -> None:
    out = tmpfs("full")
    fill(out)
    published = catalog_world.find("acme", "hello", "1.0.0-rc.1")
    result = CliRunner().invoke(cli, ["fetch", "acme/hello", "--output-dir", str(out), "--repo", str(catalog_world.repo.root)])
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
def test_a_full_local_bucket_names_the_path_and_leaves_nothing(exchange_repo: ExchangeRepo, failure_world, tmpfs: Mount,
                                                               room: str) -> None:
    bucket = tmpfs("bucket", size="64k")
    fill(bucket)
    if room == "for-the-lease-only":  # the run's lease fits in one page; then the first artifact does not
        filler = bucket / "filler"
        os.truncate(filler, filler.stat().st_size - PAGE)
    head = exchange_repo.git("rev-parse", "HEAD")
    result = CliRunner().invoke(cli, process_args(failure_world, bucket.as_uri()))
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

def test_gcs_server_dying_mid_run_is_one_line_and_the_run_is_undone(exchange_repo: ExchangeRepo, failure_world,
                                                                     private_gcs_emulator: GcsEmulator) -> None:
    emulator = private_gcs_emulator
    emulator.create_bucket("dies-mid-run")
    head = exchange_repo.git("rev-parse", "HEAD")
    env = {**os.environ, "STORAGE_EMULATOR_HOST": emulator.host, "EXCHANGE_GCS_RETRY_SECONDS": "3"}
    env.pop("GCLOUD_SERVICE_ACCOUNT", None)
    # Not quiet: the log line "uploaded …" tells when to stop the server.
    seen: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "exchange_cli", *process_args(failure_world, "gs://dies-mid-run", quiet=False)],
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


def test_gcs_listing_against_a_dead_server(catalog_world: CatalogWorld, private_gcs_emulator: GcsEmulator) -> None:
    private_gcs_emulator.create_bucket("gone")
    private_gcs_emulator.stop()
    result = exchange("verify-storage", "--bucket", "gs://gone", "--repo", str(catalog_world.repo.root),
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


def test_an_unreachable_token_endpoint_is_one_line_without_the_key(catalog_world: CatalogWorld,
                                                                   unreachable_service_account) -> None:
    encoded, pem, port = unreachable_service_account
    # Anything that tried Google itself would meet a closed local proxy instead of the internet.
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {"GCLOUD_SERVICE_ACCOUNT": encoded, "EXCHANGE_GCS_RETRY_SECONDS": "2", "HTTPS_PROXY": proxy,
           "HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1", "STORAGE_EMULATOR_HOST": ""}
    result = exchange("verify-storage", "--bucket", "gs://exchange-test-bucket", "--repo", str(catalog_world.repo.root),
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


# add-gear never waits for an answer ----------------------------------------------------------------
# Run as a contributor runs it: in a terminal (a pty that is the command's controlling terminal), where
# ssh and git would otherwise stop and ask. Each must end promptly with git's reason.

PROMPT_DEADLINE = 30  # seconds; a prompt waits for ever


def run_in_terminal(args: list[str], env: dict[str, str], deadline: float = PROMPT_DEADLINE) -> tuple[int | None, str]:
    """`exchange ARGS` with a pty as its controlling terminal: (exit code, or None when it was still
    running at the deadline and was killed; everything it wrote on the terminal)."""
    import fcntl
    import select
    import signal
    import termios
    import time

    controller, terminal = os.openpty()

    def take_the_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    run = subprocess.Popen([sys.executable, "-m", "exchange_cli", *args], stdin=terminal, stdout=terminal,
                           stderr=terminal, env=env, start_new_session=True,
                           preexec_fn=take_the_terminal)  # noqa: PLW1509 - no Popen option sets a controlling terminal
    os.close(terminal)
    output, until = b"", time.monotonic() + deadline
    try:
        while time.monotonic() < until:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    chunk = b""
                if not chunk:
                    break
                output += chunk
            elif run.poll() is not None:
                break
        code = run.wait(timeout=max(0.1, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        code = None
    finally:
        os.close(controller)
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def terminal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_ASKPASS", "SSH_ASKPASS", "DISPLAY")}
    return {**env, "HOME": str(tmp_path / "home"), **extra}


def add_gear_args(url: str, repo: ExchangeRepo) -> list[str]:
    return ["add-gear", url, "--org", "acme", "--repo", str(repo.root)]


def redacted(url: str) -> str:
    """How messages show a URL: its user part hidden, whatever it is."""
    return url.replace("git@", "***@")


def the_error(output: str) -> str:
    assert "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("error: ")]
    return line


def test_add_gear_from_an_unknown_ssh_host_fails_at_once(exchange_repo: ExchangeRepo, sshd, tmp_path: Path) -> None:
    url = f"ssh://git@127.0.0.1:{sshd.port}/acme/gear.git"
    code, output = run_in_terminal(add_gear_args(url, exchange_repo), terminal_env(tmp_path))
    assert code == 2, f"still waiting after {PROMPT_DEADLINE}s (a prompt?):\n{output}"
    assert "continue connecting" not in output
    assert the_error(output) == (f"error: cannot clone {redacted(url)}: Host key verification failed.; "
                                 "fatal: Could not read from remote repository.")
    assert exchange_repo.git("status", "--porcelain") == ""


def test_process_against_an_unknown_ssh_host_fails_at_once(exchange_repo: ExchangeRepo, sshd, tmp_path: Path) -> None:
    # A maintainer running `process` by hand against an ssh remote: every fetch and push of the run has
    # add-gear's settings, so an unknown host key ends the run instead of a prompt in the middle of it.
    url = f"ssh://git@127.0.0.1:{sshd.port}/acme/exchange.git"
    (tmp_path / "bucket").mkdir()
    args = ["process", "--repo", str(exchange_repo.root), "--remote", url, "--bucket", (tmp_path / "bucket").as_uri(),
            "--dry-run"]
    code, output = run_in_terminal(args, terminal_env(tmp_path))
    assert code == 2, f"still waiting after {PROMPT_DEADLINE}s (a prompt?):\n{output}"
    assert "continue connecting" not in output
    assert the_error(output).startswith(f"error: cannot reach {redacted(url)}: "), output


def test_add_gear_with_the_users_ssh_command_still_never_asks_for_a_password(exchange_repo: ExchangeRepo, sshd,
                                                                             tmp_path: Path) -> None:
    # The user's own ssh command is kept (it accepts the host key), and it would ask for a password on the
    # terminal: git runs without one, so ssh cannot ask.
    ssh = ("ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
           "-o PubkeyAuthentication=no -o PreferredAuthentications=password")
    url = f"ssh://git@127.0.0.1:{sshd.port}/acme/gear.git"
    code, output = run_in_terminal(add_gear_args(url, exchange_repo), terminal_env(tmp_path, GIT_SSH_COMMAND=ssh))
    assert code == 2, f"still waiting after {PROMPT_DEADLINE}s (a prompt?):\n{output}"
    assert "password:" not in output
    line = the_error(output)
    assert line.startswith(f"error: cannot clone {redacted(url)}: ") and "Permission denied" in line, line


def test_add_gear_from_a_closed_ssh_port_fails_at_once(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    port = closed_port()
    url = f"ssh://git@127.0.0.1:{port}/acme/gear.git"
    code, output = run_in_terminal(add_gear_args(url, exchange_repo), terminal_env(tmp_path))
    assert code == 2, output
    assert the_error(output) == (f"error: cannot clone {redacted(url)}: ssh: connect to host 127.0.0.1 port {port}: "
                                 "Connection refused; fatal: Could not read from remote repository.")


class PrivateGitServer:
    """An HTTP server on 127.0.0.1 that asks for Basic credentials (401) and keeps the Authorization headers
    it was sent. Given `repository` (a bare repository) and the one accepted `password`, it serves that
    repository over git's dumb HTTP protocol to a client that sends them."""

    def __init__(self, repository: Path | None = None, password: str | None = None) -> None:
        import base64 as b64
        from http.server import SimpleHTTPRequestHandler

        seen = self.authorizations = []
        accepted = f"Basic {b64.b64encode(f'ci-bot:{password}'.encode()).decode()}" if password else None

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(repository or "/nonexistent"), **kwargs)

            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                if accepted is not None and self.headers.get("Authorization") == accepted:
                    self.path = self.path.split("/", 3)[-1]  # /acme/gear.git/<file> -> <file>
                    return super().do_GET()
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private gears"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ServerThread(Handler, name="private-git-server")
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def unauthorized() -> Iterator[PrivateGitServer]:
    server = PrivateGitServer()
    yield server
    server.stop()


def test_add_gear_from_a_url_that_wants_credentials_never_asks(exchange_repo: ExchangeRepo, tmp_path: Path,
                                                               unauthorized: PrivateGitServer) -> None:
    # A desktop session's askpass program (SSH_ASKPASS) opens a window and waits; this one just waits.
    asked = tmp_path / "asked"
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\ntouch {asked}\nsleep 120\n")
    askpass.chmod(0o755)
    url = f"{unauthorized.url}/acme/gear.git"
    code, output = run_in_terminal(add_gear_args(url, exchange_repo),
                                   terminal_env(tmp_path, SSH_ASKPASS=str(askpass), DISPLAY=":0"))
    assert code == 2, f"still waiting after {PROMPT_DEADLINE}s (a prompt?):\n{output}"
    assert not asked.exists()
    assert the_error(output) == (f"error: cannot clone {url}: fatal: could not read Username for "
                                 f"'{unauthorized.url}': terminal prompts disabled")


def test_add_gear_with_refused_credentials_never_echoes_them(exchange_repo: ExchangeRepo, tmp_path: Path,
                                                             unauthorized: PrivateGitServer) -> None:
    host = unauthorized.url.removeprefix("http://")
    code, output = run_in_terminal(add_gear_args(f"http://ci-bot:{SECRET}@{host}/acme/gear.git", exchange_repo),
                                   terminal_env(tmp_path))
    assert code == 2, output
    assert any(header and header.startswith("Basic ") for header in unauthorized.authorizations)  # they were sent
    assert SECRET not in output
    line = the_error(output)
    assert line.startswith(f"error: cannot clone http://***@{host}/acme/gear.git: fatal: Authentication failed"), line


def test_add_gear_keeps_the_askpass_program_the_user_set(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    """How CI hands git a token (GIT_ASKPASS): kept, so a private repository still clones."""
    work = init_repo(tmp_path / "upstream")
    (work / "manifest.json").write_text(json.dumps(example_gear(), indent=2))
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "v1"], cwd=work, check=True)
    bare = tmp_path / "gear.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)  # what the dumb protocol reads
    askpass = tmp_path / "askpass"
    askpass.write_text(f'#!/bin/sh\ncase "$1" in Username*) echo ci-bot ;; *) echo {SECRET} ;; esac\n')
    askpass.chmod(0o755)
    server = PrivateGitServer(bare, password=SECRET)
    try:
        code, output = run_in_terminal(add_gear_args(f"{server.url}/acme/gear.git", exchange_repo),
                                       terminal_env(tmp_path, GIT_ASKPASS=str(askpass)))
    finally:
        server.stop()
    assert code == 0, output
    assert SECRET not in output
    assert json.loads((exchange_repo.root / "gears/acme/hello-world.json").read_text())["name"] == "hello-world"

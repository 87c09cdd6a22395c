"""Registry credentials never travel in clear, never reach a host they are not for, and never show;
no server the registry client talks to can make it wait past a deadline.

Real HTTPS servers on 127.0.0.1 and on 127.0.0.2 (another host, as far as any client can tell),
signed by a test CA the client trusts through REQUESTS_CA_BUNDLE, and plain HTTP servers beside
them, play registries, CDNs and token servers that redirect, downgrade, challenge, trickle and echo
what they were sent. Every server records each request with its headers and body, so each test
checks what arrived where, not only what the client said. The rules under test are in
exchange_cli/web/transport.py; /work/notes/img2.md lists how each case fared on the old code.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.credentials import host_env_var
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM
from exchange_cli.image.registry import fetch_registry_image, manifest_exists
from exchange_cli.process.delivery.push_client import PushClient, SizedStream
from exchange_cli.reference import parse_reference
from exchange_cli.web.deadlines import TransferLimits
from exchange_cli.web.retries import RETRY_SECONDS_ENV, RetryPolicy
from tests.infra.image_files import entry, sha256, tar_of
from tests.infra.lying_registry import OCI_MANIFEST, LyingRegistry, Reply, digest_of, outcome_within
from tests.infra.tls import TestCA
from tests.layers import compress

USERNAME = "puller"
PASSWORD = "pw-" + secrets.token_urlsafe(18)
TOKEN = "tk-" + secrets.token_urlsafe(24)
IDENTITY_TOKEN = "rt-" + secrets.token_urlsafe(24)
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {TOKEN}"
SECRETS = (PASSWORD, TOKEN, IDENTITY_TOKEN, BASIC.split()[1])

REPOSITORY = "private/app"
QUICK_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
PATIENT = TransferLimits(connect_timeout=5, read_timeout=10, min_rate=1024**2, floor=10)


@pytest.fixture
def start(test_ca: TestCA) -> Iterator[Callable[..., LyingRegistry]]:
    """Starts a server (HTTPS unless tls=False, on `bind`); all are stopped after the test."""
    started: list[LyingRegistry] = []

    def start_server(*, tls: bool = True, bind: str = "127.0.0.1") -> LyingRegistry:
        server = LyingRegistry(tls=test_ca.server_context() if tls else None, bind=bind)
        started.append(server)
        return server

    yield start_server
    for server in started:
        server.stop()


@pytest.fixture
def client_env(test_ca: TestCA, tmp_path: Path) -> dict[str, str]:
    """What the client runs with: the test CA trusted, no Docker config of the machine's."""
    return {"REQUESTS_CA_BUNDLE": str(test_ca.bundle), "DOCKER_CONFIG": str(tmp_path / "docker-config")}


@pytest.fixture
def lying_auth_registry(start, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LyingRegistry:
    """An HTTPS registry on 127.0.0.1 serving one image, and the client holding USERNAME:PASSWORD for it."""
    server = start()
    serve_image(server)
    client_env[host_env_var(server.host)] = f"{USERNAME}:{PASSWORD}"
    for name, value in client_env.items():
        monkeypatch.setenv(name, value)
    return server


def serve_image(server: LyingRegistry) -> None:
    tar = tar_of(entry("etc/data", os.urandom(512)))
    server.image(REPOSITORY, "v1", config={"architecture": "amd64", "os": "linux",
                                           "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]}},
                 layers=[compress(tar, "gzip")])


def layer_path(server: LyingRegistry) -> str:
    manifest = json.loads(server.replies[f"/v2/{REPOSITORY}/manifests/v1"].body)
    return f"/v2/{REPOSITORY}/blobs/{manifest['layers'][0]['digest']}"


def move_layer(registry: LyingRegistry, to: LyingRegistry, query: str = "") -> str:
    """The registry answers its layer with a redirect to `to`, which serves the same bytes; the path there."""
    path = layer_path(registry)
    to.replies[path] = Reply(body=registry.replies[path].body)
    registry.replies[path] = Reply(status=307, headers={"Location": f"{to.url}{path}{query}"})
    return path


def basic_auth(registry: LyingRegistry) -> None:
    registry.require_authorization('Basic realm="registry"', BASIC)


def token_auth(registry: LyingRegistry, realm_server: LyingRegistry, *, accept: str = BEARER) -> str:
    """The registry wants a bearer token from `realm_server`, which gives TOKEN to anyone; the realm."""
    realm = f"{realm_server.url}/token"
    realm_server.replies["/token"] = Reply(body=json.dumps({"token": TOKEN}).encode(),
                                           headers={"Content-Type": "application/json"})
    registry.require_authorization(f'Bearer realm="{realm}",service="registry"', accept)
    return realm


def use_identity_token(registry: LyingRegistry, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The client holds a refresh token for the registry (docker login to an OAuth registry) instead."""
    monkeypatch.delenv(host_env_var(registry.host))
    del client_env[host_env_var(registry.host)]
    config = Path(client_env["DOCKER_CONFIG"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"identitytoken": IDENTITY_TOKEN}}}))


def pull(registry: LyingRegistry, cache: BlobCache, *, insecure: tuple[str, ...] = (),
         limits: TransferLimits = PATIENT):
    return fetch_registry_image(parse_reference(f"{registry.host}/{REPOSITORY}:v1"), DEFAULT_PLATFORM, cache,
                                insecure_registries=insecure, retry=QUICK_RETRY, limits=limits)


def registry_authorizations(registry: LyingRegistry) -> set[str]:
    """The Authorization headers the registry API (/v2/, not a token realm on the same server) received."""
    return {seen.authorization for seen in registry.seen if seen.path.startswith("/v2/") and seen.authorization}


def assert_no_secret_in(received: bytes | str) -> None:
    text = received.decode("utf-8", "replace") if isinstance(received, bytes) else received
    for secret in SECRETS:
        assert secret not in text and quote(secret, safe="") not in text, f"a secret got through: {text[:2000]}"


# --- nothing in clear: no downgrade to plain HTTP ---------------------------------------------


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2"], ids=["same-host-other-port", "other-host"])
def test_a_blob_redirect_from_https_to_plain_http_is_refused(lying_auth_registry, start, blob_cache, bind) -> None:
    basic_auth(lying_auth_registry)
    plain = start(tls=False, bind=bind)
    path = move_layer(lying_auth_registry, plain)

    with pytest.raises(BlobError) as failure:
        pull(lying_auth_registry, blob_cache)

    assert f"refused to send the request to plain HTTP {plain.url}{path}" in failure.value.reason
    assert f"list {plain.host} with --insecure-registry" in failure.value.reason
    assert plain.seen == []


def test_a_manifest_redirect_from_https_to_plain_http_is_refused(lying_auth_registry, start, blob_cache) -> None:
    basic_auth(lying_auth_registry)
    plain = start(tls=False, bind="127.0.0.2")
    manifest = f"/v2/{REPOSITORY}/manifests/v1"
    plain.replies[manifest] = lying_auth_registry.replies[manifest]
    lying_auth_registry.replies[manifest] = Reply(status=302, headers={"Location": f"{plain.url}{manifest}"})

    with pytest.raises(ImageError, match=rf"GET {lying_auth_registry.url}{manifest}: refused to send the request to plain "
                                         rf"HTTP {plain.url}{manifest}"):
        pull(lying_auth_registry, blob_cache)

    assert plain.seen == []


def test_a_redirect_to_a_plain_http_host_listed_as_insecure_is_followed_without_credentials(lying_auth_registry, start,
                                                                                            blob_cache) -> None:
    basic_auth(lying_auth_registry)
    plain = start(tls=False, bind="127.0.0.2")
    path = move_layer(lying_auth_registry, plain)

    image = pull(lying_auth_registry, blob_cache, insecure=(plain.host,))

    assert len(image.layers) == 1 and plain.count(path) == 1
    assert plain.authorizations() == []
    assert_no_secret_in(plain.everything_received())


@pytest.mark.parametrize("credentials", ["password", "anonymous"])
def test_a_plain_http_token_realm_is_refused_for_an_https_registry(lying_auth_registry, start, blob_cache, monkeypatch,
                                                                   credentials) -> None:
    realm_server = start(tls=False, bind="127.0.0.2")
    realm = token_auth(lying_auth_registry, realm_server)
    if credentials == "anonymous":
        monkeypatch.delenv(host_env_var(lying_auth_registry.host))

    with pytest.raises(ImageError) as failure:
        pull(lying_auth_registry, blob_cache)

    assert f"token server {realm}: refused to send the request to plain HTTP {realm}" in str(failure.value)
    assert_no_secret_in(realm_server.everything_received())
    assert realm_server.seen == []


def test_a_plain_http_token_realm_is_used_when_its_host_is_listed_as_insecure(lying_auth_registry, start, blob_cache) -> None:
    realm_server = start(tls=False, bind="127.0.0.2")
    token_auth(lying_auth_registry, realm_server)

    image = pull(lying_auth_registry, blob_cache, insecure=(realm_server.host,))

    assert len(image.layers) == 1
    assert realm_server.authorizations() == [BASIC]


@pytest.mark.parametrize("credentials", ["password", "identity-token"])
def test_a_token_server_redirect_to_plain_http_is_refused(lying_auth_registry, start, blob_cache, client_env, monkeypatch,
                                                          credentials) -> None:
    realm_server, plain = start(bind="127.0.0.2"), start(tls=False, bind="127.0.0.2")
    token_auth(lying_auth_registry, realm_server)
    realm_server.replies["/token"] = Reply(status=307, headers={"Location": f"{plain.url}/token"})
    if credentials == "identity-token":
        use_identity_token(lying_auth_registry, client_env, monkeypatch)

    with pytest.raises(ImageError, match=rf"refused to send the request to plain HTTP {plain.url}/token"):
        pull(lying_auth_registry, blob_cache)

    assert_no_secret_in(plain.everything_received())
    assert plain.seen == []


# --- credentials go only where they belong --------------------------------------------------


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_credentials_stay_with_the_registry_when_a_blob_is_redirected_to_another_host(lying_auth_registry, start, blob_cache,
                                                                                      scheme) -> None:
    cdn = start(bind="127.0.0.2")
    if scheme == "basic":
        basic_auth(lying_auth_registry)
    else:
        token_auth(lying_auth_registry, lying_auth_registry)
    path = move_layer(lying_auth_registry, cdn, query="?X-Signature=from-the-registry")

    image = pull(lying_auth_registry, blob_cache)

    assert len(image.layers) == 1 and cdn.count(path) == 1
    assert cdn.authorizations() == []
    assert registry_authorizations(lying_auth_registry) == {BASIC if scheme == "basic" else BEARER}


def test_a_redirect_within_the_registry_keeps_its_credentials(lying_auth_registry, blob_cache) -> None:
    basic_auth(lying_auth_registry)
    layer = layer_path(lying_auth_registry)
    stored = f"/v2/{REPOSITORY}/storage/{layer.rsplit(':', 1)[1]}"
    lying_auth_registry.replies[stored] = Reply(body=lying_auth_registry.replies[layer].body)
    lying_auth_registry.replies[layer] = Reply(status=302, headers={"Location": stored})

    pull(lying_auth_registry, blob_cache)

    assert [seen.authorization for seen in lying_auth_registry.seen if seen.path == stored] == [BASIC]


def test_a_challenge_from_where_a_redirect_led_is_not_answered_with_our_credentials(lying_auth_registry, start, blob_cache) -> None:
    basic_auth(lying_auth_registry)
    cdn = start(bind="127.0.0.2")
    path = move_layer(lying_auth_registry, cdn)
    cdn.replies[path] = Reply(status=401, headers={"WWW-Authenticate": f'Bearer realm="{cdn.url}/token"'})
    cdn.replies["/token"] = Reply(body=json.dumps({"token": "the-cdn-wants-your-password"}).encode())

    with pytest.raises(ImageError, match=rf"{cdn.url}{path}, where registry {lying_auth_registry.host} redirected us, "
                                         rf"refused access to layer .* \(401 .*credentials for {lying_auth_registry.host} "
                                         "are sent to it alone"):
        pull(lying_auth_registry, blob_cache)

    assert_no_secret_in(cdn.everything_received())
    assert cdn.count("/token") == 0 and cdn.authorizations() == []


def test_a_token_realm_on_another_host_gets_the_password_and_only_what_a_token_needs(lying_auth_registry, start,
                                                                                   blob_cache) -> None:
    """Docker's rule: the registry names its token service, and the credentials go there (over TLS)."""
    realm_server = start(bind="127.0.0.2")
    token_auth(lying_auth_registry, realm_server)

    pull(lying_auth_registry, blob_cache)

    [request] = realm_server.seen
    assert (request.method, request.path, request.body) == ("GET", "/token", b"")
    assert parse_qs(request.query) == {"service": ["registry"], "scope": [f"repository:{REPOSITORY}:pull"]}
    assert request.authorization == BASIC
    assert set(request.headers) <= {"host", "user-agent", "accept", "accept-encoding", "connection", "authorization"}
    assert registry_authorizations(lying_auth_registry) == {BEARER}  # the registry itself never sees the password


@pytest.mark.parametrize("credentials", ["password", "identity-token"])
def test_a_token_request_redirected_to_another_host_leaves_its_credentials_behind(lying_auth_registry, start, blob_cache,
                                                                                  client_env, monkeypatch,
                                                                                  credentials) -> None:
    realm_server, elsewhere = start(bind="127.0.0.2"), start()
    token_auth(lying_auth_registry, elsewhere)  # a token from the other host, if it is asked
    token_auth(lying_auth_registry, realm_server)  # but the registry names this realm, which redirects there
    realm_server.replies["/token"] = Reply(status=307, headers={"Location": f"{elsewhere.url}/token"})
    if credentials == "identity-token":
        use_identity_token(lying_auth_registry, client_env, monkeypatch)
        with pytest.raises(ImageError, match=rf"refused to follow a redirect from {realm_server.url} to "
                                             rf"{elsewhere.url} that would send the request's body"):
            pull(lying_auth_registry, blob_cache)
        assert elsewhere.seen == []
    else:
        pull(lying_auth_registry, blob_cache)  # the GET goes on, without the password
        assert [seen.path for seen in elsewhere.seen] == ["/token"]
    assert realm_server.authorizations() == ([BASIC] if credentials == "password" else [])
    assert_no_secret_in(elsewhere.everything_received())


@pytest.mark.parametrize("tls", [True, False], ids=["https-elsewhere", "plain-http-elsewhere"])
def test_a_push_upload_sent_to_another_host_never_carries_the_registry_credentials(lying_auth_registry, start, tls) -> None:
    """The upload URL is the registry's to choose; the registry's credentials still go to the registry only."""
    basic_auth(lying_auth_registry)
    storage = start(tls=tls, bind="127.0.0.2")
    lying_auth_registry.replies[f"/v2/{REPOSITORY}/blobs/uploads/"] = Reply(status=202, headers={
        "Location": f"{storage.url}/upload/1?_state=opaque"})
    storage.replies["/upload/1"] = Reply(status=201)
    data = b"a blob to push"

    with PushClient.for_reference(parse_reference(f"{lying_auth_registry.host}/{REPOSITORY}:v1")) as push:
        _, location = push.start_upload(REPOSITORY)
        if tls:
            push.finish_upload(REPOSITORY, location, digest_of(data), SizedStream(io.BytesIO(data), len(data)))
        else:
            with pytest.raises(ImageError, match=rf"refused to send the request to plain HTTP {storage.url}/upload/1"):
                push.finish_upload(REPOSITORY, location, digest_of(data), SizedStream(io.BytesIO(data), len(data)))

    assert_no_secret_in(storage.everything_received())
    assert [(seen.method, seen.body) for seen in storage.seen] == ([("PUT", data)] if tls else [])
    assert registry_authorizations(lying_auth_registry) == {BASIC}


# --- a token server cannot hang a run -------------------------------------------------------


def pull_in_thread(registry: LyingRegistry, cache: BlobCache, limits: TransferLimits) -> tuple[object, float]:
    return outcome_within(lambda: pull(registry, cache, limits=limits), give_up_after=20.0)


def test_a_token_server_that_trickles_is_given_up_at_the_token_deadline(lying_auth_registry, start, blob_cache) -> None:
    realm_server = start(bind="127.0.0.2")
    realm = token_auth(lying_auth_registry, realm_server)
    answer = json.dumps({"token": TOKEN, "expires_in": 300, "issued_at": "x" * 2000}).encode()
    realm_server.replies["/token"] = Reply(body=answer, trickle=0.01)  # ~100 bytes/s, each read well in time
    limits = TransferLimits(connect_timeout=5, read_timeout=5, min_rate=1024**2, floor=0.5)  # token: 1.5 s

    outcome, took = pull_in_thread(lying_auth_registry, blob_cache, limits)

    assert isinstance(outcome, ImageError), outcome
    assert f"token server {realm}: not received within 2 s" in str(outcome)
    assert "the token server is too slow or has stalled" in str(outcome)
    assert took < 10 and realm_server.count("/token") == 1


def test_a_token_answer_larger_than_any_token_is_not_read_whole(lying_auth_registry, start, blob_cache) -> None:
    realm_server = start(bind="127.0.0.2")
    realm = token_auth(lying_auth_registry, realm_server)
    realm_server.replies["/token"] = Reply(body=json.dumps({"token": TOKEN, "x": "y" * 2 * 1024**2}).encode())

    with pytest.raises(ImageError, match=rf"token server {realm} answered with more than 1048576 bytes"):
        pull(lying_auth_registry, blob_cache)


# --- no secret in any output, -v included ---------------------------------------------------


def echo_reply(status: int, *echoed: str, **headers: str) -> Reply:
    """An error answer that repeats what the client sent it (`echoed`): in its reason phrase and in its
    registry-style JSON body, raw, percent-encoded and JSON-escaped."""
    said = " ".join(f"{secret} {quote(secret, safe='')}" for secret in echoed)
    body = json.dumps({"errors": [{"code": "DENIED", "message": f"{said} was not accepted"}], "detail": said})
    return Reply(status=status, reason=f"Denied {said}", headers=headers, body=body.encode())


def arrange_401_after_token(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    realm = token_auth(registry, registry)
    registry.accepted_authorizations = set()  # the manifest refuses whatever it is sent, the token too
    registry.replies[f"/v2/{REPOSITORY}/manifests/v1"] = echo_reply(
        401, BEARER, f"{USERNAME}:{PASSWORD}", **{"WWW-Authenticate": f'Bearer realm="{realm}",service="registry"'})


def arrange_token_server_500(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    realm_server = start(bind="127.0.0.2")
    token_auth(registry, realm_server)
    realm_server.replies["/token"] = echo_reply(500, BASIC, PASSWORD)


def arrange_token_server_401(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    realm_server = start(bind="127.0.0.2")
    token_auth(registry, realm_server)
    realm_server.replies["/token"] = echo_reply(401, BASIC, PASSWORD)


def arrange_refresh_token_refused(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    realm_server = start(bind="127.0.0.2")
    token_auth(registry, realm_server)
    realm_server.replies["/token"] = echo_reply(400, f"refresh_token={IDENTITY_TOKEN}")
    use_identity_token()


def arrange_redirect_to_another_scheme(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    token_auth(registry, registry)
    registry.replies[layer_path(registry)] = Reply(status=302, headers={
        "Location": f"ftp://{USERNAME}:{PASSWORD}@127.0.0.1/{PASSWORD}/{TOKEN}?token={TOKEN}"})


def arrange_redirect_to_plain_http(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    token_auth(registry, registry)
    plain = start(tls=False, bind="127.0.0.2")
    move_layer(registry, plain, query=f"?token={TOKEN}&password={PASSWORD}")


def arrange_redirect_loop(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    token_auth(registry, registry)
    path = layer_path(registry)
    registry.replies[path] = Reply(status=302, headers={"Location": f"{path}?token={TOKEN}"})


def arrange_manifest_echoing_the_password(registry: LyingRegistry, start, use_identity_token: Callable[[], None]) -> None:
    basic_auth(registry)
    manifest = json.loads(registry.replies[f"/v2/{REPOSITORY}/manifests/v1"].body)
    manifest["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    manifest["layers"][0]["urls"] = [f"https://127.0.0.1/{PASSWORD}/{BASIC}"]
    registry.manifest(REPOSITORY, "v1", manifest, OCI_MANIFEST)


@pytest.mark.parametrize("arrange", [
    arrange_401_after_token, arrange_token_server_500, arrange_token_server_401, arrange_refresh_token_refused,
    arrange_redirect_to_another_scheme, arrange_redirect_to_plain_http, arrange_redirect_loop,
    arrange_manifest_echoing_the_password,
], ids=lambda arrange: arrange.__name__.removeprefix("arrange_"))
def test_no_secret_reaches_the_output_of_a_failing_export_even_with_debug_logging(lying_auth_registry, start, client_env,
                                                                                 monkeypatch, tmp_path,
                                                                                 arrange) -> None:
    arrange(lying_auth_registry, start, lambda: use_identity_token(lying_auth_registry, client_env, monkeypatch))

    result = subprocess.run(
        [sys.executable, "-m", "exchange_cli", "export", "-v", f"{lying_auth_registry.host}/{REPOSITORY}:v1",
         "-o", str(tmp_path / "rootfs.tgz"), "--source", "registry", "--cache-dir", str(tmp_path / "cache")],
        env={**os.environ, **client_env, RETRY_SECONDS_ENV: "0.1"},  # a 500 is retried: without the long pauses
        capture_output=True, text=True, timeout=120, check=False)

    output = result.stdout + result.stderr
    assert result.returncode in (1, 2), output
    assert "registry: GET" in result.stderr  # -v did log the requests
    assert result.stderr.count("error: ") == 1 and "Traceback" not in output, output
    assert_no_secret_in(output)
    assert not (tmp_path / "rootfs.tgz").exists()


def test_a_token_server_that_trickles_its_headers_is_given_up_at_the_token_deadline(lying_auth_registry, start, blob_cache) -> None:
    realm_server = start(bind="127.0.0.2")
    realm = token_auth(lying_auth_registry, realm_server)
    realm_server.replies["/token"] = Reply(body=json.dumps({"token": TOKEN}).encode(), trickle_headers=0.01,
                                           headers={"X-Padding": "p" * 2000})  # ~100 bytes/s: ~20 s of headers
    limits = TransferLimits(connect_timeout=5, read_timeout=5, min_rate=1024**2, floor=0.5)  # token: 1.5 s

    outcome, took = pull_in_thread(lying_auth_registry, blob_cache, limits)

    assert isinstance(outcome, ImageError), outcome
    assert f"token server {realm}: not received within 2 s" in str(outcome)
    assert took < 10 and realm_server.count("/token") == 1


def test_a_registry_that_trickles_the_headers_of_a_blob_is_given_up_at_the_blob_deadline(lying_auth_registry, start,
                                                                                         blob_cache) -> None:
    path = layer_path(lying_auth_registry)
    lying_auth_registry.replies[path] = Reply(body=lying_auth_registry.replies[path].body, trickle_headers=0.01,
                                   headers={"X-Padding": "p" * 2000})
    limits = TransferLimits(connect_timeout=5, read_timeout=5, min_rate=1024**2, floor=1.0)

    outcome, took = pull_in_thread(lying_auth_registry, blob_cache, limits)

    assert isinstance(outcome, BlobError), outcome
    assert "not received within 1 s" in outcome.reason and "the registry is too slow or has stalled" in outcome.reason
    assert took < 10 and lying_auth_registry.count(path) == 1


def test_a_registry_that_trickles_the_headers_of_a_manifest_check_is_given_up_at_its_deadline(lying_auth_registry) -> None:
    """`validate --check-images` and `verify` only ask whether a manifest exists (HEAD): bounded too."""
    manifest = f"/v2/{REPOSITORY}/manifests/v1"
    lying_auth_registry.replies[manifest] = Reply(trickle_headers=0.01, headers={"X-Padding": "p" * 2000})
    limits = TransferLimits(connect_timeout=5, read_timeout=5, min_rate=1024**2, floor=1.0)

    outcome, took = outcome_within(lambda: manifest_exists(parse_reference(f"{lying_auth_registry.host}/{REPOSITORY}:v1"),
                                                           retry=QUICK_RETRY, limits=limits), give_up_after=20.0)

    assert isinstance(outcome, ImageError), outcome
    assert "checking manifest v1: not received within 1 s" in str(outcome)
    assert took < 10 and lying_auth_registry.count(manifest) == 1

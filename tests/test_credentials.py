"""Registry credentials: where they are found, and Basic and bearer-token auth against real registries."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from exchange_cli.image.blobcache import BlobCache
from exchange_cli.image.credentials import (
    CredentialsError,
    RegistryCredentials,
    host_env_var,
    resolve_credentials,
)
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM
from exchange_cli.image.registry import (
    RetryPolicy,
    fetch_registry_image,
    manifest_exists,
)
from exchange_cli.reference import parse_reference
from tests.infra.registry import FaultInjectingProxy

QUICK_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)
ENV_NAMES = ("EXCHANGE_REGISTRY_USERNAME", "EXCHANGE_REGISTRY_PASSWORD")


@pytest.fixture(autouse=True)
def docker_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Docker config dir of the test's own; no credentials leak in from the machine."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    for name in [*ENV_NAMES, *(n for n in os.environ if n.startswith("EXCHANGE_REGISTRY_AUTH_"))]:
        monkeypatch.delenv(name, raising=False)
    return directory


def write_docker_config(directory: Path, config: dict) -> None:
    (directory / "config.json").write_text(json.dumps(config))


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def install_helper(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, *, server: str, username: str,
                   secret: str) -> Path:
    """A `docker-credential-test` that knows one server and logs each address it is asked about."""
    bin_dir.mkdir(exist_ok=True)
    asked = bin_dir / "asked.log"
    script = bin_dir / "docker-credential-test"
    script.write_text(f"""#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> '{asked}'
if [ "$server" = '{server}' ]; then
  printf '{{"ServerURL": "%s", "Username": "%s", "Secret": "%s"}}' "$server" '{username}' '{secret}'
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return asked


# --- where credentials come from ---------------------------------------------------------------


def test_no_configuration_means_anonymous():
    assert resolve_credentials("registry.example.com") is None


def test_auths_entry_from_docker_config(docker_config_dir):
    write_docker_config(docker_config_dir, {"auths": {
        "https://registry.example.com/v1/": {"auth": basic("alice", "s3cret:with:colons")},
        "other.example.com": {"auth": basic("bob", "nope")},
    }})

    found = resolve_credentials("registry.example.com")

    assert (found.username, found.password) == ("alice", "s3cret:with:colons")
    assert str(docker_config_dir / "config.json") in found.source


def test_docker_hub_credentials_live_under_the_index_address(docker_config_dir):
    write_docker_config(docker_config_dir, {"auths": {"https://index.docker.io/v1/": {"auth": basic("hub", "pw")}}})

    assert resolve_credentials("docker.io").username == "hub"
    assert resolve_credentials("ghcr.io") is None


def test_identity_token_from_docker_config(docker_config_dir):
    write_docker_config(docker_config_dir, {"auths": {"registry.example.com": {
        "auth": basic("alice", ""), "identitytoken": "refresh-me"}}})

    found = resolve_credentials("registry.example.com")

    assert (found.username, found.identity_token) == ("alice", "refresh-me")


def test_creds_store_helper_is_asked_with_the_server_address(docker_config_dir, tmp_path, monkeypatch):
    asked = install_helper(tmp_path / "bin", monkeypatch, server="https://index.docker.io/v1/",
                           username="hub-user", secret="hub-secret")
    write_docker_config(docker_config_dir, {"credsStore": "test", "auths": {"https://index.docker.io/v1/": {}}})

    found = resolve_credentials("docker.io")

    assert (found.username, found.password) == ("hub-user", "hub-secret")
    assert found.source == "Docker credential helper docker-credential-test"
    assert asked.read_text() == "https://index.docker.io/v1/\n"


def test_a_helper_that_does_not_know_the_registry_falls_through_to_auths(docker_config_dir, tmp_path, monkeypatch):
    install_helper(tmp_path / "bin", monkeypatch, server="elsewhere.example.com", username="x", secret="y")
    write_docker_config(docker_config_dir, {"credHelpers": {"registry.example.com": "test"},
                                            "auths": {"registry.example.com": {"auth": basic("inline", "pw")}}})

    assert resolve_credentials("registry.example.com").username == "inline"


def test_a_configured_helper_missing_from_path_is_an_error(docker_config_dir):
    write_docker_config(docker_config_dir, {"credsStore": "exchange-does-not-exist"})

    with pytest.raises(CredentialsError, match="docker-credential-exchange-does-not-exist is configured but not on PATH"):
        resolve_credentials("registry.example.com")


def test_one_credentials_error_for_registry_and_bucket_settings_exit_2(docker_config_dir):
    """A broken credential setting is the environment to fix (exit 2), whichever service it is for: one class."""
    from exchange_cli import errors
    from exchange_cli.storage import settings

    write_docker_config(docker_config_dir, {"auths": {"registry.example.com": {"auth": "not base64!"}}})
    with pytest.raises(errors.CredentialsError) as raised:
        resolve_credentials("registry.example.com")
    assert raised.value.exit_code == 2
    assert CredentialsError is settings.CredentialsError is errors.CredentialsError


def test_malformed_auth_is_an_error_naming_the_entry(docker_config_dir):
    write_docker_config(docker_config_dir, {"auths": {"registry.example.com": {"auth": "not base64!"}}})

    with pytest.raises(CredentialsError, match="the auth of 'registry.example.com' is not base64 of user:password"):
        resolve_credentials("registry.example.com")


def test_per_host_env_beats_docker_config_beats_global_env(docker_config_dir, monkeypatch):
    monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", "global")
    monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", "global-pw")
    assert resolve_credentials("127.0.0.1:5000").username == "global"

    write_docker_config(docker_config_dir, {"auths": {"127.0.0.1:5000": {"auth": basic("docker", "docker-pw")}}})
    assert resolve_credentials("127.0.0.1:5000").username == "docker"

    monkeypatch.setenv("EXCHANGE_REGISTRY_AUTH_127_0_0_1_5000", "host:host:pw")
    found = resolve_credentials("127.0.0.1:5000")
    assert (found.username, found.password) == ("host", "host:pw")
    assert found.source == "environment variable EXCHANGE_REGISTRY_AUTH_127_0_0_1_5000"


def test_host_env_var_names():
    assert host_env_var("ghcr.io") == "EXCHANGE_REGISTRY_AUTH_GHCR_IO"
    assert host_env_var("my-registry.example.com:5000") == "EXCHANGE_REGISTRY_AUTH_MY_REGISTRY_EXAMPLE_COM_5000"


def test_the_secret_never_shows_in_a_repr():
    with_password = RegistryCredentials("alice", "hunter2", source="test")
    with_token = RegistryCredentials("alice", identity_token="tok-hunter3", source="test")

    for shown in (repr(with_password), str(with_password), f"{[with_password]}", repr(with_token)):
        assert "hunter" not in shown
    assert "alice" in repr(with_password)


# --- Basic auth against a real htpasswd registry -----------------------------------------------


@pytest.fixture(scope="module")
def basic_image(auth_registry) -> tuple[str, str]:
    tar = _layer_tar({"basic-auth": b"secret layer"})
    digest = auth_registry.push_image("private/basic", "v1", [gzip.compress(tar, mtime=0)])
    return f"{auth_registry.host}/private/basic:v1", digest


def pull(name: str, host: str, tmp_path: Path, *also_insecure: str):
    return fetch_registry_image(parse_reference(name), DEFAULT_PLATFORM, BlobCache(tmp_path / "cache"),
                                insecure_registries=[host, *also_insecure], retry=QUICK_RETRY)


def test_basic_auth_with_credentials_from_docker_config(auth_registry, basic_image, docker_config_dir, tmp_path):
    write_docker_config(docker_config_dir, {"auths": {
        auth_registry.host: {"auth": basic(auth_registry.username, auth_registry.password)}}})

    assert pull(basic_image[0], auth_registry.host, tmp_path).manifest_digest == basic_image[1]


def test_basic_auth_with_credentials_from_a_creds_store(auth_registry, basic_image, docker_config_dir, tmp_path,
                                                        monkeypatch):
    asked = install_helper(tmp_path / "bin", monkeypatch, server=auth_registry.host,
                           username=auth_registry.username, secret=auth_registry.password)
    write_docker_config(docker_config_dir, {"credsStore": "test"})

    assert pull(basic_image[0], auth_registry.host, tmp_path).manifest_digest == basic_image[1]
    assert asked.read_text() == f"{auth_registry.host}\n"


@pytest.mark.parametrize("style", ["per-host", "global"])
def test_basic_auth_with_credentials_from_the_environment(auth_registry, basic_image, tmp_path, monkeypatch, style):
    if style == "per-host":
        monkeypatch.setenv(host_env_var(auth_registry.host), f"{auth_registry.username}:{auth_registry.password}")
    else:
        monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", auth_registry.username)
        monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", auth_registry.password)

    assert pull(basic_image[0], auth_registry.host, tmp_path).manifest_digest == basic_image[1]
    assert manifest_exists(parse_reference(basic_image[0]), insecure_registries=[auth_registry.host])


def test_a_wrong_password_is_a_clear_401_that_does_not_show_the_password(auth_registry, basic_image, tmp_path,
                                                                         monkeypatch):
    wrong = "wrong-" + auth_registry.password
    proxy = FaultInjectingProxy(auth_registry.url)  # counts the requests
    monkeypatch.setenv(host_env_var(proxy.host), f"{auth_registry.username}:{wrong}")
    try:
        with pytest.raises(ImageError) as failure:
            pull(basic_image[0].replace(auth_registry.host, proxy.host), proxy.host, tmp_path)
    finally:
        proxy.stop()

    message = str(failure.value)
    assert "refused access to manifest v1 (401 Unauthorized" in message
    assert f"the credentials from environment variable {host_env_var(proxy.host)} were not accepted" in message
    assert wrong not in message and auth_registry.password not in message
    assert proxy.count("GET", "/manifests/") == 2  # the anonymous try and the one with credentials; no retries


def test_without_credentials_the_error_says_how_to_provide_them(auth_registry, basic_image, tmp_path):
    with pytest.raises(ImageError, match=rf"no credentials are configured for {auth_registry.host} "
                                         rf"\(docker login, or {host_env_var(auth_registry.host)}=user:password\)"):
        manifest_exists(parse_reference(basic_image[0]), insecure_registries=[auth_registry.host])


# --- bearer tokens against a real token-auth registry ------------------------------------------


@pytest.fixture(scope="module")
def token_image(token_registry) -> tuple[str, str]:
    layers = [gzip.compress(_layer_tar({f"token-{i}": b"t" * i}), mtime=0) for i in range(3)]
    digest = token_registry.push_image("private/token", "v1", layers)
    return f"{token_registry.host}/private/token:v1", digest


@pytest.fixture
def token_server(token_registry):
    server = token_registry.token_server
    server.requests.clear()
    yield server
    server.token_field = "token"


@pytest.mark.parametrize("token_field", ["token", "access_token"])
def test_bearer_token_auth_fetches_one_token_per_scope(token_registry, token_image, token_server, tmp_path,
                                                       monkeypatch, token_field):
    token_server.token_field = token_field
    monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", token_server.username)
    monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", token_server.password)

    image = pull(token_image[0], token_registry.host, tmp_path, token_server.host)

    assert image.manifest_digest == token_image[1] and len(image.layers) == 3
    assert len(token_server.requests) == 1  # manifest, config and three layers share the one token
    request = token_server.requests[0]
    assert request.query == {"service": [token_server.service], "scope": ["repository:private/token:pull"]}
    assert request.authorization == f"Basic {basic(token_server.username, token_server.password)}"


def test_a_plain_http_token_realm_gets_nothing_unless_its_host_is_listed(token_registry, token_image, token_server,
                                                                        tmp_path, monkeypatch):
    """Listing the registry as insecure does not let its password travel in clear to another host."""
    monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", token_server.username)
    monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", token_server.password)

    with pytest.raises(ImageError) as failure:
        pull(token_image[0], token_registry.host, tmp_path)

    assert (f"token server {token_server.realm}: refused to send the request to plain HTTP {token_server.realm}"
            in str(failure.value))
    assert f"list {token_server.host} with --insecure-registry" in str(failure.value)
    assert token_server.requests == []


def test_an_anonymous_token_without_access_is_refused_clearly(token_registry, token_image, token_server, tmp_path):
    with pytest.raises(ImageError, match=r"refused access to manifest v1 \(401 Unauthorized.*no credentials are configured"):
        pull(token_image[0], token_registry.host, tmp_path, token_server.host)

    assert [r.authorization for r in token_server.requests] == [None]


def test_wrong_credentials_are_refused_by_the_token_server(token_registry, token_image, token_server, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", token_server.username)
    monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", "not-" + token_server.password)

    with pytest.raises(ImageError) as failure:
        pull(token_image[0], token_registry.host, tmp_path, token_server.host)

    message = str(failure.value)
    assert f"token server {token_server.realm} refused a token for repository:private/token:pull (401" in message
    assert token_server.password not in message
    assert len(token_server.requests) == 1


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()



"""Where registry credentials come from, in order of precedence (the first source that has some wins):

1. ``EXCHANGE_REGISTRY_AUTH_<HOST>=user:password``, for one registry. ``<HOST>`` is the registry as
   written in the image reference, upper-cased, every character other than a letter or digit
   replaced by ``_``: ``ghcr.io`` -> ``EXCHANGE_REGISTRY_AUTH_GHCR_IO``, ``127.0.0.1:5000`` ->
   ``EXCHANGE_REGISTRY_AUTH_127_0_0_1_5000``, Docker Hub -> ``EXCHANGE_REGISTRY_AUTH_DOCKER_IO``.
2. Docker's client configuration, ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``):
   a ``credHelpers`` entry for the registry, else the ``credsStore`` helper, else the ``auths``
   entry (``auth`` = base64 ``user:password``, or ``identitytoken``). A helper is run as
   ``docker-credential-<name> get`` with the server address on stdin, exactly as ``docker login``
   stored it; a helper that does not know the registry falls through to ``auths``.
   Docker Hub's server address is ``https://index.docker.io/v1/``.
3. ``EXCHANGE_REGISTRY_USERNAME`` and ``EXCHANGE_REGISTRY_PASSWORD``, for any registry.

No credentials at all means anonymous access, which is what public images need.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..confined import NotConfined, read_small_file
from ..errors import CredentialsError
from ..jsonpos import NotStrictJson, strict_data
from ..reference import DOCKER_HUB

DOCKER_HUB_SERVER_ADDRESS = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = {DOCKER_HUB, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
# What a helper says (on stdout, with a non-zero exit) when it has nothing for a server.
_HELPER_NOT_FOUND = "credentials not found in native keychain"
_IDENTITY_TOKEN_USERNAME = "<token>"
HELPER_TIMEOUT_SECONDS = 60
MAX_DOCKER_CONFIG_BYTES = 4 * 1024**2  # a few logins; read no further


@dataclass(frozen=True)
class RegistryCredentials:
    """A username with a password or an identity (refresh) token; `source` says where they came from.

    The secret never appears in the repr, so credentials can be logged and put in messages safely.
    """

    username: str
    password: str = ""
    identity_token: str | None = None
    source: str = ""

    def __repr__(self) -> str:
        secret = "identity_token=***" if self.identity_token else "password=***"
        return f"RegistryCredentials(username={self.username!r}, {secret}, source={self.source!r})"

    __str__ = __repr__


def resolve_credentials(registry: str, *, environ: Mapping[str, str] | None = None,
                        shared: bool = True) -> RegistryCredentials | None:
    """Credentials for `registry` (a reference's registry part, such as ``docker.io`` or ``host:port``).
    `shared=False` leaves out source 3, the pair meant for any registry: a caller asking a registry that
    a contributor chose (validate's image check) sends only credentials bound to that registry."""
    environ = os.environ if environ is None else environ
    return (
        _from_host_env(registry, environ)
        or _from_docker_config(registry, environ)
        or (_from_global_env(environ) if shared else None)
    )


def host_env_var(registry: str) -> str:
    return "EXCHANGE_REGISTRY_AUTH_" + re.sub(r"[^A-Z0-9]", "_", registry.upper())


def docker_config_path(environ: Mapping[str, str]) -> Path:
    directory = environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


def server_address(registry: str) -> str:
    """The key ``docker login`` stores a registry's credentials under."""
    return DOCKER_HUB_SERVER_ADDRESS if registry in _DOCKER_HUB_ALIASES else registry


def _from_host_env(registry: str, environ: Mapping[str, str]) -> RegistryCredentials | None:
    name = host_env_var(registry)
    value = environ.get(name)
    if not value:
        return None
    username, sep, password = value.partition(":")
    if not sep or not username:
        raise CredentialsError(f"{name} must be user:password")
    return RegistryCredentials(username, password, source=f"environment variable {name}")


def _from_global_env(environ: Mapping[str, str]) -> RegistryCredentials | None:
    username = environ.get("EXCHANGE_REGISTRY_USERNAME")
    if not username:
        return None
    return RegistryCredentials(username, environ.get("EXCHANGE_REGISTRY_PASSWORD", ""),
                               source="environment variables EXCHANGE_REGISTRY_USERNAME/PASSWORD")


def _from_docker_config(registry: str, environ: Mapping[str, str]) -> RegistryCredentials | None:
    path = docker_config_path(environ)
    config = _load_docker_config(path)
    if config is None:
        return None
    address = server_address(registry)
    helper = (config.get("credHelpers") or {}).get(address) or (config.get("credHelpers") or {}).get(registry)
    helper = helper or config.get("credsStore")
    if helper:
        found = _from_helper(helper, address, environ)
        if found is not None:
            return found
    return _from_auths(config.get("auths") or {}, registry, path)


def _load_docker_config(path: Path) -> dict[str, Any] | None:
    try:
        raw = read_small_file(path, limit=MAX_DOCKER_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except NotConfined as exc:  # TooLarge too
        raise CredentialsError(f"cannot read Docker config {path}: it {exc.reason}") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read Docker config {path}: {exc.strerror}") from exc
    try:
        config = strict_data(raw)
    except NotStrictJson as refused:  # only where: the reason may quote the text, which holds secrets
        where = f" at line {refused.position.line}, column {refused.position.column}" if refused.position else ""
        raise CredentialsError(f"Docker config {path} is not valid JSON{where}") from None
    if not isinstance(config, dict):
        raise CredentialsError(f"Docker config {path} is not a JSON object")
    return config


def _from_auths(auths: dict[str, Any], registry: str, path: Path) -> RegistryCredentials | None:
    for key, entry in auths.items():
        if not isinstance(entry, dict) or not _same_registry(_hostname(key), registry):
            continue
        source = f"Docker config {path} (auths entry {key!r})"
        if entry.get("identitytoken"):
            username = _decode_auth(entry["auth"], key, path)[0] if entry.get("auth") else ""
            return RegistryCredentials(username, identity_token=entry["identitytoken"], source=source)
        if entry.get("auth"):
            username, password = _decode_auth(entry["auth"], key, path)
            return RegistryCredentials(username, password, source=source)
        if entry.get("username"):
            return RegistryCredentials(entry["username"], entry.get("password", ""), source=source)
    return None


def _decode_auth(value: str, key: str, path: Path) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, sep, password = decoded.partition(":")
    if not sep:
        raise CredentialsError(f"Docker config {path}: the auth of {key!r} is not base64 of user:password")
    return username, password


def _from_helper(helper: str, address: str, environ: Mapping[str, str]) -> RegistryCredentials | None:
    program = f"docker-credential-{helper}"
    executable = shutil.which(program, path=environ.get("PATH"))
    if executable is None:
        raise CredentialsError(f"Docker credential helper {program} is configured but not on PATH")
    try:
        result = subprocess.run([executable, "get"], input=address, capture_output=True, text=True,
                                timeout=HELPER_TIMEOUT_SECONDS, env=dict(environ), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialsError(f"Docker credential helper {program} failed for {address}: {exc}") from exc
    if result.returncode != 0:
        if _HELPER_NOT_FOUND in result.stdout or _HELPER_NOT_FOUND in result.stderr:
            return None
        # stdout is not shown: a half-working helper might have printed a secret there.
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise CredentialsError(f"Docker credential helper {program} failed for {address}: {detail[0]}")
    try:
        answer = strict_data(result.stdout.encode("utf-8", "surrogatepass"))
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (NotStrictJson, KeyError, TypeError) as exc:
        raise CredentialsError(f"Docker credential helper {program} answered for {address} "
                               "with something other than JSON with Username and Secret") from exc
    source = f"Docker credential helper {program}"
    if username == _IDENTITY_TOKEN_USERNAME:
        return RegistryCredentials("", identity_token=secret, source=source)
    return RegistryCredentials(username, secret, source=source)


def _hostname(key: str) -> str:
    """``https://host:port/v1/`` -> ``host:port``, as Docker reduces its config keys."""
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key)
    return key.split("/", 1)[0]


def _same_registry(host: str, registry: str) -> bool:
    if registry in _DOCKER_HUB_ALIASES:
        return host in _DOCKER_HUB_ALIASES
    return host == registry

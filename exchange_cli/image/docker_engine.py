"""Images from a Docker engine (honours DOCKER_HOST): `docker save`, streamed through the archive parser."""

from __future__ import annotations

import os
from typing import Any

import requests

try:
    import docker
    import docker.errors
except ImportError:  # the `docker` extra is not installed: only this source needs it
    docker = None  # type: ignore[assignment]  # `connect` checks for None before any use

from ..errors import Category
from ..progress import NullProgress, Progress
from .archive import check_config_platform, iter_chunks_as_stream, read_docker_save
from .blobcache import CHUNK, BlobCache
from .digest import parse_digest
from .errors import ImageError
from .model import Image, Platform


class DockerUnavailable(ImageError):
    """No Docker engine answers where DOCKER_HOST (or the default socket) points."""


class DockerNotInstalled(DockerUnavailable):
    """The `docker` package is missing: an environment problem, exit 2 like other usage errors."""

    category = Category.ENVIRONMENT


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect() -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST that has answered a ping; DockerUnavailable if none does."""
    if docker is None:
        raise DockerNotInstalled("reading images from the Docker engine needs the docker package: "
                                 "pip install 'exchange-cli[docker]'")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise DockerUnavailable(f"cannot reach the Docker engine at {docker_host()}: {exc}") from exc
    return client


def find_local_image(client: docker.DockerClient, ref_text: str) -> Any | None:
    """The engine's image for `ref_text` (a name, name:tag, name@digest or image id), or None."""
    try:
        return client.images.get(ref_text)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, requests.RequestException) as exc:
        raise ImageError(f"{ref_text}: the Docker engine at {docker_host()} failed to look up the image: {exc}") from exc


def is_only_local(local_image: Any) -> bool:
    """Built here and never pushed or pulled: no registry knows it, so the engine is the only source."""
    return not local_image.attrs.get("RepoDigests")


def fetch_docker_image(ref_text: str, platform: Platform, cache: BlobCache, *, progress: Progress = NullProgress(),
                       client: docker.DockerClient | None = None) -> Image:
    """Read `ref_text` out of the Docker engine, its layers verified against the config and cached."""
    client = client or connect()
    local_image = find_local_image(client, ref_text)
    if local_image is None:
        raise ImageError(f"{ref_text}: no such image in the Docker engine at {docker_host()}")
    attrs = local_image.attrs
    check_config_platform({"os": attrs.get("Os"), "architecture": attrs.get("Architecture"),
                           "variant": attrs.get("Variant")}, platform, image=ref_text)
    image_id = parse_digest(local_image.id, image=ref_text, what="the engine's image id")
    try:
        with progress.task(f"Saving {ref_text} from the Docker engine", total=attrs.get("Size") or None) as task:
            stream = iter_chunks_as_stream(client.api.get_image(image_id, chunk_size=CHUNK))
            saved = read_docker_save(stream, image=ref_text, cache=cache, task=task)
    except (docker.errors.APIError, requests.RequestException) as exc:
        raise ImageError(f"{ref_text}: the Docker engine failed to save the image: {exc}") from exc
    if saved.config_digest != image_id:
        raise ImageError(f"{ref_text}: the engine saved config {saved.config_digest}, not image {image_id}")
    check_config_platform(saved.config, platform, image=ref_text)
    repo_digest = _repo_digest(ref_text, attrs.get("RepoDigests") or [])
    manifest_digest = None
    if repo_digest:
        manifest_digest = parse_digest(repo_digest.partition("@")[2], image=ref_text, what=f"RepoDigest {repo_digest}")
    return Image(reference=ref_text, platform=platform, config=saved.config, config_digest=image_id,
                 manifest_digest=manifest_digest, layers=saved.layers, pinned_reference=repo_digest)


def _repo_digest(ref_text: str, repo_digests: list[str]) -> str | None:
    """The RepoDigest of the repository `ref_text` names, else the first one."""
    name = ref_text.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for candidate in repo_digests:
        if candidate.split("@", 1)[0] in (name, f"docker.io/{name}", f"docker.io/library/{name}"):
            return candidate
    return repo_digests[0] if repo_digests else None

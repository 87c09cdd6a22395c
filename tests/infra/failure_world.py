"""`failure_world`: two gears with OCI-layout images on a bare remote, and places for the bucket, cache and
reports, as the tests of failing environments and leaking secrets run `exchange process` against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.gitrepo import ExchangeRepo


@pytest.fixture
def failure_world(exchange_repo: ExchangeRepo, tmp_path: Path) -> dict[str, Path]:
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

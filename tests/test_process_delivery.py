"""`exchange process` with conformance checks and a mirror registry: images in a real dockerd, real registry."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import requests

from tests.infra.delivery_world import World
from tests.infra.gitrepo import example_gear
from tests.infra.process_world import MANIFEST_SCHEMA, reject_pushes
from tests.infra.registry import ALL_MANIFESTS, RegistryServer


def source_manifest(registry: RegistryServer, reference: str) -> requests.Response:
    repository, _, tag = reference.split("/", 1)[1].partition(":")
    response = requests.get(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": ALL_MANIFESTS})
    response.raise_for_status()
    return response


def test_beta_gear_is_delivered_as_its_image_and_others_are_mirrored(delivery_world: World, delivery_images: dict[str, str]) -> None:
    result = delivery_world.process()
    assert result.exit_code == 0, result.output
    source = source_manifest(delivery_world.registry, delivery_images["beta"])
    digest = source.headers["Docker-Content-Digest"]
    found = delivery_world.manifests()
    beta = found.pop(f"acme-beta-sha256-{digest.removeprefix('sha256:')}.json")
    ((plain_name, plain),) = found.items()
    assert plain_name.startswith("acme-plain-sha384-")
    assert beta["exchange"]["rootfs-hash"] == digest
    assert beta["exchange"]["rootfs-url"] == f"docker://{delivery_world.mirror}/acme-beta@{digest}"
    assert beta["exchange"]["mirrored-image"] == f"{delivery_world.mirror}/acme-beta@{digest}"
    assert plain["exchange"]["mirrored-image"] == f"{delivery_world.mirror}/acme-plain@{digest}", "the same image, its own repository"
    assert "skipped-checks" not in plain["exchange"]
    for document in (beta, plain):
        jsonschema.validate(document, MANIFEST_SCHEMA)
    assert delivery_world.tarballs() == [Path(plain["exchange"]["rootfs-url"]).name], "no tarball for the image-delivered gear"
    repository = delivery_world.mirror.split("/", 1)[1]
    mirrored = requests.get(f"{delivery_world.registry.url}/v2/{repository}/acme-beta/manifests/{digest}",
                            headers={"Accept": ALL_MANIFESTS})
    assert mirrored.content == source.content
    assert delivery_world.mirrored_status("acme-beta") == delivery_world.mirrored_status("acme-plain") == 200


def test_a_non_conforming_image_stops_the_run_before_any_upload(delivery_world: World, delivery_images: dict[str, str]) -> None:
    delivery_world.add_gear("nobash", delivery_images["nobash"])
    head = delivery_world.repo.commit("a gear without bash")
    result = delivery_world.process()
    assert result.exit_code == 1
    assert "gears/acme/nobash.json: error[rootfs-bash]: no executable bash" in result.output
    assert "failed the conformance checks; nothing was processed" in result.output
    assert delivery_world.tarballs() == [] and delivery_world.manifests() == {}
    assert delivery_world.repo.git("rev-parse", "HEAD") == head
    assert delivery_world.mirrored_status("acme-beta") == delivery_world.mirrored_status("acme-plain") == 404

    result = delivery_world.process("--skip-check", "rootfs-bash")
    assert result.exit_code == 0, result.output
    (nobash,) = [m for name, m in delivery_world.manifests().items() if name.startswith("acme-nobash-")]
    assert nobash["exchange"]["skipped-checks"] == ["rootfs-bash"]


def test_beta_gear_needs_a_mirror_registry(delivery_world: World) -> None:
    result = delivery_world.process(mirror=False)
    assert result.exit_code == 2
    assert "gears/acme/beta.json: custom.flywheel.beta_exchange gears are delivered as images; give --mirror-registry" \
        in result.output
    assert delivery_world.tarballs() == []


def test_failed_push_removes_the_mirrored_tags(delivery_world: World) -> None:
    reject_pushes(delivery_world.remote)
    start = delivery_world.repo.git("rev-parse", "HEAD")
    result = delivery_world.process()
    assert result.exit_code == 2
    assert "rejected by policy" in result.output
    for name in ("acme-beta", "acme-plain"):
        assert f"deleted docker://{delivery_world.mirror}/{name}:1.0.0" in result.output
        assert delivery_world.mirrored_status(name) == 404
    assert delivery_world.tarballs() == []
    assert delivery_world.repo.git("rev-parse", "HEAD") == start


def test_a_failed_finalize_removes_the_tags_its_shards_mirrored(delivery_world: World, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    first = delivery_world.process("--shard", "1/2", "--shard-dir", str(shards))
    assert first.exit_code == 0, first.output
    record = json.loads(next(shards.glob("shard-1-of-2.json")).read_text())
    mirrored = [tag["reference"] for tag in record["created-tags"]]
    assert mirrored, "shard 1 mirrored its share and recorded the tags"
    # Shard 2 never ran: finalize publishes nothing and undoes shard 1's work, tags included, without
    # being given --mirror-registry itself.
    result = delivery_world.process("--finalize", str(shards), mirror=False)
    assert result.exit_code == 1
    assert "shard-2-of-2" in result.output or "no shard recorded" in result.output
    for reference in mirrored:
        assert f"deleted docker://{reference}" in result.output
        name = reference.rsplit("/", 1)[1].split(":")[0]
        assert delivery_world.mirrored_status(name) == 404
    assert delivery_world.tarballs() == []


def test_an_image_delivered_version_on_the_same_image_keeps_the_older_version(delivery_world: World, delivery_images: dict[str, str]) -> None:
    """Manifests of image-delivered gears are named by the image digest: a new version of the gear on the
    same image gets the version-qualified name (see tests/test_shared_rootfs.py), the older one stays."""
    assert delivery_world.process().exit_code == 0
    digest = source_manifest(delivery_world.registry, delivery_images["beta"]).headers["Docker-Content-Digest"].removeprefix("sha256:")
    first = delivery_world.manifests()[f"acme-beta-sha256-{digest}.json"]
    custom = {"gear-builder": {"image": delivery_images["beta"]}, "flywheel": {"beta_exchange": True}}
    delivery_world.repo.write("gears/acme/beta.json", example_gear(name="beta", version="1.1.0", custom=custom))
    delivery_world.repo.commit("beta 1.1.0, the same image")
    result = delivery_world.process()
    assert result.exit_code == 0, result.output
    found = delivery_world.manifests()
    assert found[f"acme-beta-sha256-{digest}.json"] == first
    second = found[f"acme-beta@1.1.0-sha256-{digest}.json"]
    assert second["gear"]["version"] == "1.1.0"
    assert second["exchange"]["rootfs-hash"] == first["exchange"]["rootfs-hash"]
    assert delivery_world.mirrored_status("acme-beta", "1.0.0") == delivery_world.mirrored_status("acme-beta", "1.1.0") == 200

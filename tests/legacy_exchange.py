"""An exchange as the old bash pipeline and years of hand-run scripts left it, built in the tests.

What real, years-old exchanges hold and the tool must read as they are:

- spec files named differently from the gear (``gears/acme/c-pac.json`` holds ``"name": "cpac"``,
  ``xcpengine.json`` holds ``xcpengine-fw``), manifests named after the *file*;
- a gear's older manifest named after the file it had then (``acme-manifest-…``, from
  ``gears/acme/manifest.json``);
- manifests directly under ``manifests/`` (a spec that had no org folder) and under deeper folders;
- old-shape manifests: only ``git-commit``, ``rootfs-hash``, ``rootfs-url`` (no image, size, platform);
- a manifest whose embedded gear has a non-string version;
- a boutique manifest whose invocation schema is the old ``{"WARNING": …}`` placeholder;
- an image-delivered manifest (``sha256:``, ``rootfs-url: docker://…``);
- hidden files under gears/ and boutiques/ (``.placeholder``, ``.gitkeep``);
- release-candidate and other real version strings (``1.0.0_7.1.1_rc0``, ``0.2.1_0.6.0``, ``1.4.4``,
  ``2.1.5-1``, ``v1.0``).

Every rootfs object is really uploaded through the Bucket API, so storage commands see a real bucket.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange_cli.storage.bucket import Bucket
from tests.catalog_world import CatalogWorld, rootfs_tarball
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear

WARNING_SCHEMA = {"WARNING": "Invocation schema validation for boutiques not yet implemented"}
IMAGE_DIGEST = "sha256:" + "ab" * 32
IMAGE_URL = f"docker://registry.example.org/gear-exchange/acme-beta@{IMAGE_DIGEST}"
ORPHAN = "acme-gone-sha384-" + "0" * 96 + ".tgz"


@dataclass(frozen=True)
class LegacyManifest:
    relative: str  # manifests/…
    org: str | None
    name: Any
    version: Any
    object_name: str | None  # None for the image-delivered one
    sha384: str | None
    kind: str = "gear"


@dataclass
class LegacyExchange:
    repo: ExchangeRepo
    bucket: Bucket
    work: Path
    manifests: list[LegacyManifest] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)

    def manifest(self, name: Any, version: Any) -> LegacyManifest:
        return next(m for m in self.manifests if (m.name, m.version) == (name, version))

    @property
    def referenced_objects(self) -> set[str]:
        return {m.object_name for m in self.manifests if m.object_name}

    # Building ----------------------------------------------------------------------------------

    def gear(self, name: str, version: str, **changes: Any) -> dict[str, Any]:
        image = f"registry.example.org/legacy/{name}:{version}"
        return example_gear(name=name, version=version, label=f"{name} gear",
                            custom={"gear-builder": {"category": "analysis", "image": image}}, **changes)

    def boutique(self, name: str, version: str) -> dict[str, Any]:
        return example_boutique(name=name, **{"tool-version": version},
                                **{"container-image": {"type": "docker",
                                                       "image": f"registry.example.org/legacy/{name}:{version}"}})

    def process(self, relative_dir: str, slug: str, org: str | None, spec: dict[str, Any], *, kind: str = "gear",
                invocation_schema: Any = None, new_shape: bool = False) -> LegacyManifest:
        """Write a manifest the old way: ``manifests/<hier>/<slug>-sha384-<hex>.json`` and its object."""
        content = rootfs_tarball({"etc/release": f"{slug} {spec.get('version', spec.get('tool-version'))}\n".encode()})
        sha384 = hashlib.sha384(content).hexdigest()
        object_name = f"{slug}-sha384-{sha384}.tgz"
        source = self.work / object_name
        source.write_bytes(content)
        self.bucket.upload(object_name, source, size=len(content), sha384=sha384)
        record: dict[str, Any] = {"git-commit": "1" * 40, "rootfs-hash": f"sha384:{sha384}",
                                  "rootfs-url": f"https://storage.example.org/legacy-exchange/{object_name}"}
        if new_shape:
            record |= {"rootfs-size": len(content), "image": "registry.example.org/legacy/x:1",
                       "platform": "linux/amd64"}
        document = {kind: spec, "exchange": record,
                    "invocation-schema": invocation_schema if invocation_schema is not None else {"type": "object"}}
        relative = f"{relative_dir}/{slug}-sha384-{sha384}.json"
        self.repo.write(relative, json.dumps(document, indent=2) + "\n")
        version = spec.get("version" if kind == "gear" else "tool-version")
        made = LegacyManifest(relative, org, spec.get("name"), version, object_name, sha384, kind)
        self.manifests.append(made)
        return made

    def process_image(self, relative_dir: str, slug: str, org: str, spec: dict[str, Any]) -> LegacyManifest:
        hex_digest = IMAGE_DIGEST.split(":", 1)[1]
        document = {"gear": spec, "exchange": {"git-commit": "2" * 40, "rootfs-hash": IMAGE_DIGEST,
                                               "rootfs-url": IMAGE_URL}, "invocation-schema": {"type": "object"}}
        relative = f"{relative_dir}/{slug}-sha256-{hex_digest}.json"
        self.repo.write(relative, json.dumps(document, indent=2) + "\n")
        made = LegacyManifest(relative, org, spec["name"], spec["version"], None, None)
        self.manifests.append(made)
        return made


def build_legacy_exchange(repo: ExchangeRepo, bucket: Bucket, work: Path) -> LegacyExchange:
    legacy = LegacyExchange(repo, bucket, work)
    # Years ago: cpac lived in gears/acme/manifest.json; a gear with no org folder; a deeper folder.
    legacy.process("manifests/acme", "acme-manifest", "acme", legacy.gear("cpac", "0.9.0"))
    legacy.process("manifests", "bids-app", None, legacy.gear("bids-app", "0.2.1_0.6.0"))
    legacy.process("manifests/neuro/legacy", "neuro-legacy-fmriprep", "neuro", legacy.gear("fmriprep", "2.1.5-1"))
    odd = legacy.gear("odd", "1")
    odd["version"] = 2  # hand-edited long ago: a number, which the old jq pipeline did not mind
    legacy.process("manifests/neuro", "neuro-odd", "neuro", odd)
    legacy.commits.append(repo.commit("Process gears before the org folders"))

    # Then: file names that differ from the gears' names, and release candidates.
    cpac_rc = legacy.gear("cpac", "1.0.0_7.1.1_rc0")
    legacy.process("manifests/acme", "acme-c-pac", "acme", cpac_rc)
    cpac = legacy.gear("cpac", "1.0.0_7.1.1")
    legacy.process("manifests/acme", "acme-c-pac", "acme", cpac, new_shape=True)
    repo.write("gears/acme/c-pac.json", cpac)
    xcp = legacy.gear("xcpengine-fw", "1.4.4")
    legacy.process("manifests/acme", "acme-xcpengine", "acme", xcp)
    repo.write("gears/acme/xcpengine.json", xcp)
    word_count = legacy.boutique("word-count", "1.0.0")
    legacy.process("manifests/acme", "acme-word-count", "acme", word_count, kind="boutique",
                   invocation_schema=WARNING_SCHEMA)
    repo.write("boutiques/acme/word-count.json", word_count)
    beta = legacy.gear("beta", "v1.0")
    legacy.process_image("manifests/acme", "acme-beta", "acme", beta)
    repo.write("gears/acme/beta.json", beta)
    for hidden in ("gears/.placeholder", "gears/acme/.gitkeep", "boutiques/.gitkeep"):
        repo.write(hidden, "")
    legacy.commits.append(repo.commit("Process gears with their file names"))
    repo.set_sentinel(legacy.commits[-1])
    legacy.commits.append(repo.commit("Advance the sentinel"))

    # An object no manifest references: the only thing --delete-orphans may take.
    source = work / ORPHAN
    source.write_bytes(b"left behind by a failed run")
    bucket.upload(ORPHAN, source, size=source.stat().st_size, sha384=hashlib.sha384(source.read_bytes()).hexdigest())
    return legacy


def renamed_within_one_file(world: CatalogWorld) -> None:
    """`gears/flywheel/c-pac.json` held the name `c-pac` for its first versions and `cpac` from 5.0 on;
    every manifest is named after the file (`flywheel-c-pac-…`), as the old pipeline named them."""
    for version in ("1.0.0", "2.0.0", "4.0.0"):
        world.publish("flywheel", "c-pac", version)
    world.publish("flywheel", "cpac", "5.0.0", stem="c-pac")
    world.repo.write("gears/flywheel/c-pac.json", example_gear(
        name="cpac", version="5.1.0", custom={"gear-builder": {"image": "registry.example.org/flywheel/cpac:5.1.0"}}))
    world.repo.commit("cpac: renamed in its own file")


def nameless_boutique(legacy: LegacyExchange) -> LegacyManifest:
    """An old boutique manifest: its embedded descriptor has no `name` (descriptors once named the tool in
    `tool-version` and `description` only) and its invocation schema is the old {"WARNING": …} placeholder."""
    descriptor = legacy.boutique("nameless", "0.1.0")
    del descriptor["name"]
    made = legacy.process("manifests/acme", "acme-nameless", "acme", descriptor, kind="boutique",
                          invocation_schema=WARNING_SCHEMA)
    legacy.repo.commit("an old boutique")
    return made


def processed_under_old_rules(legacy: LegacyExchange) -> None:
    """A gear processed before the exchange had the image rules: its image is `:latest`."""
    old = legacy.gear("oldie", "1.0.0")
    old["custom"]["gear-builder"]["image"] = "registry.example.org/legacy/oldie:latest"
    legacy.repo.write("gears/acme/oldie.json", old)
    legacy.process("manifests/acme", "acme-oldie", "acme", old)
    legacy.repo.set_sentinel(legacy.repo.commit("processed by the old pipeline"))
    legacy.repo.commit("advance the sentinel")

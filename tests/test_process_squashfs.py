"""`exchange process` publishing the squashfs image beside the tarball when the policy asks for it
(`.exchange.yaml` artifacts.formats): content-addressed, named in the manifest, rolled back with the run."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.errors import UsageError
from exchange_cli.image.model import Image
from exchange_cli.process import check as process_check
from exchange_cli.rootfs import flatten
from exchange_cli.rootfs.layertar import LayerEntry, LayerTar
from exchange_cli.rootfs.squashfs import SETTINGS, find_tar2sqfs
from exchange_cli.rootfs.tree import Directory
from exchange_cli.specs import SpecKind
from exchange_cli.validation.policy import parse_policy
from exchange_cli.validation.problems import Problem
from tests.infra import require_executable
from tests.infra.commands import catalog_site
from tests.infra.gitrepo import run_git
from tests.infra.process_world import MANIFEST_SCHEMA, World, manifests, process, reject_pushes
from tests.infra.provenance import Signed, independent_verify
from tests.infra.stages import Stage, finish

POLICY = "artifacts:\n  formats: [tarball, squashfs]\n"


def ask_for_squashfs(world: World) -> None:
    world.repo.write(".exchange.yaml", POLICY)
    world.repo.commit("publish squashfs images too")
    world.repo.git("push", "-q", "origin", "master")


def test_the_policy_asks_for_squashfs_and_the_tarball_is_always_published() -> None:
    assert parse_policy(POLICY, ".exchange.yaml").squashfs
    assert not parse_policy("catalog:\n  title: x\n", ".exchange.yaml").squashfs
    with pytest.raises(UsageError, match=r"\.exchange\.yaml:2:\d+: .*artifacts/formats"):
        parse_policy("artifacts:\n  formats: [squashfs]\n", ".exchange.yaml")


def test_without_the_policy_no_squashfs_is_published(process_world: World) -> None:
    assert process(process_world).exit_code == 0
    assert not [name for name in process_world.bucket_objects() if name.endswith(".sqfs")]
    for document in manifests(process_world).values():
        assert not [key for key in document["exchange"] if key.startswith("squashfs-")]


def test_the_squashfs_image_is_published_beside_the_tarball_and_named_in_the_manifest(process_world: World,
                                                                                      tmp_path: Path) -> None:
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    result = process(process_world, "--report", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    objects = process_world.bucket_objects()
    found = manifests(process_world)
    assert len(found) == 2
    for document in found.values():
        jsonschema.validate(document, MANIFEST_SCHEMA)
        block = document["exchange"]
        name = Path(block["squashfs-url"]).name
        digest = block["squashfs-sha384"].removeprefix("sha384:")
        assert name == f"acme-{document['gear']['name']}-sha384-{digest}.sqfs", "content-addressed"
        assert objects[name] == digest
        assert block["squashfs-size"] == (process_world.bucket / name).stat().st_size
        assert (process_world.bucket / name).read_bytes()[:4] == b"hsqs", "a squashfs superblock"
    report = json.loads((tmp_path / "report" / "process.json").read_text())
    assert {(spec["squashfs-url"], spec["squashfs-sha384"], spec["squashfs-size"]) for spec in report["specs"]} == {
        (d["exchange"]["squashfs-url"], d["exchange"]["squashfs-sha384"], d["exchange"]["squashfs-size"])
        for d in found.values()}, "the run report names what the manifests name"
    assert sorted(objects) == sorted([*(Path(d["exchange"]["rootfs-url"]).name for d in found.values()),
                                      *(Path(d["exchange"]["sbom-url"]).name for d in found.values()),
                                      *(Path(d["exchange"]["squashfs-url"]).name for d in found.values())])


def test_a_failed_push_deletes_the_squashfs_images_the_run_created(process_world: World) -> None:
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    (process_world.bucket / "unrelated.sqfs").write_bytes(b"was here before")
    before = process_world.bucket_objects()
    reject_pushes(process_world.remote)
    result = process(process_world)
    assert result.exit_code == 2, result.output
    assert "deleted 6 object(s)" in result.output, "two rootfs, their SBOMs and their squashfs images"
    assert process_world.bucket_objects() == before


def test_remove_with_purge_deletes_the_squashfs_image_too(process_world: World) -> None:
    """`remove --purge` deletes every object of the versions it removes: the squashfs image was left behind
    (the manifest's list of its objects named the rootfs, its envelope and its SBOM only)."""
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    assert process(process_world).exit_code == 0
    (_, document), *others = sorted(manifests(process_world).items())
    block, gear = document["exchange"], document["gear"]
    own = {Path(block[key]).name for key in ("rootfs-url", "sbom-url", "squashfs-url")}
    assert own <= set(process_world.bucket_objects())
    result = CliRunner().invoke(cli, ["remove", f"acme/{gear['name']}@{gear['version']}", "--purge", "--bucket",
                                      process_world.bucket.as_uri(), "--yes", "--repo", str(process_world.repo.root)])
    assert result.exit_code == 0, result.output
    left = set(process_world.bucket_objects())
    assert not own & left, f"left in the bucket: {sorted(own & left)}"
    for _, other in others:
        assert Path(other["exchange"]["squashfs-url"]).name in left, "another version's image stays"


def test_an_untested_tar2sqfs_fails_the_run_before_any_upload(process_world: World, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ask_for_squashfs(process_world)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tar2sqfs").write_text("#!/bin/sh\necho 'tar2sqfs (squashfs-tools-ng) 0.1'\n")
    (fake / "tar2sqfs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    result = process(process_world)
    assert result.exit_code != 0 and "squashfs-tools-ng 0.1, not a tested version" in result.output
    assert process_world.bucket_objects() == {}


def test_an_untested_tar2sqfs_is_used_when_the_run_is_told_to(process_world: World, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """process refused an untested tar2sqfs with a message naming --allow-untested-squashfs-tools, which
    only `export` took: the option the message names must exist on the command that printed it."""
    real = require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tar2sqfs").write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "tar2sqfs (squashfs-tools-ng) 9.9"; '
                                   f'exit 0; fi\nexec {real} "$@"\n')
    (fake / "tar2sqfs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    refused = process(process_world)
    assert refused.exit_code != 0 and "--allow-untested-squashfs-tools to use it anyway" in refused.output
    result = process(process_world, "--allow-untested-squashfs-tools")
    assert result.exit_code == 0, result.output
    assert sum(name.endswith(".sqfs") for name in process_world.bucket_objects()) == 2


def test_verify_storage_finds_a_missing_or_tampered_squashfs_image(process_world: World) -> None:
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    assert process(process_world).exit_code == 0
    audit = CliRunner().invoke(cli, ["verify-storage", "--repo", str(process_world.repo.root), "--bucket",
                                     process_world.bucket.as_uri(), "--deep"])
    assert audit.exit_code == 0, audit.output
    first, second = sorted(p for p in process_world.bucket.iterdir() if p.suffix == ".sqfs")
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # the same size: only the deep check's sha384 sees it
    first.write_bytes(bytes(data))
    second.unlink()
    audit = CliRunner().invoke(cli, ["verify-storage", "--repo", str(process_world.repo.root), "--bucket",
                                     process_world.bucket.as_uri(), "--deep"])
    assert audit.exit_code == 1, audit.output
    assert first.name in audit.output and second.name in audit.output


def fetch(world: World, *args: str):
    return CliRunner().invoke(cli, ["fetch", "--repo", str(world.repo.root), *args])


def test_fetch_downloads_the_squashfs_image_and_checks_its_sha384(process_world: World, tmp_path: Path) -> None:
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    assert process(process_world).exit_code == 0
    fetched = fetch(process_world, "acme/hello", "--artifact", "squashfs", "--output-dir", str(tmp_path / "got"))
    assert fetched.exit_code == 0, fetched.output
    (image,) = (tmp_path / "got").iterdir()
    published = process_world.bucket / image.name
    assert image.suffix == ".sqfs" and image.read_bytes() == published.read_bytes()
    data = bytearray(published.read_bytes())
    data[-1] ^= 0xFF
    published.write_bytes(bytes(data))
    refused = fetch(process_world, "acme/hello", "--artifact", "squashfs", "--output-dir", str(tmp_path / "bad"))
    assert refused.exit_code != 0 and "sha384" in refused.output, refused.output
    assert not (tmp_path / "bad").exists() or list((tmp_path / "bad").iterdir()) == []


def test_fetch_of_a_squashfs_the_exchange_does_not_publish_says_so(process_world: World, tmp_path: Path) -> None:
    assert process(process_world).exit_code == 0
    refused = fetch(process_world, "acme/hello", "--artifact", "squashfs", "--output-dir", str(tmp_path))
    assert refused.exit_code != 0 and "names no squashfs image (squashfs-url)" in refused.output
    extract = fetch(process_world, "acme/hello", "--artifact", "squashfs", "--extract")
    assert extract.exit_code == 2 and "--extract unpacks the tarball" in extract.output


def test_the_signed_provenance_names_the_image_and_its_writer(signed_process: Signed) -> None:
    """One statement, one subject per artifact: the tarball first, then the squashfs image built in the
    same pass; and the writer's version and settings, which fix the image's bytes."""
    require_executable("tar2sqfs")
    ask_for_squashfs(signed_process.world)
    assert signed_process.process().exit_code == 0
    block = signed_process.block("hello")
    provenance_line = signed_process.bucket_file(block["attestation-url"]).read_bytes().splitlines()[0]
    statement = independent_verify(provenance_line, signed_process.signer.public_key.pem)
    image = signed_process.bucket_file(block["squashfs-url"]).read_bytes()
    assert statement["subject"][1:] == [{"name": Path(block["squashfs-url"]).name, "digest": {
        "sha384": hashlib.sha384(image).hexdigest(), "sha256": hashlib.sha256(image).hexdigest()}}]
    assert statement["subject"][0]["name"] == Path(block["rootfs-url"]).name
    builder = statement["predicate"]["runDetails"]["builder"]
    assert builder["version"]["squashfs-tools-ng"] == find_tar2sqfs().version
    compression = statement["predicate"]["buildDefinition"]["internalParameters"]["compression"]
    assert compression["squashfs"] == SETTINGS and compression["format"] == "gzip"
    verified = signed_process.verify("acme/hello", "--format", "json")
    assert verified.exit_code == 0, verified.output
    checks = {check["check"]: check["ok"] for check in json.loads(verified.output)["checks"]}
    assert checks["squashfs-subject"]


def test_attack_manifest_pointing_at_another_squashfs_image(signed_process: Signed, tmp_path: Path) -> None:
    """The manifest's squashfs pin is covered by the signature: swapped for the other gear's image (a valid
    image of the exchange) or for made-up bytes (pinned consistently, so the image matches its pins), verify
    fails at the squashfs subject."""
    require_executable("tar2sqfs")
    ask_for_squashfs(signed_process.world)
    assert signed_process.process().exit_code == 0
    hello, other = signed_process.block("hello"), signed_process.block("other")
    signed_process.edit_block("hello", squashfs_url=other["squashfs-url"], squashfs_sha384=other["squashfs-sha384"],
                              squashfs_size=other["squashfs-size"])
    found = verify_failure(signed_process, "acme/hello")
    assert found["check"] == "squashfs-subject" and "does not name the squashfs image" in found["reason"]
    made_up = tmp_path / "made-up.sqfs"
    made_up.write_bytes(b"hsqs" + bytes(60))
    pin = "sha384:" + hashlib.sha384(made_up.read_bytes()).hexdigest()
    signed_process.edit_block("hello", squashfs_url=hello["squashfs-url"], squashfs_sha384=pin, squashfs_size=64)
    found = verify_failure(signed_process, "acme/hello", "--squashfs", str(made_up))
    assert found["check"] == "squashfs-subject" and f"but the manifest pins {pin[:23]}" in found["reason"]


def verify_failure(signed: Signed, target: str, *extra: str) -> dict:
    result = signed.verify(target, "--format", "json", *extra)
    assert result.exit_code == 1, result.output
    return json.loads(result.output)["failure"]


def test_the_catalog_page_links_the_squashfs_image(process_world: World, tmp_path: Path) -> None:
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    assert process(process_world).exit_code == 0
    block = next(d["exchange"] for d in manifests(process_world).values() if d["gear"]["name"] == "hello")
    site = catalog_site(process_world.repo.root, tmp_path)
    page = (site / "gears/acme/hello.html").read_text()
    assert f"{block['squashfs-url']} ({block['squashfs-sha384']})" in page


def test_a_squashfs_image_deleted_before_the_push_lands_is_made_again(local_stage: Stage) -> None:
    """Something that ignores the lease deletes the image while the push is held: once the push is
    confirmed the run makes it again from the rootfs in the bucket, the bytes its manifest pins."""
    require_executable("tar2sqfs")
    setup = local_stage.clone("policy")
    (setup / ".exchange.yaml").write_text(POLICY)
    run_git(setup, "add", ".exchange.yaml")
    run_git(setup, "commit", "-q", "-m", "squashfs too")
    run_git(setup, "push", "-q", "origin", "HEAD")
    checkout, run = local_stage.start_held("only")
    images = sorted(name for name in local_stage.objects() if name.endswith(".sqfs"))
    assert images, local_stage.log(checkout)
    published = (local_stage.tmp / "bucket" / images[0]).read_bytes()
    (local_stage.tmp / "bucket" / images[0]).unlink()
    local_stage.release_push()
    assert finish(run, local_stage, checkout) == 0, local_stage.log(checkout)
    assert f"restored {images[0]}" in local_stage.log(checkout)
    assert (local_stage.tmp / "bucket" / images[0]).read_bytes() == published


def test_verify_reads_the_published_squashfs_image_and_finds_it_changed(signed_process: Signed) -> None:
    """verify hashes the image itself: a changed byte (same size) or a cut image in the bucket fails the
    `squashfs` check, whatever the signed statement and the manifest still say."""
    require_executable("tar2sqfs")
    ask_for_squashfs(signed_process.world)
    assert signed_process.process().exit_code == 0
    verified = signed_process.verify("acme/hello", "--format", "json")
    assert verified.exit_code == 0, verified.output
    names = [check["check"] for check in json.loads(verified.output)["checks"]]
    assert names.index("sbom") < names.index("squashfs") < names.index("envelope"), names
    image = signed_process.bucket_file(signed_process.block("hello")["squashfs-url"])
    good = image.read_bytes()
    changed = bytearray(good)
    changed[len(changed) // 2] ^= 0xFF
    image.write_bytes(bytes(changed))
    found = verify_failure(signed_process, "acme/hello")
    assert found["check"] == "squashfs" and "it was changed or corrupted" in found["reason"], found
    image.write_bytes(good[:-1])
    found = verify_failure(signed_process, "acme/hello")
    assert found["check"] == "squashfs" and f"({len(good) - 1} bytes)" in found["reason"], found
    image.write_bytes(good + b"\0")
    found = verify_failure(signed_process, "acme/hello")
    assert found["check"] == "squashfs" and "it was changed or corrupted" in found["reason"], found


def test_verify_checks_a_squashfs_image_given_as_a_file(signed_process: Signed, tmp_path: Path) -> None:
    """`verify --squashfs FILE` checks that file instead of the bucket's: the good copy passes, a changed
    copy fails even while the bucket still holds the good one."""
    require_executable("tar2sqfs")
    ask_for_squashfs(signed_process.world)
    assert signed_process.process().exit_code == 0
    published = signed_process.bucket_file(signed_process.block("hello")["squashfs-url"])
    copy = tmp_path / "hello.sqfs"
    copy.write_bytes(published.read_bytes())
    published.unlink()  # offline: the bucket's image is not read
    verified = signed_process.verify("acme/hello", "--squashfs", str(copy), "--format", "json")
    assert verified.exit_code == 0, verified.output
    checks = {check["check"]: check for check in json.loads(verified.output)["checks"]}
    assert checks["squashfs"]["ok"] and str(copy) in checks["squashfs"]["detail"]
    data = bytearray(copy.read_bytes())
    data[0] ^= 0xFF
    copy.write_bytes(bytes(data))
    result = signed_process.verify("acme/hello", "--squashfs", str(copy), "--format", "json")
    assert result.exit_code == 1, result.output
    found = json.loads(result.output)["failure"]
    assert found["check"] == "squashfs" and "it was changed or corrupted" in found["reason"], found


@pytest.mark.parametrize(("jobs", "kept_entries", "reads"), [(1, None, 1), (2, None, 1), (1, 0, 2)],
                         ids=["one-job", "two-jobs", "no-tree-kept"])
def test_the_checks_the_sbom_and_both_formats_read_each_layer_once(
        process_world: World, monkeypatch: pytest.MonkeyPatch, jobs: int, kept_entries: int | None, reads: int) -> None:
    """Issue 25: conformance checks, the SBOM, the tarball and the squashfs image come from one reading
    of each layer's headers (pass 1) and one emit per image; past the kept trees' budget, an image's
    headers are read again by its export, and the run still succeeds."""
    require_executable("tar2sqfs")
    ask_for_squashfs(process_world)
    if kept_entries is not None:
        monkeypatch.setattr(process_check, "MAX_KEPT_TREE_ENTRIES", kept_entries)
    header_reads: Counter[str] = Counter()
    in_images: Counter[str] = Counter()  # a layer two images share is read once for each
    emits: list[int] = []
    read_entries, emit, check_image = LayerTar.entries, flatten._Emitter.emit, process_check.check_image

    def checked(spec: dict, kind: SpecKind, image: Image, **options: Any) -> list[Problem]:
        in_images.update(layer.digest for layer in image.layers)
        return check_image(spec, kind, image, **options)

    def counted_entries(tar: LayerTar) -> Iterator[LayerEntry]:
        header_reads[tar.blob.digest] += 1
        return read_entries(tar)

    def counted_emit(emitter: flatten._Emitter, root: Directory) -> flatten.FlattenStats:
        emits.append(1)
        return emit(emitter, root)

    monkeypatch.setattr(LayerTar, "entries", counted_entries)
    monkeypatch.setattr(flatten._Emitter, "emit", counted_emit)
    monkeypatch.setattr(process_check, "check_image", checked)
    result = process(process_world, "--jobs", str(jobs))
    assert result.exit_code == 0, result.output
    found = manifests(process_world)
    assert len(found) == 2 and all("squashfs-url" in d["exchange"] and "sbom-url" in d["exchange"]
                                   for d in found.values())
    assert len(in_images) >= 2 and header_reads.keys() == in_images.keys()
    assert header_reads == Counter({digest: reads * images for digest, images in in_images.items()})
    assert len(emits) == 2, "one emit per image gives the tarball, the squashfs image and the SBOM"


@pytest.mark.parametrize("jobs", [1, 2])
def test_trees_kept_for_the_export_are_closed_when_a_check_fails(process_world: World, jobs: int) -> None:
    """The trees the check stage keeps for the exports hold their layers open (file and mapping): a run
    stopped by a failing check closes them all, whichever image failed."""
    process_world.add_gear("acme", "broken", command="no-such-tool --run")
    process_world.repo.commit("a gear whose command is not in its image")
    process_world.repo.git("push", "-q", "origin", "master")
    result = process(process_world, "--jobs", str(jobs))
    assert result.exit_code == 1
    assert "failed the conformance checks; nothing was processed" in result.output
    assert process_world.bucket_objects() == {}
    cache = str(process_world.cache.resolve())
    open_files = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")]
    mapped = Path("/proc/self/maps").read_text().splitlines()
    assert not [path for path in open_files if path.startswith(cache)], "a layer file left open"
    assert not [line for line in mapped if cache in line], "a layer left mapped"

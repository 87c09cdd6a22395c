"""Nothing from outside the image gets into a rootfs: hostile OCI layouts, docker-save files and a lying registry.

Each test plays an image (or a registry) that lies: digests that climb out of the cache or break the
digest grammar, files planted in the cache, decompression bombs, registries that trickle, stall or
redirect to other schemes, and a disk that fills up. Every one of them failed on the code before
issue 10 (see /work/notes/img.md for how each failed).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.errors import OutputError
from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.archive import read_docker_archive
from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.digest import Digest, InvalidDigest
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM
from exchange_cli.image.registry import RetryPolicy, TransferLimits, fetch_registry_image
from exchange_cli.reference import parse_reference
from tests.infra.image_files import OciLayout, base_layer, entry, oci_docker_save, rootfs_listing, sha256, tar_of
from tests.infra.lying_registry import OCI_MANIFEST, LyingRegistry, Reply, digest_of, outcome_within
from tests.infra.tmpfs import small_tmpfs
from tests.layers import compress

pytestmark = pytest.mark.usefixtures("no_credentials")  # tests/infra/image_sources.py

QUICK_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
PATIENT = TransferLimits(connect_timeout=5, read_timeout=10, min_rate=1024**2, floor=10)
MiB = 1024**2


def host_secret_tar() -> bytes:
    return tar_of(entry("etc/host-secret", b"a file from the machine, not from any image\n"))


def genuine_layer() -> bytes:
    return tar_of(entry("etc/genuine", b"from the image\n"))


def zero_bomb(decompressed: int, codec: str = "zstd") -> bytes:
    """`decompressed` NUL bytes, compressed by `codec` into a few KB, without holding them in memory."""
    out = io.BytesIO()
    block = bytes(MiB)
    if codec == "zstd":
        with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer:
            for _ in range(decompressed // MiB):
                writer.write(block)
        return out.getvalue()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as writer:
        for _ in range(decompressed // MiB):
            writer.write(block)
    return out.getvalue()


@pytest.fixture
def lying() -> Iterator[LyingRegistry]:
    server = LyingRegistry()
    yield server
    server.stop()


def config_for(diff_ids: list) -> dict:
    return {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}


def pull(lying: LyingRegistry, name: str, cache: BlobCache, limits: TransferLimits = PATIENT):
    return fetch_registry_image(parse_reference(f"{lying.host}/{name}"), DEFAULT_PLATFORM, cache,
                                insecure_registries=[lying.host], retry=QUICK_RETRY, limits=limits)


def plant_host_file(tmp_path: Path, cache: BlobCache) -> str:
    """A tar outside a cache in use, and the diff_id that names it from inside the cache's layers directory."""
    assert cache.root == tmp_path / "cache"
    cache.layers_dir.mkdir(parents=True, exist_ok=True)  # a cache that has been used before
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret.tar").write_bytes(host_secret_tar())
    return "../../host/secret"  # cache/layers/../../host/secret.tar


# --- the digest grammar --------------------------------------------------------------------------


@pytest.mark.parametrize("text, rule", [
    ("sha256:" + "a" * 64, None),
    ("sha384:" + "0" * 96, None),
    ("sha512:" + "f" * 128, None),
    ("sha256:" + "A" * 64, "lower-case hex"),
    ("sha256:" + "a" * 63, "64 lower-case hex"),
    ("sha512:" + "a" * 64, "128 lower-case hex"),
    ("md5:" + "a" * 32, "algorithm 'md5'"),
    ("sha256:../../etc/passwd", "not of the form algorithm:hex"),
    ("../../../../etc/passwd", "not of the form algorithm:hex"),
    ("sha256:" + "a" * 64 + "/x", "not of the form algorithm:hex"),
    ("sha256:" + "a" * 64 + "\n", "not of the form algorithm:hex"),
    ("", "not of the form algorithm:hex"),
    (5, "not a string"),
    (None, "not a string"),
])
def test_the_digest_grammar(text, rule) -> None:
    if rule is None:
        assert Digest.parse(text) == text
        return
    with pytest.raises(InvalidDigest, match=rule):
        Digest.parse(text)


def test_the_cache_names_files_only_by_valid_digests(blob_cache: BlobCache) -> None:
    with pytest.raises(InvalidDigest):
        blob_cache.layer_path("../../host/secret")
    assert blob_cache.layer_path("sha256:" + "b" * 64) == blob_cache.layers_dir / f"sha256-{'b' * 64}.tar"


# --- OCI layouts --------------------------------------------------------------------------------------


def test_a_diff_id_climbing_out_of_the_cache_is_refused_not_a_cache_hit(tmp_path: Path, blob_cache: BlobCache) -> None:
    escape = plant_host_file(tmp_path, blob_cache)
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([genuine_layer()], diff_ids=[escape]), tag="app")
    output = tmp_path / "out" / "rootfs.tgz"

    with pytest.raises(ImageError) as failure:
        export_rootfs(f"oci:{layout.root}:app", output, options=ExportOptions(cache=blob_cache))

    assert str(failure.value).startswith(f"oci:{layout.root}:app: config rootfs.diff_ids[0]: '../../host/secret' "
                                         "is not of the form algorithm:hex")
    assert not output.exists()


@pytest.mark.parametrize("diff_id", [5, None, {"sha256": "x"}, ["sha256:" + "a" * 64], "sha256:" + "A" * 64,
                                     "sha256:" + "a" * 65, "md5:" + "a" * 32])
def test_a_diff_id_that_is_not_a_digest_is_an_error_naming_the_field(tmp_path: Path, blob_cache: BlobCache, diff_id) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([genuine_layer()], diff_ids=[diff_id]), tag="app")

    with pytest.raises(ImageError, match=r"^oci:.*:app: config rootfs\.diff_ids\[0\]: "):
        export_rootfs(f"oci:{layout.root}:app", tmp_path / "rootfs.tgz", options=ExportOptions(cache=blob_cache))

    assert not list(blob_cache.root.rglob("*.tar"))


def bad_descriptor_layout(tmp_path: Path, where: str, bad: object) -> OciLayout:
    """A layout whose index entry, manifest config or manifest layer carries the digest `bad`."""
    layout = OciLayout(tmp_path / "layout")
    layer = compress(genuine_layer(), "gzip")
    layer_descriptor = layout.blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = layout.blob(json.dumps(config_for([sha256(genuine_layer())])).encode(),
                         "application/vnd.oci.image.config.v1+json")
    if where == "config":
        config["digest"] = bad
    if where == "layer":
        layer_descriptor["digest"] = bad
    manifest = layout.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                       "layers": [layer_descriptor]}).encode(), OCI_MANIFEST)
    if where == "index":
        manifest["digest"] = bad
    layout.add(manifest, tag="app")
    return layout


@pytest.mark.parametrize("where", ["index", "config", "layer"])
@pytest.mark.parametrize("bad", ["sha256:" + "A" * 64, "sha256:abc", "sha512:" + "a" * 64, 7])
def test_descriptor_digests_are_checked_before_use(tmp_path: Path, blob_cache: BlobCache, where: str, bad) -> None:
    layout = bad_descriptor_layout(tmp_path, where, bad)
    # The file a lax reader would open for the uppercase digest: its content is not checked first.
    for algorithm in ("sha256", "sha512"):
        if isinstance(bad, str) and bad.startswith(f"{algorithm}:"):
            (layout.root / "blobs" / algorithm).mkdir(exist_ok=True)
            (layout.root / "blobs" / algorithm / bad.split(":")[1]).write_bytes(compress(host_secret_tar(), "gzip"))

    with pytest.raises(ImageError, match=r"digest: .* (lower-case hex|not a string)"):
        export_rootfs(f"oci:{layout.root}:app", tmp_path / "rootfs.tgz", options=ExportOptions(cache=blob_cache))


def test_an_oversized_index_json_is_not_read_whole(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    with open(layout.root / "index.json", "r+b") as index:
        index.truncate(64 * 1024**3)  # sparse: 64 GiB of nothing, more than this machine's memory

    with pytest.raises(ImageError, match=r"index.json is larger than the 4194304 bytes allowed for an index"):
        export_rootfs(f"oci:{layout.root}", tmp_path / "rootfs.tgz", options=ExportOptions(cache=blob_cache))


@pytest.mark.parametrize("document", ["index.json", "manifest", "config"])
def test_json_nested_beyond_the_recursion_limit_is_an_image_error(tmp_path: Path, blob_cache: BlobCache,
                                                                  document: str) -> None:
    bomb = b"[" * 200_000 + b"]" * 200_000
    layout = OciLayout(tmp_path / "layout")
    if document == "index.json":
        (layout.root / "index.json").write_bytes(bomb)
    elif document == "manifest":
        layout.add(layout.blob(bomb, OCI_MANIFEST), tag="app")
    else:
        config = layout.blob(bomb, "application/vnd.oci.image.config.v1+json")
        layout.add(layout.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                           "layers": []}).encode(), OCI_MANIFEST), tag="app")

    with pytest.raises(ImageError, match=r"is not valid JSON"):
        export_rootfs(f"oci:{layout.root}", tmp_path / "rootfs.tgz", options=ExportOptions(cache=blob_cache))


# --- what the cache trusts ------------------------------------------------------------------------


def exported_listing(tmp_path: Path, layout: OciLayout, cache: BlobCache, name: str = "rootfs.tgz") -> dict:
    output = tmp_path / name
    export_rootfs(f"oci:{layout.root}:app", output, options=ExportOptions(cache=cache))
    return rootfs_listing(output)


def test_a_tar_planted_at_a_valid_cache_path_is_not_a_hit(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([genuine_layer()]), tag="app")
    planted = blob_cache.layer_path(sha256(genuine_layer()))
    planted.parent.mkdir(parents=True)
    planted.write_bytes(host_secret_tar())  # the right name, the wrong content, no record of verification

    listing = exported_listing(tmp_path, layout, blob_cache)

    assert "etc/genuine" in listing and "etc/host-secret" not in listing
    assert planted.read_bytes() == genuine_layer()  # replaced by the verified copy


def test_a_symlink_at_a_cache_path_is_not_a_hit(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([genuine_layer()]), tag="app")
    exported_listing(tmp_path, layout, blob_cache, "first.tgz")  # a genuine, recorded entry
    path = blob_cache.layer_path(sha256(genuine_layer()))
    (tmp_path / "host.tar").write_bytes(host_secret_tar())
    path.unlink()
    path.symlink_to(tmp_path / "host.tar")

    listing = exported_listing(tmp_path, layout, blob_cache)

    assert "etc/genuine" in listing and "etc/host-secret" not in listing
    assert not path.is_symlink()


def test_a_cached_tar_whose_size_changed_since_it_was_recorded_is_not_a_hit(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([genuine_layer()]), tag="app")
    exported_listing(tmp_path, layout, blob_cache, "first.tgz")
    path = blob_cache.layer_path(sha256(genuine_layer()))
    path.write_bytes(host_secret_tar() + bytes(1024))  # e.g. rewritten by something else

    listing = exported_listing(tmp_path, layout, blob_cache)

    assert "etc/genuine" in listing and "etc/host-secret" not in listing


def test_a_verified_layer_is_reused_without_reading_the_blob_again(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    descriptor = layout.add(layout.image([genuine_layer()]), tag="app")
    exported_listing(tmp_path, layout, blob_cache, "first.tgz")
    manifest = json.loads((layout.root / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes())
    (layout.root / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]).unlink()

    assert "etc/genuine" in exported_listing(tmp_path, layout, blob_cache)


# --- bounded decompression ------------------------------------------------------------------------


def test_a_zstd_bomb_is_stopped_at_max_layer_size_while_it_decompresses(tmp_path: Path) -> None:
    bomb = zero_bomb(256 * MiB)
    assert len(bomb) < 64 * 1024
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([bomb], compression="none", diff_ids=[sha256(b"not this")]), tag="app")
    with small_tmpfs(tmp_path / "small", "32m") as small:  # writing the whole bomb would fill it
        result = CliRunner().invoke(cli, ["export", f"oci:{layout.root}:app", "-o", str(tmp_path / "rootfs.tgz"),
                                          "--cache-dir", str(small / "cache"), "--max-layer-size", "1M", "-q"])
        leftovers = [p.name for p in (small / "cache").rglob("*") if p.is_file()]

    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"error: oci:{layout.root}:app: blob {sha256(bomb)}: the layer decompresses to "
                                    "more than 1048576 bytes (the --max-layer-size limit); stopped there")
    assert leftovers == []


def test_a_gzip_bomb_from_a_registry_is_stopped_and_not_retried(lying: LyingRegistry, tmp_path: Path) -> None:
    bomb = zero_bomb(64 * MiB, "gzip")
    lying.image("evil/bomb", "v1", config=config_for([sha256(b"not this")]), layers=[bomb])
    cache = BlobCache(tmp_path / "cache", max_layer_size=2 * MiB)

    with pytest.raises(BlobError, match=r"decompresses to more than 2097152 bytes"):
        pull(lying, "evil/bomb:v1", cache)

    assert lying.count(f"/blobs/{digest_of(bomb)}") == 1
    assert [p for p in cache.root.rglob("*") if p.is_file()] == []


def test_a_bomb_inside_a_docker_save_file_is_stopped(tmp_path: Path) -> None:
    bomb = zero_bomb(64 * MiB)
    archive = tmp_path / "image.tar"
    archive.write_bytes(oci_docker_save([bomb]))
    cache = BlobCache(tmp_path / "cache", max_layer_size=MiB)

    with pytest.raises(BlobError, match=r"decompresses to more than 1048576 bytes"):
        read_docker_archive(archive, platform=DEFAULT_PLATFORM, cache=cache)


def test_max_layer_size_must_be_a_size() -> None:
    result = CliRunner().invoke(cli, ["export", "oci:/nowhere", "-o", "x.tgz", "--max-layer-size", "lots"])
    assert result.exit_code == 2
    assert "'lots' is not a positive size such as 512M or 64G" in result.output


# --- a lying registry ---------------------------------------------------------------------------------


def test_a_registry_config_whose_diff_id_climbs_out_of_the_cache_is_refused(lying: LyingRegistry, tmp_path: Path,
                                                                         blob_cache: BlobCache) -> None:
    escape = plant_host_file(tmp_path, blob_cache)
    lying.image("evil/escape", "v1", config=config_for([escape]), layers=[compress(genuine_layer(), "gzip")])

    with pytest.raises(ImageError, match=r"rootfs\.diff_ids\[0\]: '\.\./\.\./host/secret' is not of the form"):
        pull(lying, "evil/escape:v1", blob_cache)

    assert lying.count("/blobs/") == 1  # the config; no layer was fetched, nothing was looked up


@pytest.mark.parametrize("diff_id", [{"sha256": "x"}, 12, None])
def test_a_registry_config_with_a_non_string_diff_id_is_an_error_naming_it(lying: LyingRegistry,
                                                                           blob_cache: BlobCache, diff_id) -> None:
    lying.image("evil/typed", "v1", config=config_for([diff_id]), layers=[compress(genuine_layer(), "gzip")])

    with pytest.raises(ImageError, match=r"^127\.0\.0\.1:\d+/evil/typed:v1: config of manifest sha256:\w+ "
                                         r"rootfs\.diff_ids\[0\]: .* is not a string$"):
        pull(lying, "evil/typed:v1", blob_cache)


@pytest.mark.parametrize("bad", ["sha256:../../../v2/other/manifests/x", "sha256:" + "A" * 64, "sha1:" + "a" * 40])
def test_registry_layer_and_index_digests_are_checked_before_any_request(lying: LyingRegistry, blob_cache: BlobCache,
                                                                         bad: str) -> None:
    layer = compress(genuine_layer(), "gzip")
    lying.image("evil/layer", "v1", config=config_for([sha256(genuine_layer())]), layers=[layer], layer_digests=[bad])
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": bad, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}}]}
    lying.manifest("evil/index", "v1", index, "application/vnd.oci.image.index.v1+json")

    with pytest.raises(ImageError, match=r"manifest sha256:\w+ layer 1 digest: "):
        pull(lying, "evil/layer:v1", blob_cache)
    with pytest.raises(ImageError, match=r"manifest list sha256:\w+ entry 1 digest: "):
        pull(lying, "evil/index:v1", blob_cache)

    assert [path for path in lying.requests if "/blobs/" in path and "sha256:" not in path.split("/blobs/")[1][:7]] == []
    assert lying.count(bad) == 0


def test_a_malformed_docker_content_digest_header_is_refused(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    lying.image("evil/header", "v1", config=config_for([sha256(genuine_layer())]),
                layers=[compress(genuine_layer(), "gzip")])
    lying.replies["/v2/evil/header/manifests/v1"].headers["Docker-Content-Digest"] = "sha256:../../x"

    with pytest.raises(ImageError, match=r"Docker-Content-Digest header: 'sha256:\.\./\.\./x' is not of the form"):
        pull(lying, "evil/header:v1", blob_cache)


@pytest.mark.parametrize("config, manifest_change, message", [
    ({"rootfs": "layers"}, None, r"config of manifest sha256:\w+ has no rootfs.diff_ids list"),
    ({"rootfs": {"diff_ids": "sha256:x"}}, None, r"has no rootfs.diff_ids list"),
    (None, {"layers": {"not": "a list"}}, r"manifest sha256:\w+ has no list of layers"),
    (None, {"layers": [{"digest": "sha256:" + "a" * 64, "size": True}]}, r"layer 1 sha256:a+: size True is not"),
    (None, {"layers": [["not", "an", "object"]]}, r"layer 1 is not a descriptor object"),
])
def test_registry_documents_of_the_wrong_shape_are_image_errors(lying: LyingRegistry, blob_cache: BlobCache,
                                                                config, manifest_change, message) -> None:
    manifest = lying.image("evil/shape", "v1", config={**config_for([]), **(config or {})}, layers=[])
    if manifest_change:
        lying.manifest("evil/shape", "v1", {**manifest, **manifest_change})

    with pytest.raises(ImageError, match=message):
        pull(lying, "evil/shape:v1", blob_cache)


@pytest.mark.parametrize("entries", [[1, 2], "all of them", [{"platform": {"os": "linux", "architecture": "amd64"}}]])
def test_a_registry_index_with_malformed_entries_is_an_image_error(lying: LyingRegistry, blob_cache: BlobCache,
                                                                   entries) -> None:
    lying.manifest("evil/index", "v1", {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                        "manifests": entries}, "application/vnd.oci.image.index.v1+json")

    with pytest.raises(ImageError, match=r"manifest list sha256:\w+ (has no list of manifests|entry 1 )"):
        pull(lying, "evil/index:v1", blob_cache)


def test_a_registry_manifest_nested_beyond_the_recursion_limit_is_an_image_error(lying: LyingRegistry,
                                                                                 blob_cache: BlobCache) -> None:
    lying.manifest("evil/deep", "v1", b"[" * 200_000 + b"]" * 200_000)

    with pytest.raises(ImageError, match=r"manifest v1 is not valid JSON"):
        pull(lying, "evil/deep:v1", blob_cache)


def test_a_registry_error_body_nested_beyond_the_recursion_limit_is_the_status_alone(lying: LyingRegistry,
                                                                                     blob_cache: BlobCache) -> None:
    """The error body is read as every document from outside is (jsonpos): no RecursionError traceback."""
    lying.replies["/v2/evil/deep-error/manifests/v1"] = Reply(status=404, body=b"[" * 60_000)

    with pytest.raises(ImageError, match=r"manifest v1 not found on registry \S+ \(404 Not Found\)$"):
        pull(lying, "evil/deep-error:v1", blob_cache)


def test_a_token_answer_nested_beyond_the_recursion_limit_is_an_answer_without_a_token(lying: LyingRegistry,
                                                                                       blob_cache: BlobCache) -> None:
    lying.replies["/v2/evil/deep-token/manifests/v1"] = Reply(status=401, headers={
        "WWW-Authenticate": f'Bearer realm="{lying.url}/token",service="evil"'})
    lying.replies["/token"] = Reply(body=b"[" * 200_000)

    with pytest.raises(ImageError, match=r"answered without a token"):
        pull(lying, "evil/deep-token:v1", blob_cache)


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "ftp://127.0.0.1/token", "not a url"])
def test_a_token_realm_that_is_not_http_is_an_image_error(lying: LyingRegistry, blob_cache: BlobCache, realm: str) -> None:
    lying.replies["/v2/evil/realm/manifests/v1"] = Reply(status=401, headers={
        "WWW-Authenticate": f'Bearer realm="{realm}",service="evil"'})

    with pytest.raises(ImageError, match=r"token server .*: the registry sent us to a URL that is not http\(s\)"):
        pull(lying, "evil/realm:v1", blob_cache)


def serve_genuine(lying: LyingRegistry, repository: str, **blob_reply) -> bytes:
    """An honest image whose one layer blob is served with `blob_reply` (trickle, stall, redirect...)."""
    tar = tar_of(entry("etc/data", os.urandom(4096)))
    layer = compress(tar, "gzip")
    lying.image(repository, "v1", config=config_for([sha256(tar)]), layers=[layer])
    lying.replies[f"/v2/{repository}/blobs/{digest_of(layer)}"] = Reply(body=layer, **blob_reply)
    return layer


def pull_in_thread(lying: LyingRegistry, name: str, cache: BlobCache, limits: TransferLimits,
                   give_up_after: float = 30.0) -> BaseException | object:
    """The pull's result or error; fails the test if the pull is still running after `give_up_after` s."""
    return outcome_within(lambda: pull(lying, name, cache, limits), give_up_after)[0]


@pytest.mark.parametrize("codec, split", [("gzip", 1), ("zstd", 3)])
def test_a_blob_whose_magic_bytes_arrive_apart_is_still_recognised(lying: LyingRegistry, blob_cache: BlobCache,
                                                                   codec: str, split: int) -> None:
    """Layers are read from the connection unbuffered: a first read may hold less than the magic."""
    tar = tar_of(entry("etc/data", os.urandom(4096)))
    layer = compress(tar, codec)
    lying.image("slow/magic", "v1", config=config_for([sha256(tar)]), layers=[layer])
    reply = Reply(body=layer, stall_after=split)
    lying.replies[f"/v2/slow/magic/blobs/{digest_of(layer)}"] = reply
    threading.Timer(0.3, reply.release.set).start()

    image = pull(lying, "slow/magic:v1", blob_cache)

    assert image.layers[0].tar_path.read_bytes() == tar
    assert lying.count(f"/blobs/{digest_of(layer)}") == 1


def test_a_registry_that_trickles_a_blob_is_given_up_at_the_deadline(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    layer = serve_genuine(lying, "slow/trickle", trickle=0.02)  # ~50 bytes/s: every read well within its timeout
    limits = TransferLimits(connect_timeout=5, read_timeout=5, min_rate=100 * 1024, floor=1.0)

    outcome = pull_in_thread(lying, "slow/trickle:v1", blob_cache, limits)

    assert isinstance(outcome, BlobError), outcome
    assert outcome.digest == digest_of(layer)
    assert "not received within 1 s" in outcome.reason and "too slow or has stalled" in outcome.reason
    assert lying.count(f"/blobs/{digest_of(layer)}") == 1


def test_a_registry_that_stalls_mid_blob_is_retried_then_given_up(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    layer = serve_genuine(lying, "slow/stall", stall_after=100)
    limits = TransferLimits(connect_timeout=5, read_timeout=0.5, min_rate=100 * 1024, floor=60)

    outcome = pull_in_thread(lying, "slow/stall:v1", blob_cache, limits)

    assert isinstance(outcome, ImageError), outcome
    assert "gave up after 3 attempts" in str(outcome) and "timed out" in str(outcome)
    assert lying.count(f"/blobs/{digest_of(layer)}") == 3


def test_stalls_that_outlast_the_deadline_end_the_retries(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    layer = serve_genuine(lying, "slow/deadline", stall_after=10)
    limits = TransferLimits(connect_timeout=5, read_timeout=0.4, min_rate=100 * 1024, floor=0.6)

    outcome = pull_in_thread(lying, "slow/deadline:v1", blob_cache, limits)

    assert isinstance(outcome, BlobError) and "not received within 1 s" in outcome.reason, outcome
    assert lying.count(f"/blobs/{digest_of(layer)}") < QUICK_RETRY.attempts


@pytest.mark.parametrize("location, reason", [
    ("file:///etc/passwd", "sent us to a URL that is not http(s)"),
    ("ftp://127.0.0.1/blob", "sent us to a URL that is not http(s)"),
    ("gopher://127.0.0.1/blob", "sent us to a URL that is not http(s)"),
])
def test_a_blob_redirect_to_another_scheme_is_a_blob_error(lying: LyingRegistry, blob_cache: BlobCache,
                                                           location: str, reason: str) -> None:
    layer = serve_genuine(lying, "evil/redirect", status=302, headers={"Location": location})

    with pytest.raises(BlobError) as failure:
        pull(lying, "evil/redirect:v1", blob_cache)

    assert failure.value.digest == digest_of(layer)
    assert reason in failure.value.reason


def test_a_blob_redirect_loop_is_a_blob_error(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    layer = compress(genuine_layer(), "gzip")
    lying.image("evil/loop", "v1", config=config_for([sha256(genuine_layer())]), layers=[layer])
    path = f"/v2/evil/loop/blobs/{digest_of(layer)}"
    lying.replies[path] = Reply(status=302, headers={"Location": f"http://{lying.host}{path}?again"})

    with pytest.raises(BlobError, match=r"redirected more than 5 times \(a redirect loop\?\)"):
        pull(lying, "evil/loop:v1", blob_cache)

    assert lying.count(path) == 6


def test_a_manifest_redirect_to_a_file_url_is_an_image_error(lying: LyingRegistry, blob_cache: BlobCache) -> None:
    lying.replies["/v2/evil/manifest/manifests/v1"] = Reply(status=301, headers={"Location": "file:///etc/passwd"})

    with pytest.raises(ImageError, match=r"evil/manifest:v1: GET .*/manifests/v1: the registry sent us to a URL "
                                         r"that is not http\(s\)"):
        pull(lying, "evil/manifest:v1", blob_cache)


# --- a full disk ----------------------------------------------------------------------------------


def incompressible_layout(tmp_path: Path, size: int) -> OciLayout:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([tar_of(entry("data/random", os.urandom(size)))]), tag="app")
    return layout


def test_a_full_disk_under_the_rootfs_tarball_is_one_line_naming_it(tmp_path: Path) -> None:
    layout = incompressible_layout(tmp_path, 6 * MiB)
    with small_tmpfs(tmp_path / "small", "2m") as small:
        output = small / "out" / "rootfs.tgz"
        result = CliRunner().invoke(cli, ["export", f"oci:{layout.root}:app", "-o", str(output),
                                          "--cache-dir", str(tmp_path / "cache"), "-q"])
        left = [p.name for p in small.rglob("*") if p.is_file()]

    assert (result.exit_code, result.output) == (2, f"error: cannot write {output}: No space left on device\n")
    assert left == []


def test_a_full_disk_under_the_cache_is_one_line_naming_it(tmp_path: Path) -> None:
    layout = incompressible_layout(tmp_path, 6 * MiB)
    with small_tmpfs(tmp_path / "small", "2m") as small:
        result = CliRunner().invoke(cli, ["export", f"oci:{layout.root}:app", "-o", str(tmp_path / "rootfs.tgz"),
                                          "--cache-dir", str(small / "cache"), "-q"])
        left = [p.name for p in small.rglob("*") if p.is_file()]

    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: cannot write {small / 'cache' / 'layers'}/.layer-")
    assert result.output.endswith(".tmp: No space left on device\n") and result.output.count("\n") == 1
    assert left == []
    assert not (tmp_path / "rootfs.tgz").exists()


def test_an_unwritable_cache_directory_is_an_output_error(tmp_path: Path, blob_cache: BlobCache) -> None:
    blob_cache.root.mkdir()
    blob_cache.layers_dir.write_text("a file where the layers directory should be")
    with pytest.raises(OutputError, match=rf"cannot write {blob_cache.layers_dir}: "):
        blob_cache.store_layer(io.BytesIO(genuine_layer()), image="test", digest=Digest.parse(sha256(genuine_layer())),
                          size=None, media_type="x", diff_id=None)


# --- what a killed run leaves in the cache --------------------------------------------------------


def start_exporter(lying: LyingRegistry, name: str, cache: Path, output: Path) -> subprocess.Popen:
    env = {**os.environ, "DOCKER_CONFIG": str(cache.parent / "docker-config")}
    return subprocess.Popen([sys.executable, "-m", "exchange_cli", "export", f"{lying.host}/{name}", "-o", str(output),
                             "--source", "registry", "--insecure-registry", lying.host, "--cache-dir", str(cache), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_temp_file(cache: Path, process: subprocess.Popen, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((cache / "layers").glob(".layer-*.tmp")) if (cache / "layers").is_dir() else []
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no exporter temp file appeared in {cache} within {timeout} s")


def other_image(lying: LyingRegistry) -> None:
    lying.image("honest/other", "v1", config=config_for([sha256(base_layer())]), layers=[compress(base_layer(), "gzip")])


def test_the_temp_file_of_a_killed_exporter_is_removed_by_the_next_run(lying: LyingRegistry, tmp_path: Path) -> None:
    serve_genuine(lying, "slow/killed", stall_after=1000)
    other_image(lying)
    cache = tmp_path / "cache"
    exporter = start_exporter(lying, "slow/killed:v1", cache, tmp_path / "killed.tgz")
    temp = wait_for_temp_file(cache, exporter)
    exporter.send_signal(signal.SIGKILL)
    exporter.wait(10)
    assert temp.exists()  # what kill -9 leaves behind

    pull(lying, "honest/other:v1", BlobCache(cache))

    assert not temp.exists()
    assert list((cache / "layers").glob(".layer-*")) == []


def test_the_temp_file_of_a_live_exporter_is_left_alone(lying: LyingRegistry, tmp_path: Path) -> None:
    layer = serve_genuine(lying, "slow/live", stall_after=1000)
    other_image(lying)
    cache = tmp_path / "cache"
    exporter = start_exporter(lying, "slow/live:v1", cache, tmp_path / "live.tgz")
    try:
        temp = wait_for_temp_file(cache, exporter)

        pull(lying, "honest/other:v1", BlobCache(cache))  # a concurrent run sweeps the cache
        BlobCache(cache).evict()

        assert temp.exists()
        lying.replies[f"/v2/slow/live/blobs/{digest_of(layer)}"].release.set()
        _, stderr = exporter.communicate(timeout=60)
    finally:
        if exporter.poll() is None:
            exporter.kill()
            exporter.wait()
    assert exporter.returncode == 0, stderr.decode()
    assert "etc/data" in rootfs_listing(tmp_path / "live.tgz")
    assert list((cache / "layers").glob(".layer-*")) == []

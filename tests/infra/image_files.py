"""Image files written by hand, so a test can put anything in them, hostile content included: layer tars,
OCI layouts, docker-save tarballs in both layouts, and a listing of the rootfs tarball an export wrote."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from exchange_cli.image.model import DEFAULT_PLATFORM, Platform


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def tar_of(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A layer tar from (header, content) pairs, written exactly as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
          linkname: str = "", uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid, info.mtime = kind, mode, linkname, uid, gid, 1_600_000_000
    if kind != tarfile.REGTYPE:
        data = None
    elif data is None:
        data = b""
    return info, data


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    return entry(name, kind=tarfile.DIRTYPE, mode=mode)  # type: ignore[return-value]


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "none": "application/vnd.oci.image.layer.v1.tar"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class OciLayout:
    """Writes an OCI image layout by hand, so tests can put anything in it, hostile content included."""

    root: Path
    manifests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.flush()

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers: list[bytes], *, compression: str = "gzip", platform: Platform = DEFAULT_PLATFORM,
              diff_ids: list[str] | None = None) -> dict:
        """Write config, layers and manifest; returns the manifest's descriptor (not yet in index.json)."""
        config = {"architecture": platform.architecture, "os": platform.os,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(layer) for layer in layers]},
                  "config": {"Env": ["PATH=/bin"]}}
        if platform.variant:
            config["variant"] = platform.variant
        config_descriptor = self.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        layer_descriptors = [self.blob(compress(layer, compression), LAYER_TYPES[compression]) for layer in layers]
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                    "layers": layer_descriptors}
        descriptor = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        descriptor["platform"] = {"os": platform.os, "architecture": platform.architecture,
                                  **({"variant": platform.variant} if platform.variant else {})}
        return descriptor

    def nested_index(self, descriptors: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return self.blob(json.dumps(index).encode(), OCI_INDEX)

    def add(self, descriptor: dict, tag: str | None = None) -> dict:
        descriptor = dict(descriptor)
        if tag is not None:
            descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.manifests.append(descriptor)
        self.flush()
        return descriptor

    def flush(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        (self.root / "index.json").write_text(json.dumps(index))


def base_layer() -> bytes:
    return tar_of(directory("bin"), entry("bin/hello", b"hello\n", mode=0o755), directory("etc"),
                  entry("etc/os-release", b"ID=test\n"))


def second_layer() -> bytes:
    return tar_of(directory("etc"), entry("etc/motd", b"welcome\n"), entry("etc/.wh.os-release"))


def legacy_docker_save(layers: list[bytes], *, config_first: bool = False, repeat_last: bool = False,
                       repo_tags: list[str] | None = None) -> bytes:
    """A docker-save tarball in Docker 20.10's legacy layout, members in the order a test asks for."""
    layer_list = layers + ([layers[-1]] if repeat_last else [])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layer_list]}}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_dirs = [f"{index:064x}" for index in range(1, len(layer_list) + 1)]
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for position, layer_dir in enumerate(layer_dirs):
        members.append(directory(layer_dir))
        members.append(entry(f"{layer_dir}/VERSION", b"1.0"))
        members.append(entry(f"{layer_dir}/json", b"{}"))
        if repeat_last and position == len(layer_dirs) - 1:
            members.append(entry(f"{layer_dir}/layer.tar", kind=tarfile.SYMTYPE,
                                 linkname=f"../{layer_dirs[position - 1]}/layer.tar"))
        else:
            members.append(entry(f"{layer_dir}/layer.tar", layer_list[position]))
    manifest = json.dumps([{"Config": config_name, "RepoTags": repo_tags or ["example/app:1"],
                            "Layers": [f"{d}/layer.tar" for d in layer_dirs]}]).encode()
    config_member = [entry(config_name, config)]
    tail = [entry("manifest.json", manifest), entry("repositories", b"{}")]
    return tar_of(*(config_member + members + tail if config_first else members + config_member + tail))


def oci_docker_save(layers: list[bytes]) -> bytes:
    """A docker-save tarball as Docker 25 and later write it: an OCI layout plus a legacy manifest.json."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]}}).encode()
    blobs = {sha256(data).split(":")[1]: data for data in [config, *layers]}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                           "size": len(config)},
                "layers": [{"mediaType": LAYER_TYPES["none"], "digest": sha256(layer), "size": len(layer)}
                           for layer in layers]}
    manifest_bytes = json.dumps(manifest).encode()
    blobs[sha256(manifest_bytes).split(":")[1]] = manifest_bytes
    members = [directory("blobs"), directory("blobs/sha256")]
    members += [entry(f"blobs/sha256/{hex_digest}", data) for hex_digest, data in sorted(blobs.items())]
    members.append(entry("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest_bytes), "size": len(manifest_bytes)}]}).encode()))
    members.append(entry("manifest.json", json.dumps([{
        "Config": f"blobs/sha256/{sha256(config).split(':')[1]}", "RepoTags": ["example/app:1"],
        "Layers": [f"blobs/sha256/{sha256(layer).split(':')[1]}" for layer in layers]}]).encode()))
    members.append(entry("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'))
    return tar_of(*members)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def rootfs_listing(path: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """path -> (type, content or link target) of a rootfs tarball."""
    listing = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            name = member.name.removeprefix("./").rstrip("/")
            if member.isfile():
                listing[name] = ("file", archive.extractfile(member).read())
            elif member.issym():
                listing[name] = ("symlink", member.linkname)
            elif member.islnk():
                listing[name] = ("hardlink", member.linkname.removeprefix("./"))
            elif member.isdir():
                listing[name] = ("dir", None)
            else:
                listing[name] = (f"type {member.type!r}", None)
    return listing

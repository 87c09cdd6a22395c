"""A small gear image, built as an OCI image layout without a daemon, for `exchange demo`.

Built byte-for-byte the same every time (fixed mtimes, owners and order), so the demo's rootfs hash
is stable from machine to machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EPOCH = 1_700_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

RUN_SCRIPT = b"""#!/bin/sh
# Greets whoever config.json names, in the output directory.
set -eu
name=$(sed -n 's/.*"name": *"\\([^"]*\\)".*/\\1/p' /flywheel/v0/config.json)
echo "Hello, ${name:-world}!" > /flywheel/v0/output/greeting.txt
"""

BUSYBOX_STAND_IN = b"#!/bin/sh\n# A stand-in for busybox: the demo image is exported, never run.\nexit 0\n"
DEMO_TOOLS = ("bash", "sed", "sh", "wc")


@dataclass(frozen=True)
class Entry:
    path: str
    data: bytes | None = None  # None: a directory
    mode: int = 0o644
    link: str | None = None


def layer_tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            if entry.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                tar.addfile(info)
            elif entry.data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), entry.mode
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def write_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def build_demo_image(layout: Path, reference: str, gear: dict[str, Any], *,
                     data: dict[str, bytes] | None = None) -> str:
    """Add an image named `reference` to the OCI layout at `layout`; returns its manifest digest.
    `data`: more files (path -> content) in a third layer, to make a bigger image."""
    # Shaped like a busybox base, so the image passes the conformance checks (bash, the commands on
    # PATH); the demo is never run, so the multi-call binary is only a stand-in.
    tools = [Entry(f"bin/{tool}", link="busybox") for tool in DEMO_TOOLS]
    base = layer_tar([Entry("bin/"), Entry("bin/busybox", BUSYBOX_STAND_IN, 0o755), *tools, Entry("etc/"),
                      Entry("etc/os-release", b'NAME="Exchange demo"\nID=demo\n'),
                      Entry("tmp/"), Entry("usr/"), Entry("usr/bin/"), Entry("usr/bin/env", link="../../bin/sh")])
    gear_layer = layer_tar([Entry("flywheel/"), Entry("flywheel/v0/"), Entry("flywheel/v0/output/"),
                            Entry("flywheel/v0/run", RUN_SCRIPT, 0o755),
                            Entry("flywheel/v0/manifest.json", (json.dumps(gear, indent=4) + "\n").encode())])
    layers = []
    diff_ids = []
    extra = [layer_tar([Entry(path, content) for path, content in data.items()])] if data else []
    for tar in (base, gear_layer, *extra):
        compressed = gzip.compress(tar, mtime=0)
        layers.append(descriptor(OCI_LAYER_GZIP, write_blob(layout, compressed), len(compressed)))
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "WorkingDir": "/flywheel/v0"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, write_blob(layout, config), len(config)), "layers": layers,
    }, sort_keys=True).encode()
    manifest_digest = write_blob(layout, manifest)
    add_to_index(layout, descriptor(OCI_MANIFEST, manifest_digest, len(manifest),
                                    annotations={"org.opencontainers.image.ref.name": reference},
                                    platform={"architecture": "amd64", "os": "linux"}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def add_to_index(layout: Path, entry: dict[str, Any]) -> None:
    """One entry per reference name: adding a name again replaces its image."""
    index_path = layout / "index.json"
    index: dict[str, Any] = (json.loads(index_path.read_text()) if index_path.exists()
                             else {"schemaVersion": 2, "manifests": []})
    name = entry["annotations"]["org.opencontainers.image.ref.name"]
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name] + [entry]
    index_path.write_text(json.dumps(index, indent=2))

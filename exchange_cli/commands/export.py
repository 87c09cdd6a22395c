"""`exchange export IMAGE -o rootfs.tgz`: an image's flattened root filesystem as a deterministic tarball."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import click

from ..durable import write_atomically
from ..errors import UsageError, writing
from ..export import ExportResult, export_rootfs
from ..progress import format_bytes
from .conventions import command_progress, file_or_stdout, format_option, report_stream, verbosity_options
from .options import export_options, export_options_from


@click.command("export")
@click.argument("image")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the gzip-compressed rootfs tarball (- for standard output).")
@click.option("--sbom", "sbom_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rootfs's SBOM (CycloneDX 1.6 JSON) to this file, collected in the same pass.")
@export_options
@format_option("text", "json", default="text")
@verbosity_options
def command(image: str, output: Path, output_format: str, sbom_path: Path | None, **option_values: Any) -> None:
    """Export IMAGE's root filesystem, all layers applied, to a byte-reproducible .tgz; print its sha384.

    IMAGE is a reference (registry or Docker engine, see --source), docker-archive:PATH[:REPO:TAG]
    (a `docker save` file) or oci:PATH[:TAG] (an OCI image layout).
    """
    options = export_options_from(**option_values)
    if sbom_path is not None and str(sbom_path) == "-":
        raise UsageError("--sbom: give a file; standard output is for the tarball or the report")
    with file_or_stdout(output) as path, command_progress() as progress:
        progress.expect(1, ("fetch", "write"))  # one image, fetched and written: its bar is full once written
        result = dataclasses.replace(export_rootfs(image, path, options=options, progress=progress,
                                                   sbom=sbom_path is not None), output=output)
    if sbom_path is not None and result.sbom is not None:
        with writing(sbom_path):
            write_atomically(sbom_path, result.sbom)
    click.echo(render_json(result, sbom_path) if output_format == "json" else render_text(result, sbom_path),
               file=report_stream(output))


def render_text(result: ExportResult, sbom_path: Path | None = None) -> str:
    lines = [
        f"{result.output}",
        f"  sha384:{result.sha384}",
        f"  size:   {format_bytes(result.size)} ({result.size} bytes, {result.entries} entries)",
        f"  image:  {result.image_digest}",
        f"  platform: {result.image.platform}",
    ]
    if sbom_path is not None and result.sbom is not None:
        lines.append(f"  sbom:   {sbom_path} ({_component_count(result.sbom)} components)")
    return "\n".join(lines)


def _component_count(document: bytes) -> int:
    return len(json.loads(document).get("components", []))


def _sbom_json(result: ExportResult, sbom_path: Path | None) -> dict[str, Any] | None:
    if sbom_path is None or result.sbom is None:
        return None
    return {"output": str(sbom_path), "sha256": f"sha256:{hashlib.sha256(result.sbom).hexdigest()}",
            "components": _component_count(result.sbom)}


def render_json(result: ExportResult, sbom_path: Path | None = None) -> str:
    image = result.image
    return json.dumps({
        "output": str(result.output),
        "sha384": f"sha384:{result.sha384}",
        "size": result.size,
        "entries": result.entries,
        "image": {
            "reference": image.reference,
            "digest": result.image_digest,
            "pinned-reference": image.pinned_reference,
            "manifest-digest": image.manifest_digest,
            "config-digest": image.config_digest,
            "platform": str(image.platform),
            "layers": [layer.diff_id for layer in image.layers],
        },
        "sbom": _sbom_json(result, sbom_path),
    }, indent=2)

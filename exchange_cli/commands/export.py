"""`exchange export IMAGE -o rootfs.tgz`: an image's flattened root filesystem as a deterministic tarball."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from ..export import ExportResult, export_rootfs
from ..progress import format_bytes
from .conventions import command_progress, file_or_stdout, format_option, report_stream, verbosity_options
from .options import export_options, export_options_from


@click.command("export")
@click.argument("image")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the gzip-compressed rootfs tarball (- for standard output).")
@export_options
@format_option("text", "json", default="text")
@verbosity_options
def command(image: str, output: Path, output_format: str, **option_values: Any) -> None:
    """Export IMAGE's root filesystem, all layers applied, to a byte-reproducible .tgz; print its sha384.

    IMAGE is a reference (registry or Docker engine, see --source), docker-archive:PATH[:REPO:TAG]
    (a `docker save` file) or oci:PATH[:TAG] (an OCI image layout).
    """
    options = export_options_from(**option_values)
    with file_or_stdout(output) as path, command_progress() as progress:
        progress.expect(1, ("fetch", "write"))  # one image, fetched and written: its bar is full once written
        result = dataclasses.replace(export_rootfs(image, path, options=options, progress=progress), output=output)
    click.echo(render_json(result) if output_format == "json" else render_text(result), file=report_stream(output))


def render_text(result: ExportResult) -> str:
    return "\n".join([
        f"{result.output}",
        f"  sha384:{result.sha384}",
        f"  size:   {format_bytes(result.size)} ({result.size} bytes, {result.entries} entries)",
        f"  image:  {result.image_digest}",
        f"  platform: {result.image.platform}",
    ])


def render_json(result: ExportResult) -> str:
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
    }, indent=2)

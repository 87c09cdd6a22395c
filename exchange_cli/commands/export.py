"""`exchange export IMAGE -o rootfs.tgz`: an image's flattened root filesystem as a deterministic tarball
and/or squashfs image (`--artifact`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..durable import write_atomically
from ..errors import UsageError, writing
from ..progress import format_bytes
from ..quoting import printable
from ..rootfs import ARTIFACTS
from .conventions import command_progress, file_or_stdout, format_option, report_stream, verbosity_options
from .options import allow_untested_squashfs_option, export_options, export_options_from

if TYPE_CHECKING:
    from ..export import ExportResult, SquashfsImage

# The files --output-dir gets, by artifact.
FILE_NAMES = {"tarball": "rootfs.tgz", "squashfs": "rootfs.sqfs"}


@click.command("export")
@click.argument("image")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the artifact (- for standard output): the gzip-compressed rootfs tarball by default.")
@click.option("--artifact", "artifacts", default="tarball", show_default=True, metavar="tarball,squashfs",
              help="What to write, comma-separated: the .tgz tarball, the squashfs image, or both in one pass "
                   "(both need --output-dir).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each artifact into this directory: rootfs.tgz, rootfs.sqfs.")
@allow_untested_squashfs_option
@click.option("--sbom", "sbom_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rootfs's SBOM (CycloneDX 1.6 JSON) to this file, collected in the same pass.")
@export_options
@format_option("text", "json", default="text")
@verbosity_options
def command(image: str, output: Path | None, artifacts: str, output_dir: Path | None,
            allow_untested_squashfs_tools: bool, output_format: str, sbom_path: Path | None,
            **option_values: Any) -> None:
    """Export IMAGE's root filesystem, all layers applied, to a byte-reproducible .tgz; print its sha384.

    IMAGE is a reference (registry or Docker engine, see --source), docker-archive:PATH[:REPO:TAG]
    (a `docker save` file) or oci:PATH[:TAG] (an OCI image layout). `--artifact squashfs` writes a
    mountable squashfs image of the same tree instead (docs/squashfs.md); `--artifact tarball,squashfs`
    writes both from one pass.
    """
    targets = _targets(_artifacts(artifacts), output, output_dir)
    if sbom_path is not None and str(sbom_path) == "-":
        raise UsageError("--sbom: give a file; standard output is for the tarball or the report")
    if sbom_path is not None and "tarball" not in targets:
        raise UsageError("--sbom: the SBOM describes the tarball: add tarball to --artifact")
    from ..sbom.renderer import child_started_early

    # Started before the exporter is imported, so that its own start overlaps this process's (renderer.py)
    with child_started_early(sbom_path is not None) as sbom_child:
        # the exporter, imported when the command runs (commands/__init__.py)
        from ..export import SquashfsRequest, export_rootfs
        from ..rootfs.squashfs import find_tar2sqfs

        options = export_options_from(**option_values)
        tool = find_tar2sqfs(allow_untested=allow_untested_squashfs_tools) if "squashfs" in targets else None
        with ExitStack() as stack, command_progress() as progress:
            # -o -: the artifact is written to a temporary file, copied to standard output once complete
            paths = {name: stack.enter_context(file_or_stdout(path)) for name, path in targets.items()}
            progress.expect(1, ("fetch", "write"))  # one image, fetched and written: its bar is full once written
            squashfs = SquashfsRequest(paths["squashfs"], tool) if tool is not None else None
            result = export_rootfs(image, paths.get("tarball"), options=options, progress=progress,
                                   sbom=sbom_path is not None, sbom_child=sbom_child, squashfs=squashfs)
    result = _shown_as(result, targets)
    if sbom_path is not None and result.sbom is not None:
        with writing(sbom_path):
            write_atomically(sbom_path, result.sbom)
    click.echo(render_json(result, sbom_path) if output_format == "json" else render_text(result, sbom_path),
               file=report_stream(output))


def _artifacts(given: str) -> list[str]:
    names = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARTIFACTS]
    if not names or unknown:
        raise UsageError(f"--artifact: {printable(','.join(unknown) or given)} is not one of {', '.join(ARTIFACTS)}")
    return sorted(set(names), key=ARTIFACTS.index)


def _targets(artifacts: list[str], output: Path | None, output_dir: Path | None) -> dict[str, Path]:
    """Where each artifact goes: -o for one artifact, --output-dir for any."""
    if (output is None) == (output_dir is None):
        raise UsageError("give -o FILE (one artifact) or --output-dir DIR, not both and not neither")
    if output is not None:
        if len(artifacts) > 1:
            raise UsageError(f"--artifact {','.join(artifacts)}: more than one file needs --output-dir, not -o")
        return {artifacts[0]: output}
    assert output_dir is not None
    return {name: output_dir / FILE_NAMES[name] for name in artifacts}


def _shown_as(result: ExportResult, targets: dict[str, Path]) -> ExportResult:
    """The report names the paths as given (-o - included), not the temporary file behind standard output."""
    tarball = dataclasses.replace(result.tarball, output=targets["tarball"]) if result.tarball else None
    squashfs = dataclasses.replace(result.squashfs, output=targets["squashfs"]) if result.squashfs else None
    return dataclasses.replace(result, tarball=tarball, squashfs=squashfs)


def render_text(result: ExportResult, sbom_path: Path | None = None) -> str:
    lines = []
    for written in (result.tarball, result.squashfs):
        if written is not None:
            lines += [f"{written.output}",
                      f"  sha384:{written.sha384}",
                      f"  size:   {format_bytes(written.size)} ({written.size} bytes, {result.entries} entries)"]
    if result.squashfs is not None:
        lines.append(f"  made by: {result.squashfs.tool} ({result.squashfs.settings})")
    lines += [f"  image:  {result.image_digest}", f"  platform: {result.image.platform}"]
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
    tarball = result.tarball
    return json.dumps({
        # The tarball's, as before the squashfs image existed; null when only the image was written.
        "output": str(tarball.output) if tarball else None,
        "sha384": f"sha384:{tarball.sha384}" if tarball else None,
        "size": tarball.size if tarball else None,
        "entries": result.entries,
        "squashfs": _squashfs_json(result.squashfs),
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


def _squashfs_json(image: SquashfsImage | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {"output": str(image.output), "sha384": f"sha384:{image.sha384}", "size": image.size,
            "tool": image.tool, "settings": image.settings}

"""`exchange verify`: check a published artifact against its manifest and its signed provenance."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..logs import Verbosity, logger
from ..quoting import printable
from .catalog_options import repo_option
from .conventions import emit_json, exit_with_findings, format_option, verbosity, verbosity_options

LOG = logger("verify")
FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.command("verify")
@click.argument("target", metavar="ORG/NAME[@VERSION] | MANIFEST | URL")
@click.option("--file", "artifact_file", type=FILE, help="The rootfs tarball, instead of downloading the rootfs-url.")
@click.option("--attestation", "attestation_file", type=FILE, help="The .intoto.jsonl envelope, instead of downloading the attestation-url.")
@click.option("--sbom", "sbom_file", type=FILE, help="The .sbom.json SBOM, instead of downloading the sbom-url.")
@click.option("--squashfs", "squashfs_file", type=FILE, help="The .sqfs squashfs image, instead of downloading the squashfs-url.")
@click.option("--key", "key_files", type=FILE, multiple=True, help="A trusted public key (PEM); repeatable [default: the exchange's .exchange/keys/*.pub].")
@click.option("--image", "check_image", is_flag=True, help="Also check that the registry still serves the attested image digest.")
@click.option("--allow-unprocessed", is_flag=True, help="Without --key: accept a manifest that no process run committed (the custody check still names who did).")
@click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST", help="Talk plain HTTP to this registry (repeatable).")
@format_option("text", "json", default="text")
@repo_option
@verbosity_options
def command(target: str, artifact_file: Path | None, attestation_file: Path | None, sbom_file: Path | None,
            squashfs_file: Path | None, key_files: tuple[Path, ...],
            check_image: bool, allow_unprocessed: bool, insecure_registries: tuple[str, ...], output_format: str,
            repo: Path | None) -> None:
    """Verify a published version end to end: the rootfs hash against the manifest, the envelope's signature
    against the exchange's key, the statement's subject against the artifact, and its image digest and
    commit against the manifest. Names the first failure; exit 0 only when every check holds."""
    # imported when the command runs (commands/__init__.py)
    from ..fetch.targets import custody_of, resolve_target, trusted_keys
    from ..provenance.report import render_verification, verification_as_json
    from ..provenance.verify import VerifyOptions, verify_published

    resolved = resolve_target(target, repo)
    options = VerifyOptions(trusted_keys(key_files, resolved.root), artifact_file, attestation_file, check_image,
                            tuple(insecure_registries),
                            custody_of(resolved, key_files, allow_unprocessed=allow_unprocessed), sbom_file, squashfs_file)
    for warning in resolved.warnings:  # a yanked version verifies as it did; the warning says why not to use it
        LOG.warning(printable(warning))
    result = verify_published(resolved.manifest, options, target=resolved.shown)
    if output_format == "json":
        emit_json({**verification_as_json(result), "yanked": resolved.yank.as_json() if resolved.yank else None})
    else:
        render_verification(result, sys.stdout, quiet=verbosity() is Verbosity.QUIET)
    exit_with_findings(result.ok)

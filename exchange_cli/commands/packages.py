"""`exchange packages NAME[SPEC]`: which processed versions ship a package, from the published SBOMs alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from ..logs import logger
from ..quoting import printable
from .catalog_options import bucket_option, open_catalog, repo_option
from .conventions import emit_json, exit_with_findings, format_option, verbosity_options
from .options import storage_bucket
from .sbom import table

if TYPE_CHECKING:
    from ..fetch.sbom import Search

LOG = logger("packages")


@click.command("packages")
@click.argument("spec", metavar="NAME[SPEC]")
@format_option("text", "json", default="text")
@bucket_option
@repo_option
@verbosity_options
def command(spec: str, output_format: str, bucket_uri: str | None, repo: Path | None) -> None:
    """List every processed version shipping a package matching NAME[SPEC] (openssl<3.0.13, numpy, pkg:pypi/torch).

    Reads the published SBOMs only, never a rootfs. A version published without an SBOM is named on
    stderr; one whose SBOM cannot be read makes the exit status 1.
    """
    # imported when the command runs (commands/__init__.py)
    from ..fetch.sbom import search_packages
    from ..sbom.query import PackageSpec

    try:
        wanted = PackageSpec.parse(spec)
    except ValueError as error:
        raise UsageError(str(error)) from None
    bucket = storage_bucket(bucket_uri, None) if bucket_uri else None
    found = search_packages(open_catalog(repo)[1], wanted, bucket=bucket)
    for shown in found.without_sbom:
        LOG.warning(printable(f"not searched: {shown} was published without an SBOM"))
    for reason in found.failed.values():
        LOG.error(printable(f"not searched: {reason}"))
    if output_format == "json":
        emit_json(as_json(spec, found))
    else:
        rows = [(hit.reference, hit.component.name, hit.component.version, hit.component.purl) for hit in found.hits]
        click.echo("\n".join(table(("VERSION", "PACKAGE", "PACKAGE VERSION", "PURL"), rows)) if rows else
                   printable(f"no version ships {spec} ({found.searched} SBOMs searched)"))
    exit_with_findings(not found.failed)


def as_json(spec: str, found: Search) -> dict[str, object]:
    return {"spec": spec, "searched": found.searched, "without-sbom": found.without_sbom,
            "failed": [{"version": shown, "reason": reason} for shown, reason in found.failed.items()],
            "matches": [{"version": hit.reference, "ecosystem": hit.component.ecosystem, "name": hit.component.name,
                         "package-version": hit.component.version, "purl": hit.component.purl}
                        for hit in found.hits]}

"""`exchange index`: the global catalog as JSON, as a static site, and published to a branch."""

from __future__ import annotations

from pathlib import Path

import click

from ..durable import write_atomically
from ..errors import ExchangeError, UsageError, writing
from ..logs import logger
from .catalog_options import open_catalog, repo_option
from .conventions import output_option, remember_format, remote_option, verbosity_options

LOG = logger("index")


@click.command("index")
@output_option("the JSON catalog (nothing is written inside the exchange unless you name a file there)")
@click.option("--format", "index_format", type=click.Choice(["json", "legacy"]), default="json", show_default=True,
              callback=remember_format,
              help="json: every entry with its versions (schemas/cli/index.schema.json); legacy: the old pipeline's "
                   "exchange.json (one array of embedded gear specs per gear name).")
@click.option("--html", "html_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the static catalog site into this directory.")
@click.option("--publish-branch", metavar="BRANCH",
              help="Commit the site (with exchange.json) as the whole tree of BRANCH and push it; with --format "
                   "legacy, commit exchange.json alone, keeping the branch's other files.")
@remote_option
@repo_option
@verbosity_options
def command(output: Path | None, index_format: str, html_dir: Path | None, publish_branch: str | None, remote: str,
            repo: Path | None) -> None:
    """Write the catalog: every gear and boutique with its versions, newest first."""
    # imported when the command runs (commands/__init__.py); the legacy catalog, the site and the branch
    # publication (GitPython) only when asked for
    from ..catalog.index import index_text

    exchange, catalog = open_catalog(repo)
    if index_format == "legacy" and html_dir is not None:
        raise UsageError("--html writes the catalog site; it has no legacy format")
    if publish_branch is not None:
        from ..catalog.publish import check_branch

        check_branch(exchange.repo, publish_branch, remote)  # before anything is written
    if index_format == "legacy":
        from ..catalog.legacy import legacy_index, publish_legacy_index

        legacy = legacy_index(catalog.scan, catalog.lifecycle)
        text, count = legacy.text, f"{len(legacy.groups)} gear name(s)"
        for path in legacy.yanked:
            LOG.info(f"left out of the legacy catalog, its version is yanked: {path}")
    else:
        text = index_text(catalog)
        count = f"{len(catalog.entries)} entries"
    if output is not None and str(output) != "-":
        with writing(output, "the catalog"):
            # Served while it is rewritten: the old one or the whole new one. Into an existing directory only.
            write_atomically(output, text, make_parents=False)
        LOG.info(f"wrote {output}: {count}")
    elif output is not None or (html_dir is None and publish_branch is None):
        # Standard output when asked, or when nothing else was: with --html or --publish-branch the
        # JSON goes there, not to the terminal.
        click.echo(text, nl=False)
    if publish_branch is not None and index_format == "legacy":
        publication = publish_legacy_index(exchange.repo, catalog.scan, catalog.lifecycle, branch=publish_branch,
                                           remote=remote,
                                           source_commit=exchange.repo.head.commit.hexsha)
        (LOG.info if publication.ok else LOG.warning)(publication.describe())
        if not publication.ok:
            raise ExchangeError(f"publishing {publish_branch} failed")
        return
    if html_dir is None and publish_branch is None:
        return
    from ..catalog.site import site_files, write_site
    from ..validation.policy import load_policy

    files = site_files(catalog, title=load_policy(exchange.root).catalog_title, root=exchange.root)
    if html_dir is not None:
        with writing(html_dir, "the catalog site"):
            write_site(files, html_dir)
        LOG.info(f"wrote the catalog site to {html_dir}/index.html")
    if publish_branch is not None:
        from ..catalog.publish import publish_files

        head = exchange.repo.head.commit.hexsha[:12]
        outcome = publish_files(exchange.repo, files, branch=publish_branch, remote=remote,
                                message=f"Catalog of {head}")
        state = "committed" if outcome.created_commit else "unchanged at"
        pushed = f", pushed to {remote}" if outcome.pushed else f", {remote} already has it"
        LOG.info(f"{publish_branch}: {state} {outcome.commit[:12]}{pushed}")

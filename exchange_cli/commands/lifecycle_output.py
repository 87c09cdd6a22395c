"""What `exchange yank`, `unyank` and `deprecate` print: the decision, the record, the commit, the push."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..quoting import printable
from .catalog_options import repo_option
from .conventions import Command, emit_json, format_option, remote_option, verbosity_options

if TYPE_CHECKING:
    from ..contrib.lifecycle import LifecycleChange
    from ..repository import Exchange


def decision_options(command: Command) -> Command:
    """The options yank, unyank and deprecate share: --push, --remote, --repo, --format, -q/-v."""
    for option in (verbosity_options, format_option("text", "json", default="text"), repo_option, remote_option,
                   click.option("--push", is_flag=True, help="Also push the commit to --remote's branch of the same name.")):
        command = option(command)
    return command


PAST = {"yank": "yanked", "unyank": "unyanked", "deprecate": "deprecated", "undeprecate": "no longer deprecated"}


def commit_and_report(exchange: Exchange, change: LifecycleChange, *, push: bool, remote: str,
                      output_format: str) -> None:
    from ..contrib.lifecycle import apply_change, push_change

    commit = apply_change(exchange, change)
    branch = push_change(exchange, remote) if push else None
    if output_format == "json":
        emit_json(change_as_json(change, commit, pushed=branch is not None))
        return
    what = change.entry.ref + (f"@{change.version}" if change.version else "")
    reason = f": {change.decision.described()}" if change.decision and change.action in ("yank", "deprecate") else ""
    click.echo(printable(f"{PAST[change.action]} {what}{reason}"))
    state = "deleted" if change.record.empty else "wrote"
    click.echo(printable(f"{state} {change.path}; committed {commit[:12]} {change.message}"))
    click.echo(printable(f"pushed {branch} to {remote}") if branch else
               f"not pushed: `git push` (or --push) shares it with {printable(remote)}")


def change_as_json(change: LifecycleChange, commit: str, *, pushed: bool) -> dict[str, Any]:
    decision = change.decision
    return {"action": change.action, "kind": change.entry.kind.value, "ref": change.entry.ref,
            "version": change.version, "reason": decision.reason if decision else None,
            "by": decision.by if decision else None, "at": decision.at if decision else None,
            "replaced-by": decision.replaced_by if decision else None, "record": change.path,
            "record-deleted": change.record.empty, "commit": commit, "message": change.message, "pushed": pushed}

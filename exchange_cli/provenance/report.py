"""How `exchange verify` shows its result: a few lines of text, or JSON for platforms."""

from __future__ import annotations

from typing import Any, TextIO

from ..quoting import printable
from .verify import Verification


def verification_as_json(result: Verification) -> dict[str, Any]:
    failure = result.failure
    facts = result.facts
    return {
        "verified": result.ok,
        "target": result.target,
        "failure": {"check": failure.name, "reason": failure.detail} if failure else None,
        "checks": [{"check": check.name, "ok": check.ok, "detail": check.detail} for check in result.checks],
        "key-id": result.key.key_id if result.key else None,
        "subject": {"name": facts.subject_name, "digest": facts.subject_digests} if facts else None,
    }


def render_verification(result: Verification, out: TextIO, *, quiet: bool = False) -> None:
    """A line per check, then the verdict; `quiet`: the verdict alone (it names the failing check)."""
    for check in [] if quiet else result.checks:
        out.write(printable(f"  {'ok  ' if check.ok else 'FAIL'} {check.name:<11} {check.detail}") + "\n")
    failure = result.failure
    if failure is None:
        out.write(printable(f"verified: {result.target}") + "\n")
    else:
        out.write(printable(f"NOT verified: {result.target}: {failure.name}: {failure.detail}") + "\n")

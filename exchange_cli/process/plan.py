"""What a process run will do: the changed specs that validate, minus those already processed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExchangeError
from ..quoting import printable
from ..repository import Exchange
from ..specs import SpecKind, SpecLocation, read_spec, spec_image
from ..validation.problems import Report, Status
from ..validation.run import select_spec_paths, validate_specs


class ValidationFailed(ExchangeError):
    """Some selected spec is invalid: nothing is exported, uploaded or committed."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"{report.count(Status.FAILED)} spec(s) failed validation; nothing was processed")
        self.report = report


@dataclass(frozen=True)
class SpecJob:
    relative_path: str
    location: SpecLocation
    name: str
    version: str
    image: str
    spec: dict[str, Any]

    @property
    def kind(self) -> SpecKind:
        return self.location.kind

    @property
    def ref(self) -> str:
        """`ORG/NAME@VERSION`, as every command names a version."""
        return f"{self.location.org}/{self.name}@{self.version}"

    @property
    def title(self) -> str:
        # Logs, progress rows and commit subjects show it: a boutique's free-text name or version is escaped.
        return f"{self.kind.value} {self.location.org}/{printable(self.name)} {printable(self.version)}"

    @property
    def commit_message(self) -> str:
        return f"Process {self.title}"


@dataclass
class Plan:
    source_commit: str
    jobs: list[SpecJob] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)
    report: Report = field(default_factory=Report)


def make_plan(exchange: Exchange, source_commit: str, *, since: str | None = None) -> Plan:
    """Select exactly as `exchange validate` does, validate everything, and fail before any work."""
    paths = select_spec_paths(exchange, [], all_specs=False, since=since)
    report = validate_specs(exchange, paths)
    if not report.ok:
        raise ValidationFailed(report)
    plan = Plan(source_commit, report=report)
    for path, result in zip(paths, report.results, strict=True):  # the checker keeps the order it is given
        relative = exchange.relative(path)
        if result.status is Status.PROCESSED:
            plan.already_processed.append(relative)  # type: ignore[arg-type]
            continue
        plan.jobs.append(_job(path, exchange.root))
    plan.jobs.sort(key=lambda job: job.relative_path)
    return plan


def _job(path: Path, root: Path) -> SpecJob:
    # Read as validation read it, so both see the same data; a file changed since then is an error.
    spec = read_spec(path, root)
    location = spec.location
    if location is None or not isinstance(spec.data, dict) or spec.name is None or spec.version is None:
        raise ExchangeError(f"{spec.display_path}: changed while it was being validated; run again")
    image = spec_image(spec.data, location.kind).reference  # validated: a Docker reference
    return SpecJob(location.relative_path, location, spec.name, spec.version, image, spec.data)  # type: ignore[arg-type]

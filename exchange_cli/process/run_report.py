"""The report every process run leaves behind, success or failure: JSON for tools, Markdown for people.

CI stores the directory as a build artifact. It says, per spec, what happened (published, exported,
rolled back, …) with the image digest, the artifact, its size and the time spent exporting and
uploading; for the run, the result, the stages it entered in order (run.py; on failure the last is
where it failed) and, on failure, the error and what was rolled back. It holds nothing the log does
not already show: no settings, no credentials.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..durable import write_atomically
from ..errors import redact
from ..progress import format_bytes
from ..quoting import markdown_text, printable, printable_lines
from ..sbom.model import summary as sbom_summary
from .artifacts import Artifact
from .context import ProcessOutcome
from .plan import SpecJob, ValidationFailed
from .report import artifact_fields, catalog_fields, job_fields
from .shards import Shard

OnOutcome = Callable[[ProcessOutcome], None]
OnStage = Callable[[str], None]


@dataclass
class RunReport:
    label: str  # "process", "shard-2-of-4" or "finalize": also the report's file name
    started: datetime
    seconds: float
    outcome: ProcessOutcome | None  # None when the run failed before it had a plan
    dry_run: bool = False
    error: BaseException | None = None
    invalid_specs: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)  # entered, in order

    @property
    def result(self) -> str:
        if self.error is None:
            return "succeeded"
        return "interrupted" if isinstance(self.error, KeyboardInterrupt) else "failed"


def run_label(shard: Shard | None, finalizing: bool) -> str:
    return shard.label if shard is not None else "finalize" if finalizing else "process"


def run_reported(run: Callable[[OnOutcome, OnStage], ProcessOutcome], directory: Path | None, label: str, *,
                 root: Path, dry_run: bool = False) -> tuple[ProcessOutcome, list[Path]]:
    """Run, then write the report whatever happened (None: no report, as for a dry run); exceptions pass
    through after it is written. `root` is the exchange's work tree, which spec paths are relative to."""
    if directory is None:
        return run(lambda outcome: None, lambda stage: None), []
    started, clock = datetime.now(UTC), time.monotonic()
    seen: list[ProcessOutcome] = []
    stages: list[str] = []
    try:
        outcome = run(seen.append, stages.append)
    except BaseException as error:
        invalid = _invalid_specs(error, root)
        write_report(directory, RunReport(label, started, time.monotonic() - clock, seen[0] if seen else None,
                                          dry_run, error, invalid, stages))
        raise
    paths = write_report(directory, RunReport(label, started, time.monotonic() - clock, outcome, dry_run,
                                              stages=stages))
    return outcome, paths


def _invalid_specs(error: BaseException, root: Path) -> list[str]:
    if not isinstance(error, ValidationFailed):
        return []
    paths = [Path(result.display_path) for result in error.report.results if result.errors]
    return [path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path) for path in paths]


def write_report(directory: Path, report: RunReport) -> list[Path]:
    document = report_as_json(report)
    json_path, markdown_path = directory / f"{report.label}.json", directory / f"{report.label}.md"
    # Errors and rollback reasons quote the remote, which may be a URL carrying a token.
    write_atomically(json_path, redact(json.dumps(document, indent=2)) + "\n")
    write_atomically(markdown_path, redact(report_as_markdown(document)))
    return [json_path, markdown_path]


def report_as_json(report: RunReport) -> dict[str, Any]:
    outcome = report.outcome
    document: dict[str, Any] = {
        "run": report.label, "result": report.result, "error": _error_text(report.error),
        "started": report.started.isoformat(timespec="seconds"), "seconds": round(report.seconds, 3),
        "dry-run": report.dry_run, "stages": report.stages, "invalid-specs": report.invalid_specs,
        "source-commit": None, "shard": None, "shard-record": None, "pushed": False, "replays": 0,
        "specs": [], "already-processed": [], "rollback": None, "catalog": None,
    }
    if outcome is None:
        return document
    document.update({
        "source-commit": outcome.plan.source_commit, "shard": str(outcome.shard) if outcome.shard else None,
        "shard-record": str(outcome.record_path) if outcome.record_path else None,
        "pushed": outcome.pushed, "replays": outcome.replays,
        "specs": [_spec_entry(job, report) for job in outcome.selected_jobs],
        "already-processed": outcome.plan.already_processed,
        "catalog": catalog_fields(outcome),
    })
    if outcome.rollback is not None:
        document["rollback"] = {"branch-reset-to": outcome.reset_to, "deleted": outcome.rollback.deleted,
                                "not-deleted": outcome.rollback.failed, "kept": outcome.rollback.kept}
    return document


def _spec_entry(job: SpecJob, report: RunReport) -> dict[str, Any]:
    outcome = report.outcome
    assert outcome is not None
    artifacts = {artifact.job.relative_path: artifact for artifact in [*outcome.exported, *outcome.artifacts]}
    artifact = artifacts.get(job.relative_path)
    made = next((made for made in outcome.commits
                 if made.artifact is not None and made.artifact.job.relative_path == job.relative_path), None)
    entry = {**job_fields(job), "title": job.title, "outcome": _spec_outcome(artifact, made is not None, report)}
    if artifact is not None:
        entry.update(artifact_fields(artifact))
    entry.update({"manifest": made.manifest_path if made else None, "commit": made.commit if made else None})
    return entry


def _spec_outcome(artifact: Artifact | None, committed: bool, report: RunReport) -> str:
    outcome = report.outcome
    assert outcome is not None
    if report.dry_run:
        return "would process"
    if artifact is None:
        return "not processed"
    if report.error is not None:
        deleted = outcome.rollback is not None and artifact.object_name in outcome.rollback.deleted
        return "rolled back" if deleted else "not published"
    if outcome.shard is not None:
        return "uploaded" if artifact.created else "already in the bucket"
    if committed and outcome.pushed:
        return "published"
    return "published by another run"  # skipped while replaying on a remote that already had it


def _error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, KeyboardInterrupt):
        return f"interrupted{f' ({error})' if str(error) else ''}"
    return str(error) or type(error).__name__


def report_as_markdown(document: dict[str, Any]) -> str:
    lines = [f"# exchange process: {document['run']}, {document['result']}", ""]
    lines += [f"- source commit: `{document['source-commit'] or '-'}`",
              f"- started {document['started']}, took {document['seconds']:.1f} s",
              f"- stages: {_stages(document)}",
              f"- pushed: {'yes' if document['pushed'] else 'no'}" + (f" after {document['replays']} replay(s)"
                                                                      if document["replays"] else "")]
    if document["shard"]:
        lines.append(f"- shard {document['shard']}, record `{document['shard-record'] or '-'}`")
    catalog = document["catalog"]
    if catalog is not None:
        state = f"`{catalog['commit']}`" if catalog["published"] else f"FAILED ({markdown_text(catalog['error'])}); the next run retries"
        lines.append(f"- catalog on `{catalog['branch']}`: {state}")
    if document["error"]:
        fence = _fence(document["error"])
        lines += ["", "## Error", "", fence, printable_lines(document["error"]), fence]
    if document["invalid-specs"]:
        lines += ["", "## Invalid specs", ""] + [f"- {_code(path)}" for path in document["invalid-specs"]]
    lines += ["", "## Specs", ""]
    if document["specs"]:
        lines += ["| spec | outcome | image digest | artifact | size | SBOM | squashfs | export (s) | upload (s) |",
                  "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: |"]
        lines += [f"| {markdown_text(spec['title'])} | {spec['outcome']} | `{spec.get('image-digest-reference') or spec['image']}` | "
                  f"`{spec.get('artifact', '-')}` | {_size(spec.get('rootfs-size'))} | {_sbom(spec)} | "
                  f"{_size(spec.get('squashfs-size'))} | {spec.get('export-seconds', '-')} | "
                  f"{spec.get('upload-seconds', '-')} |" for spec in document["specs"]]
    else:
        lines.append("Nothing to process.")
    if document["already-processed"]:
        lines += ["", "Already processed: " + ", ".join(_code(path) for path in document["already-processed"])]
    rollback = document["rollback"]
    if rollback is not None:
        lines += ["", "## Rolled back", ""]
        if rollback["branch-reset-to"]:
            lines.append(f"- branch reset to `{rollback['branch-reset-to']}`")
        lines += [f"- deleted {_code(name)}" for name in rollback["deleted"]]
        lines += [f"- could NOT delete {_code(name)}: {markdown_text(reason)}" for name, reason in rollback["not-deleted"].items()]
        lines += [f"- {_code(name)} {markdown_text(reason)}" for name, reason in rollback["kept"].items()]
        if not rollback["deleted"] and not rollback["not-deleted"] and not rollback["kept"]:
            lines.append("- no objects to delete")
    return "\n".join(lines) + "\n"


def _stages(document: dict[str, Any]) -> str:
    """The stages entered, in order; a failed run failed in the last."""
    stages = list(document["stages"]) or ["-"]
    if document["result"] != "succeeded" and document["stages"]:
        stages[-1] += f" ({document['result']} here)"
    return ", ".join(stages)


def _code(text: str) -> str:
    """`text` as a code span: a file name from a contributor may hold backticks, so the span's own are longer
    than any run inside (CommonMark), and it is padded when it starts or ends with one."""
    text = printable(text)
    ticks = "`" * (_longest_backtick_run(text) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{padding}{text}{padding}{ticks}"


def _fence(text: str) -> str:
    """A code fence that the text cannot close: longer than its longest run of backticks."""
    return "`" * max(3, _longest_backtick_run(text) + 1)


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def _sbom(spec: dict[str, Any]) -> str:
    """The SBOM's package count and OS, as the catalog shows them; "-" where none was made. The OS comes
    from the image's os-release: its text, never its Markdown."""
    if spec.get("sbom-url") is None:
        return "-"
    return markdown_text(sbom_summary(spec.get("sbom-packages"), spec.get("sbom-os"))) or "-"


def _size(size: int | None) -> str:
    return "-" if size is None else format_bytes(size)

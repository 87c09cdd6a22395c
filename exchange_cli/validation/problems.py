"""The records validation produces: problems with stable rule ids, grouped per spec."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ..errors import UsageError
from ..quoting import one_line


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"  # reported, does not fail the spec
    INFO = "info"


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    PROCESSED = "processed"


# Stable rule ids: CI logs, JSON reports and --skip lists refer to these; never rename one.
RULES: dict[str, str] = {
    "json-syntax": "the file must be valid JSON",
    "json-duplicate-key": "an object must not repeat a key (readers disagree on which value counts)",
    "file-name": "a spec file's name must end in .json, and a new spec's file stem must be its name",
    "spec-location": "a spec must live at gears/<org>/<file>.json or boutiques/<org>/<file>.json",
    "stray-spec": "a JSON file that looks like a spec but sits where no run looks (gear/jane/x.json) is warned about",
    "spec-size": "a spec file must be at most 1 MiB (specs.MAX_SPEC_BYTES); it is refused unread",
    "gear-schema": "a gear must validate against the official Flywheel gear manifest schema",
    "boutique-schema": "a boutique must validate against the Boutiques descriptor schema",
    "schema-format": "a value the schema gives a format (uri, email) must have it",
    "boutique-semantics": "a boutique must pass the Boutiques semantic checks",
    "image-missing": "the spec must name its Docker image",
    "image-reference": "the image reference must follow the Docker reference grammar",
    "image-unpinned": "the image must be pinned by a tag or a digest, never latest (implicit or written) unless the policy allows it",
    "image-registry": "the image must come from a registry the exchange's policy (.exchange.yaml) allows",
    "image-unsupported": "the image must be a Docker/OCI image (docker://, a registry reference), not shub://, library:// or oras://",
    "image-not-found": "the image's tag or digest must exist in its registry (--check-images)",
    "registry-unreachable": "the image's registry must answer whether it has the image (--check-images)",
    "version-taken": "a version already processed with a different spec cannot be reused",
    "duplicate-version": "two specs in one run cannot claim the same org/name/version",
    "duplicate-name": "two spec files in one org cannot hold the same gear (or boutique) name",
    "already-processed": "this exact spec is already processed (not a failure)",
    "invocation": "an invocation must validate against the spec's invocation schema",
    "protected-path": "a change (validate --base) must not touch the exchange's control files (.sentinel, manifests/, "
                      ".exchange.yaml, .exchange/ with its keys and yank records, schemas/, .circleci/) without a "
                      "maintainer's approval",
    # Conformance checks on the image's flattened rootfs (exchange check-image, exchange process).
    "rootfs-flywheel-dir": "a gear image must contain the directory /flywheel/v0/",
    "rootfs-run-script": "a gear image must have an executable /flywheel/v0/run unless the gear sets command",
    "rootfs-bash": "a gear image must provide bash in /bin, /usr/bin, /usr/local/bin, /sbin or /usr/sbin",
    "rootfs-manifest-mismatch": "a gear manifest inside the image (/flywheel/v0/manifest.json) must match the spec's name and version",
    "rootfs-command": "the executable a boutique's command-line (or a gear's command) starts with must exist in the image",
    "rootfs-symlink": "symlinks that the run script or the command depend on must resolve inside the rootfs",
}
# Every check on an image's rootfs has a rule id of this family; --skip-check accepts exactly these.
CONFORMANCE_RULES = tuple(rule for rule in RULES if rule.startswith("rootfs-"))


def parse_skipped_checks(values: Iterable[str]) -> tuple[str, ...]:
    """The --skip-check values, each a conformance rule id; UsageError naming the valid ones otherwise."""
    skipped = tuple(sorted(set(values)))
    unknown = [value for value in skipped if value not in CONFORMANCE_RULES]
    if unknown:
        raise UsageError(f"--skip-check {', '.join(unknown)}: not a conformance check; "
                         f"choose from {', '.join(CONFORMANCE_RULES)}")
    return skipped


@dataclass
class Problem:
    rule: str
    message: str
    pointer: str | None = None
    severity: Severity = Severity.ERROR
    line: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule id {self.rule!r}")
        # Messages quote values with quoting.quote; this bound holds for any message, whoever built it.
        self.message = one_line(self.message)


@dataclass
class SpecResult:
    display_path: str
    kind: str | None = None
    org: str | None = None
    name: str | None = None
    version: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def status(self) -> Status:
        if self.errors:
            return Status.FAILED
        if any(p.rule == "already-processed" for p in self.problems):
            return Status.PROCESSED
        return Status.PASSED


@dataclass
class Report:
    results: list[SpecResult] = field(default_factory=list)
    noun: str = "spec"

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def ok(self) -> bool:
        return self.count(Status.FAILED) == 0

    @property
    def summary(self) -> str:
        processed = f", {self.count(Status.PROCESSED)} already processed" if self.noun == "spec" else ""
        return (f"{len(self.results)} {self.noun}(s) checked: {self.count(Status.PASSED)} passed, "
                f"{self.count(Status.FAILED)} failed{processed}")

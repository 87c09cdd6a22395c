"""Runs every rule over a set of spec files and returns a `Report`; prints nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.model import EntryClaims, expected_stem
from ..jsonpos import JsonText
from ..manifests import ManifestIndex, VersionKey
from ..quoting import one_line, quote, short_text
from ..reference import ImageReference
from ..specs import SpecFile, SpecKind, SpecLocation, image_field, location_problem, read_spec
from .policy import DEFAULT_POLICY, Policy, image_problems
from .problems import Problem, Report, Severity, SpecResult
from .schemas import boutique_problems, gear_problems


@dataclass(frozen=True)
class RegistryAnswer:
    """Whether a registry has a reference: found True/False, or None with the reason it could not say
    (unreachable, refusing us, failing)."""

    found: bool | None
    reason: str = ""


# Asks a registry about a reference; injected so validation never imports the registry client unless
# --check-images is given. It never raises: a registry that cannot answer is a problem of the specs
# that name it, and the other specs are still checked.
ImageLookup = Callable[[ImageReference], RegistryAnswer]


@dataclass
class CheckedSpec:
    """A spec with its result, kept together for the cross-spec rules."""

    spec: SpecFile
    result: SpecResult
    reference: ImageReference | None = None
    key: VersionKey | None = None


@dataclass
class Checker:
    manifests: ManifestIndex
    image_lookup: ImageLookup | None = None
    policy: Policy = DEFAULT_POLICY
    lookup_workers: int = 1  # registries asked at once
    entries: EntryClaims | None = None  # the exchange's spec files, for the rules on entries
    # Spec files (repository-relative) unchanged since the base the run is judged from: their problems,
    # like those of a spec already processed, are warnings (the change did not introduce them) unless strict.
    unchanged: Collection[str] = ()
    base: str = "the base"  # how messages name it: ".sentinel (abc123)", "origin/master"
    strict: bool = False
    checked: list[CheckedSpec] = field(default_factory=list)

    def check_paths(self, paths: Collection[Path], *, root: Path) -> Report:
        for path in paths:
            self.checked.append(self.check_file(read_spec(path, root)))
        return self.finish()

    def finish(self) -> Report:
        """The cross-spec rules over everything checked, then the report (problems placed, in order)."""
        self._check_duplicate_versions()
        if self.image_lookup is not None:
            self._check_images_exist(self.image_lookup)
        for item in self.checked:
            item.result.problems[:] = self.policy.keep(item.result.problems)
            if not self.strict:
                self._demote_if_not_introduced(item)
            place_problems(item.spec, item.result.problems)
            item.result.problems.sort(key=lambda p: (p.line or 0, p.column or 0))  # read top to bottom
        return Report([item.result for item in self.checked])

    def check_file(self, spec: SpecFile) -> CheckedSpec:
        result = SpecResult(spec.display_path)
        item = CheckedSpec(spec, result)
        problems = result.problems
        if spec.refusal is not None:
            problems.append(Problem(spec.refusal_rule, spec.refusal))
            return item
        if not spec.path.name.endswith(".json"):
            problems.append(Problem("file-name", f"{spec.path.name!r} is not a .json file; specs are JSON files"))
            return item
        if spec.relative_path is not None and spec.location is None:
            problems.append(Problem("spec-location", location_problem(spec.relative_path)))
        if not spec.document.ok:
            problems.extend(json_problems(spec.document))
            # Duplicate keys leave the data readable (the last value counts): checked further only where the
            # exchange's policy switched json-duplicate-key off (an exchange the old pipeline grew).
            if not spec.document.readable or self.policy.enabled("json-duplicate-key"):
                return item
        kind = spec.kind
        result.kind, result.name, result.version = kind.value, spec.name, spec.version
        location = spec.location
        result.org = location.org if location else None
        problems.extend(gear_problems(spec.data) if kind is SpecKind.GEAR else boutique_problems(spec.data))
        image, item.reference = image_problems(spec.data, kind, self.policy)
        problems.extend(image)
        if location and spec.name and spec.version:
            item.key = VersionKey(location.org, kind, spec.name, spec.version)
            problems.extend(self._version_problems(item.key, spec))
        if location and spec.name and self.entries is not None:
            problems.extend(entry_problems(self.entries, location, spec.name))
        problems[:] = self.policy.keep(problems)
        return item

    def _demote_if_not_introduced(self, item: CheckedSpec) -> None:
        """Rules judge what a change introduces: a spec unchanged since the base, or already processed
        exactly as it is, keeps its problems as warnings (an exchange adopting a rule, or a rule added
        after the spec was processed, must not block every later change)."""
        processed = any(p.rule == "already-processed" for p in item.result.problems)
        unchanged = item.spec.relative_path is not None and item.spec.relative_path in self.unchanged
        if not (processed or unchanged):
            return
        why = "already processed as it is" if processed else f"unchanged since {self.base}"
        for problem in item.result.problems:
            if problem.severity is Severity.ERROR:
                problem.severity = Severity.WARNING
                problem.message = one_line(f"{problem.message} ({why}: the change did not introduce it; "
                                           "--strict makes it an error)")

    def _version_problems(self, key: VersionKey, spec: SpecFile) -> list[Problem]:
        existing = self.manifests.for_key(key)
        if not existing:
            return []
        pointer = f"/{spec.kind.version_key}"
        if any(manifest.spec == spec.data for manifest in existing):
            return [Problem("already-processed", f"{key} is already processed ({existing[0].path.name})",
                            pointer, Severity.INFO)]
        names = ", ".join(m.path.name for m in existing)
        return [Problem("version-taken", f"{key} is already processed with a different spec ({names}); "
                                         "submit a new, unique version", pointer)]

    def _check_duplicate_versions(self) -> None:
        claims: dict[VersionKey, list[CheckedSpec]] = defaultdict(list)
        for item in self.checked:
            if item.key is not None:
                claims[item.key].append(item)
        for key, items in claims.items():
            if len(items) < 2:
                continue
            for item in items:
                others = ", ".join(o.spec.display_path for o in items if o is not item)
                item.result.problems.append(Problem(
                    "duplicate-version", f"{key} is also claimed by {others}", f"/{item.spec.kind.version_key}"))

    def _check_images_exist(self, lookup: ImageLookup) -> None:
        from concurrent.futures import ThreadPoolExecutor  # only for --check-images

        # A registry the policy does not allow is never asked: registry credentials that apply to any
        # registry (EXCHANGE_REGISTRY_USERNAME/PASSWORD) would go to whoever runs it, a contributor too.
        asked = [item for item in self.checked if item.reference is not None and item.reference.is_pinned
                 and self.policy.allows_registry(item.reference.registry)]
        unique = {str(item.reference): item.reference for item in asked}
        with ThreadPoolExecutor(max_workers=self.lookup_workers, thread_name_prefix="registry") as pool:
            answers = dict(zip(unique, pool.map(lookup, unique.values()), strict=True))
        for item in asked:
            problem = registry_problem(item.reference, answers[str(item.reference)])  # type: ignore[arg-type]
            if problem is not None:
                problem.pointer, _ = image_field(item.spec.data, item.spec.kind)
                item.result.problems.append(problem)


def registry_problem(reference: ImageReference, answer: RegistryAnswer) -> Problem | None:
    if answer.found:
        return None
    if answer.found is False:
        return Problem("image-not-found", f"{quote(reference.original)}: no such tag or digest in {reference.registry}")
    reason = answer.reason.removeprefix(f"{reference}: ").removeprefix(f"{reference.original}: ")
    return Problem("registry-unreachable", f"{quote(reference.original)}: {reference.registry} did not answer whether "
                                           f"it has this image: {reason}")


def json_problems(document: JsonText) -> list[Problem]:
    """Why a JSON file cannot be read, as problems already placed at their line and column."""
    return [Problem(found.rule, found.message, line=found.position.line, column=found.position.column)
            for found in document.problems]


def entry_problems(entries: EntryClaims, location: SpecLocation, name: str) -> list[Problem]:
    """One file per gear in an org; a new file is named after its gear (see catalog.model)."""
    problems = []
    others = entries.others(location, name)
    if others:
        # Two files that were both in the exchange already: the change did not make them two.
        both_established = all(path in entries.established for path in [location.relative_path, *others])
        problems.append(Problem("duplicate-name", f"{location.kind.value} {location.org}/{short_text(name)} is also held by "
                                                  f"{', '.join(others)}; one gear has one spec file"
                                                  + (" (both files were already in the exchange)" if both_established
                                                     else ""), "/name",
                                Severity.WARNING if both_established else Severity.ERROR))
    stem = expected_stem(name, location.kind)
    if location.stem != stem:
        established = location.relative_path in entries.established
        why = (f"its manifests and artifacts are named after the file ({location.artifact_base}-…), "
               f"its versions after the name")
        if established:
            problems.append(Problem("file-name", f"the file is {location.stem}.json but the {location.kind.value} is "
                                                 f"{quote(name)}: {why}", "/name", Severity.WARNING))
        else:
            problems.append(Problem("file-name", f"a new {location.kind.value} named {quote(name)} must be stored as "
                                                 f"{location.kind.directory}/{location.org}/{short_text(stem)}.json, not "
                                                 f"{location.stem}.json", "/name"))
    return problems


def place_problems(spec: SpecFile, problems: list[Problem]) -> None:
    """Give every problem a line and column (a refused file has none: it was never read)."""
    if spec.refusal is not None:
        return
    for problem in problems:
        if problem.line is None:
            position = spec.document.position(problem.pointer or "")
            problem.line, problem.column = position.line, position.column

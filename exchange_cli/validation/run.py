"""Which specs a run looks at, what judges them, and the one call that validates them.

Two ways to judge: by the exchange as it is checked out (`process` on master, a maintainer's checkout,
explicit PATHs), or by a target branch (`validate --base REF`, the branch CI job), where the change only
proposes specs and the target's tip decides (validation/target.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .. import git
from ..catalog.model import EntryClaims
from ..confined import NotConfined, TooLarge, entries_below, read_small_file
from ..errors import ExchangeError, UsageError
from ..jsonpos import JsonText, read_json
from ..logs import logger
from ..manifests import ManifestIndex
from ..reference import ImageReference
from ..repository import MANIFESTS, Exchange
from ..specs import MAX_SPEC_BYTES, SPEC_DIRECTORIES, SpecFile, display_path
from .checker import Checker, ImageLookup, RegistryAnswer
from .policy import Policy, load_policy
from .problems import Problem, Report, Severity, SpecResult

if TYPE_CHECKING:
    from .target import Target  # with everything else of target.py, imported by validate --base only

LOG = logger("validate")


@dataclass(frozen=True)
class Judge:
    """What specs are judged by: the policy, the processed manifests, the spec files already established,
    and the base a change is measured from (specs unchanged since it keep their problems as warnings)."""

    policy: Policy
    manifests: ManifestIndex
    established: set[str]
    unchanged: frozenset[str] = frozenset()
    base: str = "the base"

    @classmethod
    def of_checkout(cls, exchange: Exchange) -> Judge:
        sentinel = exchange.read_sentinel()
        unchanged: frozenset[str] = frozenset()
        if sentinel is not None:
            unchanged = exchange.unchanged_spec_paths(sentinel)
        return cls(load_policy(exchange.root), ManifestIndex.load(exchange.manifests_dir),
                   exchange.established_spec_paths(), unchanged, f".sentinel ({(sentinel or '')[:12]})")

    @classmethod
    def of_target(cls, exchange: Exchange, target: Target) -> Judge:
        # The target's own sentinel names the spec files already established; its commit is in this
        # repository (an ancestor of the target's tip).
        as_target_sees_it = Exchange(exchange.checkout, target.root)
        return cls(load_policy(target.root), ManifestIndex.load(target.root / MANIFESTS),
                   as_target_sees_it.established_spec_paths(), exchange.unchanged_spec_paths(target.merge_base),
                   target.ref)



def select_spec_paths(exchange: Exchange, paths: Collection[Path], *, all_specs: bool, since: str | None) -> list[Path]:
    """Explicit paths; or every spec (--all); or the specs changed since --since / the sentinel."""
    if paths and (all_specs or since):
        raise UsageError("give PATHs, or --all, or --since, not a mix")
    if all_specs and since:
        raise UsageError("--all and --since exclude each other")
    if paths:
        return exchange.expand(list(paths))
    if all_specs:
        return exchange.all_spec_paths()
    return exchange.changed_spec_paths(since)


def validate_specs(exchange: Exchange, paths: Collection[Path], *, check_images: bool = False,
                   insecure_registries: Collection[str] = (), jobs: int = 1, judge: Judge | None = None,
                   strict: bool = False) -> Report:
    """`strict`: every problem is an error, in specs the change did not touch too."""
    judge = judge or Judge.of_checkout(exchange)
    lookup = registry_lookup(insecure_registries, shared_credentials=bool(judge.policy.allowed_registries)) \
        if check_images else None
    checker = Checker(judge.manifests, image_lookup=lookup, policy=judge.policy, lookup_workers=jobs,
                      entries=EntryClaims.load(exchange, judge.manifests.manifests, established=judge.established),
                      unchanged=judge.unchanged, base=judge.base, strict=strict)
    return checker.check_paths(paths, root=exchange.root)


def validate_change(exchange: Exchange, base: str, *, check_images: bool = False,
                    insecure_registries: Collection[str] = (), jobs: int = 1, strict: bool = False) -> Report:
    """The branch job's check: the specs the change adds or modifies since its merge base with `base`,
    judged by `base`'s tip, and one `protected-path` problem per control file the change touches."""
    from .target import approval, protected_changes, target_branch

    with target_branch(exchange, base) as target:
        judge = Judge.of_target(exchange, target)
        paths = exchange.changed_spec_paths(target.merge_base)
        protected = protected_changes(exchange, target, judge.policy)
        LOG.info(f"judged by {base} ({target.tip[:12]}), changes since {target.merge_base[:12]}: "
                 f"{len(paths)} spec(s), {len(protected)} protected file(s)")
        report = validate_specs(exchange, paths, check_images=check_images, insecure_registries=insecure_registries,
                                jobs=jobs, judge=judge, strict=strict)
        report.results += stray_specs(exchange, git.changed_paths(exchange.checkout, target.merge_base, ["*.json"]))
        verdict = approval(judge.policy)
        for change in protected:
            report.results.append(_protected_result(change.path, change.change, verdict.approved, verdict.reason))
    return report


def _protected_result(path: str, change: str, approved: bool, reason: str) -> SpecResult:
    if approved:
        problem = Problem("protected-path", f"{path} {change}: {reason}", severity=Severity.INFO)
    else:
        problem = Problem("protected-path", f"{path} {change}: a pull request proposes specs; the exchange's control "
                                            f"files change only with a maintainer's approval ({reason}; "
                                            "see docs/trust.md)")
    return SpecResult(path, problems=[problem])


def registry_lookup(insecure_registries: Collection[str], *, shared_credentials: bool = True) -> ImageLookup:
    """Asks a registry whether it has a reference. `shared_credentials`: whether the credentials meant for
    any registry (EXCHANGE_REGISTRY_USERNAME/PASSWORD) may be sent; validate sends them only when the
    judging policy lists its registries, so a contributor's registry never receives them."""
    from ..image.registry import manifest_exists

    def lookup(reference: ImageReference) -> RegistryAnswer:
        try:
            return RegistryAnswer(manifest_exists(reference, insecure_registries=insecure_registries,
                                                  shared_credentials=shared_credentials))
        except ExchangeError as error:  # unreachable, refusing us, failing: the registry cannot say
            return RegistryAnswer(None, str(error))

    return lookup


def is_exchange(root: Path) -> bool:
    """A repository laid out as an exchange (any of gears/, boutiques/, manifests/, .sentinel)."""
    return any((root / name).exists() for name in (*SPEC_DIRECTORIES, MANIFESTS, ".sentinel"))


def validate_loose_files(paths: Collection[Path]) -> Report:
    """Spec files outside any exchange (a contributor's own manifest.json): the schemas and the default
    policy; the rules on places, names and versions need an exchange and are not applied."""
    checker = Checker(ManifestIndex([]))
    for path in _files(paths):
        shown = display_path(path)
        try:
            content = read_small_file(path, limit=MAX_SPEC_BYTES)
        except TooLarge as error:
            checker.checked.append(checker.check_file(SpecFile(path, shown, None, JsonText(""),
                                                               refusal=f"the file {error.reason}", refusal_rule="spec-size")))
            continue
        except (NotConfined, OSError) as error:
            raise UsageError(f"{shown}: cannot read it ({getattr(error, 'reason', None) or error})") from None
        checker.checked.append(checker.check_file(SpecFile(path, shown, None, read_json(content))))
    return checker.finish()


def _files(paths: Collection[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in entries_below(path) if p.suffix == ".json")
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return found


# Top-level folders that hold JSON on purpose: never taken for a misspelled spec folder.
_NOT_SPEC_FOLDERS = {MANIFESTS, "schemas", "docs", "tests", "node_modules", "site", "build", "dist"}


def stray_specs(exchange: Exchange, changed: Collection[str] | None) -> list[SpecResult]:
    """JSON files that look like specs but sit where no run looks (`gear/jane/x.json`, `gears/x.json`,
    `Boutiques/acme/y.json`): a warning each (stray-spec) with the place they were probably meant for.
    `changed`: the repository-relative paths a change touched (None: the whole tree)."""
    candidates = changed if changed is not None else _tracked_json(exchange)
    results = []
    for relative in sorted(candidates):
        meant = _meant_place(relative)
        if meant is not None and meant != relative:
            problem = Problem("stray-spec", f"{relative} is not at gears/<org>/<file>.json or boutiques/<org>/"
                                            f"<file>.json, so no run will ever process it; did you mean {meant}?",
                              severity=Severity.WARNING)
            results.append(SpecResult(relative, problems=[problem]))
    return results


def _tracked_json(exchange: Exchange) -> list[str]:
    listing = exchange.checkout.git.ls_files("-z", "--cached", "--others", "--exclude-standard", "--", "*.json")
    return [path for path in listing.split("\0") if path]


def _meant_place(relative: str) -> str | None:
    """Where a JSON file that looks like a misplaced spec was meant to go; None when it is not one."""
    parts = PurePosixPath(relative).parts
    if not relative.endswith(".json") or len(parts) < 2 or any(part.startswith(".") for part in parts):
        return None
    top = parts[0]
    if top in _NOT_SPEC_FOLDERS or top in SPEC_DIRECTORIES:  # under gears/ or boutiques/: spec-location's
        return None
    import difflib

    folder = next(iter(difflib.get_close_matches(top.lower(), list(SPEC_DIRECTORIES), n=1, cutoff=0.7)), None)
    if folder is None:
        return None
    if len(parts) == 2:
        return f"{folder}/<org>/{parts[1]}"
    return f"{folder}/{parts[-2]}/{parts[-1]}"

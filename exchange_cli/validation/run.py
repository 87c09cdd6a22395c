"""Which specs a run looks at, what judges them, and the one call that validates them.

Two ways to judge: by the exchange as it is checked out (`process` on master, a maintainer's checkout,
explicit PATHs), or by a target branch (`validate --base REF`, the branch CI job), where the change only
proposes specs and the target's tip decides (validation/target.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from ..catalog.model import EntryClaims
from ..errors import ExchangeError, UsageError
from ..logs import logger
from ..manifests import ManifestIndex
from ..reference import ImageReference
from ..repository import MANIFESTS, Exchange
from .checker import Checker, ImageLookup, RegistryAnswer
from .policy import Policy, load_policy
from .problems import Problem, Report, Severity, SpecResult
from .target import Target, approval, protected_changes, target_branch

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
    def of_checkout(cls, exchange: Exchange) -> "Judge":
        sentinel = exchange.read_sentinel()
        unchanged: frozenset[str] = frozenset()
        if sentinel is not None:
            unchanged = exchange.unchanged_spec_paths(sentinel)
        return cls(load_policy(exchange.root), ManifestIndex.load(exchange.manifests_dir),
                   exchange.established_spec_paths(), unchanged, f".sentinel ({(sentinel or '')[:12]})")

    @classmethod
    def of_target(cls, exchange: Exchange, target: Target) -> "Judge":
        # The target's own sentinel names the spec files already established; its commit is in this
        # repository (an ancestor of the target's tip).
        as_target_sees_it = Exchange(exchange.repo, target.root)
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
    with target_branch(exchange, base) as target:
        judge = Judge.of_target(exchange, target)
        paths = exchange.changed_spec_paths(target.merge_base)
        protected = protected_changes(exchange, target, judge.policy)
        LOG.info(f"judged by {base} ({target.tip[:12]}), changes since {target.merge_base[:12]}: "
                 f"{len(paths)} spec(s), {len(protected)} protected file(s)")
        report = validate_specs(exchange, paths, check_images=check_images, insecure_registries=insecure_registries,
                                jobs=jobs, judge=judge, strict=strict)
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

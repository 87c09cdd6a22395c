"""The exchange's own policy on top of the schemas, and the file an exchange relaxes or tightens it in.

Every spec names a well-formed image pinned by a tag or a digest, never `latest` (implicit or written);
the optional `.exchange.yaml` at the repository root (schema: `schemas/exchange-policy.schema.json`)
can allow `latest`, require digests, restrict registries, turn some rules off and title the catalog.
A file that breaks the schema is a usage error naming its line and column, never a silent default.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..confined import NotConfined, read_below
from ..errors import UsageError
from ..quoting import printable, quote
from ..reference import ImageReference, ReferenceError, parse_reference
from ..specs import SpecKind, spec_image
from .problems import Problem
from .schemas import schema_message

if TYPE_CHECKING:
    import yaml

POLICY_FILE = ".exchange.yaml"
MAX_POLICY_BYTES = 64 * 1024  # a policy is a few lines of YAML
SCHEMA_FILE = "exchange-policy.schema.json"
# Rules that are a matter of each exchange's taste; the others keep specs readable and processable.
SWITCHABLE_RULES = ("image-unpinned", "image-registry", "image-not-found", "registry-unreachable",
                    "boutique-semantics", "file-name", "duplicate-name", "json-duplicate-key", "schema-format")
# Rules the old pipeline never enforced: an exchange it grew may start with them off (docs/migrating.md, "Moving from
# the old pipeline"); a new exchange keeps them on.
OLD_PIPELINE_RULES = ("file-name", "duplicate-name", "json-duplicate-key", "schema-format")

IMAGE_FIELDS = {
    SpecKind.GEAR: "custom.gear-builder.image (or custom.docker-image)",
    SpecKind.BOUTIQUE: "container-image.image",
}


@dataclass(frozen=True)
class Policy:
    allowed_registries: tuple[str, ...] = ()  # host patterns (fnmatch); empty: any registry
    allow_latest: bool = False
    require_digest: bool = False
    rules_off: frozenset[str] = field(default_factory=frozenset)
    catalog_title: str | None = None  # None: the catalog's own default
    approval_sha256: str | None = None  # trust.maintainer-approval-sha256 (validation/target.py)
    protected_paths: tuple[str, ...] = ()  # trust.protected-paths, beyond the built-in ones
    squashfs: bool = False  # artifacts.formats lists squashfs: process publishes the image beside the tarball
    source: str | None = None  # the file it came from, for messages

    def enabled(self, rule: str) -> bool:
        return rule not in self.rules_off

    def keep(self, problems: list[Problem]) -> list[Problem]:
        return [problem for problem in problems if self.enabled(problem.rule)]

    def allows_registry(self, registry: str) -> bool:
        return not self.allowed_registries or any(fnmatch.fnmatchcase(registry, pattern)
                                                  for pattern in self.allowed_registries)


DEFAULT_POLICY = Policy()


def policy_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("exchange_cli").joinpath("data", SCHEMA_FILE)
                                        .read_text(encoding="utf-8"))
    return schema


def load_policy(root: Path) -> Policy:
    """The policy of the exchange at `root`: its `.exchange.yaml`, or the defaults when there is none."""
    path = root / POLICY_FILE
    if not path.is_file() and not path.is_symlink():
        return DEFAULT_POLICY
    try:
        text = read_below(root, POLICY_FILE, limit=MAX_POLICY_BYTES).decode("utf-8")
    except NotConfined as error:  # a contributor's link to a private file must not be read and quoted
        raise UsageError(f"{POLICY_FILE} {error.reason}; the policy must be a regular file in the repository, "
                         "and links are never followed") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{POLICY_FILE}: cannot read it: {error}") from None
    return parse_policy(text, POLICY_FILE)


MAX_POLICY_DEPTH = 10  # the schema's deepest value is three levels down
MAX_SCALAR_LENGTH = 1000  # a title of 200 characters is the longest value the schema allows


@cache
def _policy_loader() -> type[yaml.SafeLoader]:
    """The loader class; pyyaml is imported only when an exchange has a policy file."""
    import yaml

    class PolicyLoader(yaml.SafeLoader):
        """SafeLoader without what a policy never needs and an attacker uses: anchors and aliases (a 317-byte
        file of nested aliases expands to gigabytes), nesting past MAX_POLICY_DEPTH, scalars past
        MAX_SCALAR_LENGTH characters (a 5,000-digit integer Python refuses to convert)."""

        def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.composer.ComposerError(None, None, "anchors and aliases (& and *) are not allowed in a "
                                                  "policy file", event.start_mark)
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_POLICY_DEPTH:
                    raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_POLICY_DEPTH} levels deep",
                                                      event.start_mark)
                if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_LENGTH:
                    raise yaml.composer.ComposerError(None, None, f"a value of {len(event.value):,} characters, "
                                                      f"over {MAX_SCALAR_LENGTH}",
                                                      # SafeLoader's pure-Python parser: never _yaml's Mark
                                                      cast("yaml.error.Mark | None", event.start_mark))
                return super().compose_node(parent, index)  # type: ignore[arg-type]
            finally:
                self._depth -= 1

    return PolicyLoader


def parse_policy(text: str, shown: str) -> Policy:
    """The policy in `text`; a UsageError on one line naming `shown`, the line and column, and the rule."""
    import jsonschema  # with pyyaml, loaded only for an exchange that has a policy file
    import yaml

    loader = None
    try:
        loader = _policy_loader()(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else _reader_place(error, text)
        reason = getattr(error, "problem", None) or getattr(error, "reason", None) or type(error).__name__
        raise UsageError(printable(f"{shown}{where}: not valid YAML: {reason}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    invalid = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(policy_schema()).iter_errors(data))
    if invalid is not None:
        mark = _mark_at(node, list(invalid.absolute_path))
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        at = "/" + "/".join(map(str, invalid.absolute_path)) if invalid.absolute_path else "the top level"
        raise UsageError(f"{shown}{where}: {schema_message(invalid)} (at {at}; see schemas/{SCHEMA_FILE})")
    images, rules, trust = data.get("images") or {}, data.get("rules") or {}, data.get("trust") or {}
    return Policy(
        allowed_registries=tuple(images.get("allowed-registries") or ()),
        allow_latest=bool(images.get("allow-latest", False)),
        require_digest=bool(images.get("require-digest", False)),
        rules_off=frozenset(rule for rule, on in rules.items() if on is False),
        catalog_title=(data.get("catalog") or {}).get("title"),
        approval_sha256=trust.get("maintainer-approval-sha256"),
        protected_paths=tuple(trust.get("protected-paths") or ()),
        squashfs="squashfs" in ((data.get("artifacts") or {}).get("formats") or ()),
        source=shown,
    )


def _reader_place(error: yaml.YAMLError, text: str) -> str:
    """`:line:col` of a character the YAML reader refuses (a NUL, a control character)."""
    position = getattr(error, "position", None)
    if not isinstance(position, int):
        return ""
    before = text[:position]
    return f":{before.count(chr(10)) + 1}:{position - (before.rfind(chr(10)) + 1) + 1}"


def _mark_at(node: yaml.Node | None, path: list[Any]) -> yaml.Mark | None:
    """Where the value at `path` starts in the YAML text (or its nearest existing ancestor)."""
    import yaml

    mark = node.start_mark if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        mark = node.start_mark
    return mark


def image_problems(data: Any, kind: SpecKind,
                   policy: Policy = DEFAULT_POLICY) -> tuple[list[Problem], ImageReference | None]:
    """Problems with the spec's image reference, and the parsed reference when it is usable."""
    image = spec_image(data, kind)
    pointer, value = image.pointer, image.written
    if value is None:
        return [Problem("image-missing", f"no image: set {IMAGE_FIELDS[kind]}", pointer)], None
    if not isinstance(value, str):
        return [Problem("image-reference", f"the image must be a string, not {type(value).__name__}", pointer)], None
    if image.unsupported is not None:
        return [Problem("image-unsupported", image.unsupported, pointer)], None
    if image.conflict is not None:
        return [Problem("image-reference", image.conflict, "/container-image/container-hash")], None
    assert image.reference is not None
    try:
        reference = parse_reference(image.reference)
    except ReferenceError as error:
        return [Problem("image-reference", f"{quote(value)}: {error}", pointer)], None
    return policy.keep(_pinning_problems(reference, pointer, policy) + _registry_problems(reference, pointer, policy)), \
        reference


def _pinning_problems(reference: ImageReference, pointer: str, policy: Policy) -> list[Problem]:
    value, name = quote(reference.original), _bare_name(reference)
    example = f"pin it, e.g. {name}:1.0.0 or {name}@sha256:…"
    if reference.digest is not None:
        return []
    if reference.tag is None:
        return [Problem("image-unpinned", f"{value} has no tag or digest and would mean 'latest'; {example}", pointer)]
    if policy.require_digest:
        return [Problem("image-unpinned", f"{value} is pinned by a tag only, and this exchange's policy "
                                          f"({policy.source}) requires a digest: {name}@sha256:…", pointer)]
    if reference.tag == "latest" and not policy.allow_latest:
        return [Problem("image-unpinned", f"{value}: 'latest' moves with every push, so it pins nothing; {example} "
                                          f"(an exchange can allow it: images.allow-latest in {POLICY_FILE})", pointer)]
    return []


def _bare_name(reference: ImageReference) -> str:
    """The reference as written, without its tag and digest."""
    text = reference.original.split("@", 1)[0]
    return text[: -len(reference.tag) - 1] if reference.tag else text


def _registry_problems(reference: ImageReference, pointer: str, policy: Policy) -> list[Problem]:
    if policy.allows_registry(reference.registry):
        return []
    allowed = ", ".join(policy.allowed_registries)
    return [Problem("image-registry", f"{quote(reference.original)} comes from {reference.registry}, which this "
                                      f"exchange's policy ({policy.source}) does not allow; allowed: {allowed}",
                    pointer)]

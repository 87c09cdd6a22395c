"""The in-toto Statement v1 with a SLSA Provenance v1 predicate that the exchange signs for an artifact.

The statement says, for one subject (the rootfs tarball: its object name, sha384 and sha256; or the
delivered image: its reference and sha256 manifest digest), how the exchange made it. It holds no
time stamp, so the same build of the same inputs gives the same statement: a re-run can recognise
an envelope it made before. The build type is ours; its fields are documented in
schemas/provenance.md:

  buildDefinition.buildType             BUILD_TYPE
  buildDefinition.externalParameters    spec {path, kind, org, name, version, digest {gitBlob}},
                                        image (as written in the spec)
  buildDefinition.internalParameters    artifact ("rootfs-tarball" or "image"), compression of the tarball
  buildDefinition.resolvedDependencies  "image": docker://<digest reference> when pinned, digest {sha256: manifest},
                                        annotations {configDigest, platform};
                                        "source": git+<repository>, digest {gitCommit}
  runDetails.builder                    id: the exchange repository; version: exchange-cli and isal
  runDetails.metadata.invocationId      the CI run's URL, when CircleCI provides one
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExchangeError
from ..jsonpos import strict_document

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:exchange-cli:build-type:rootfs:v1"
ROOTFS_TARBALL = "rootfs-tarball"
IMAGE = "image"


class StatementError(ExchangeError):
    """A payload that is not the statement the exchange writes."""


@dataclass(frozen=True)
class SpecRef:
    path: str  # repository-relative, e.g. gears/acme/hello.json
    kind: str  # gear or boutique
    org: str
    name: str
    version: str
    git_blob: str  # the spec file's git blob id at the source commit


@dataclass(frozen=True)
class ImageRef:
    reference: str  # as written in the spec
    digest_reference: str | None  # <registry>/<repository>@sha256:<manifest digest>
    manifest_digest: str | None  # sha256:<hex>
    config_digest: str  # sha256:<hex>
    platform: str


@dataclass(frozen=True)
class BuildFacts:
    """Everything the statement asserts; built by `process`, read back by `exchange verify`."""

    subject_name: str
    subject_digests: dict[str, str]  # algorithm -> hex: sha384 and sha256 of a tarball, sha256 of an image
    artifact: str  # ROOTFS_TARBALL or IMAGE
    spec: SpecRef
    image: ImageRef
    source_commit: str
    repository: str  # URI of the exchange repository
    tool_versions: dict[str, str] = field(default_factory=dict)
    compression: dict[str, Any] = field(default_factory=dict)
    run_url: str | None = None
    # Further files built in the same pass from the same tree (the squashfs image): name -> digests.
    # The statement lists them after the first subject; older statements have none.
    more_subjects: dict[str, dict[str, str]] = field(default_factory=dict)

    def same_build(self, other: BuildFacts) -> bool:
        """Equal but for the run that made it: a re-run of the same build at the same commit."""
        return _without_run(self) == _without_run(other)


def _without_run(facts: BuildFacts) -> tuple[object, ...]:
    return (facts.subject_name, facts.subject_digests, facts.artifact, facts.spec, facts.image, facts.source_commit,
            facts.repository, facts.tool_versions, facts.compression, facts.more_subjects)


def build_statement(facts: BuildFacts) -> dict[str, Any]:
    image = facts.image
    image_dependency: dict[str, Any] = {"name": "image"}
    if image.digest_reference:  # images from a local engine or an OCI layout have none
        image_dependency["uri"] = f"docker://{image.digest_reference}"
    if image.manifest_digest:
        algorithm, _, hex_digest = image.manifest_digest.partition(":")
        image_dependency["digest"] = {algorithm: hex_digest}
    image_dependency["annotations"] = {"configDigest": image.config_digest, "platform": image.platform}
    internal: dict[str, Any] = {"artifact": facts.artifact}
    if facts.compression:
        internal["compression"] = facts.compression
    metadata = {"invocationId": facts.run_url} if facts.run_url else {}
    spec = facts.spec
    run_details: dict[str, Any] = {"builder": {"id": facts.repository, "version": dict(facts.tool_versions)}}
    if metadata:
        run_details["metadata"] = metadata
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.subject_name, "digest": dict(facts.subject_digests)},
                    *({"name": name, "digest": dict(digests)} for name, digests in sorted(facts.more_subjects.items()))],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": {"path": spec.path, "kind": spec.kind, "org": spec.org, "name": spec.name,
                             "version": spec.version, "digest": {"gitBlob": spec.git_blob}},
                    "image": image.reference,
                },
                "internalParameters": internal,
                "resolvedDependencies": [
                    image_dependency,
                    {"name": "source", "uri": _git_uri(facts.repository), "digest": {"gitCommit": facts.source_commit}},
                ],
            },
            "runDetails": run_details,
        },
    }


def statement_bytes(statement: dict[str, Any]) -> bytes:
    """The serialized body that is signed: compact JSON with sorted keys, so the same facts give the same bytes."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _subject(value: object, index: int) -> tuple[str, dict[str, str]]:
    """subject[index]'s name and digests (algorithm -> hex)."""
    subject = _Reader(value, f"subject[{index}]")
    digests = subject.get("digest", dict)
    if not digests or not all(isinstance(v, str) for v in digests.values()):
        raise StatementError(f"subject[{index}].digest must map algorithms to hex strings")
    return subject.get("name", str), dict(digests)


def read_statement(payload: bytes) -> BuildFacts:
    """The facts of a statement the exchange wrote; StatementError naming the first field that is not right."""
    statement = strict_document(payload, "the payload", StatementError)
    reader = _Reader(statement)
    if reader.get("_type", str) != STATEMENT_TYPE:
        raise StatementError(f"_type is {statement.get('_type')!r}, not {STATEMENT_TYPE}")
    if reader.get("predicateType", str) != PREDICATE_TYPE:
        raise StatementError(f"predicateType is {statement.get('predicateType')!r}, not {PREDICATE_TYPE}")
    subjects = reader.get("subject", list)
    if not subjects:
        raise StatementError("the statement has 0 subjects; the exchange attests at least its rootfs")
    subject, digests = _subject(subjects[0], 0)
    more = dict(_subject(other, index) for index, other in enumerate(subjects[1:], start=1))
    if len(more) != len(subjects) - 1 or subject in more:
        raise StatementError("the statement names a subject twice")
    definition = reader.at("predicate", "buildDefinition")
    if definition.get("buildType", str) != BUILD_TYPE:
        raise StatementError(f"predicate.buildDefinition.buildType is {definition.raw.get('buildType')!r}, "
                             f"not {BUILD_TYPE}")
    external = definition.at("externalParameters")
    spec = external.at("spec")
    dependencies = {d.get("name"): d for d in definition.get("resolvedDependencies", list) if isinstance(d, dict)}
    image = _Reader(dependencies.get("image"), "resolvedDependencies[image]")
    source = _Reader(dependencies.get("source"), "resolvedDependencies[source]")
    annotations = image.at("annotations")
    digest = image.raw.get("digest")
    image_digest = digest if isinstance(digest, dict) else {}
    manifest_digest = next((f"{a}:{h}" for a, h in image_digest.items()), None)
    image_uri = image.raw.get("uri")
    builder = reader.at("predicate", "runDetails", "builder")
    metadata = reader.at("predicate", "runDetails").optional("metadata")
    internal = definition.optional("internalParameters")
    versions, compression = builder.optional("version"), _Reader(internal, "internalParameters").optional("compression")
    return BuildFacts(
        subject_name=subject,
        subject_digests=digests,
        artifact=_text(internal.get("artifact", "")),
        spec=SpecRef(spec.get("path", str), spec.get("kind", str), spec.get("org", str), spec.get("name", str),
                     spec.get("version", str), spec.at("digest").get("gitBlob", str)),
        image=ImageRef(external.get("image", str), image_uri.removeprefix("docker://") if isinstance(image_uri, str) else None,
                       manifest_digest,
                       annotations.get("configDigest", str), annotations.get("platform", str)),
        source_commit=source.at("digest").get("gitCommit", str),
        repository=builder.get("id", str),
        tool_versions=versions,
        compression=compression,
        run_url=metadata.get("invocationId") if isinstance(metadata.get("invocationId"), str) else None,
        more_subjects=more,
    )


class _Reader:
    """Typed access into the statement; errors name the JSON path."""

    def __init__(self, raw: Any, path: str = "") -> None:
        if not isinstance(raw, dict):
            raise StatementError(f"{path or 'the statement'} is missing or not an object")
        self.raw, self.path = raw, path

    def get(self, key: str, kind: type) -> Any:
        value = self.raw.get(key)
        if not isinstance(value, kind):
            raise StatementError(f"{self._name(key)} is missing or not a{'n' if kind is object else ''} "
                                 f"{_KIND_NAMES.get(kind, kind.__name__)}")
        return value

    def optional(self, key: str) -> dict[str, Any]:
        """An object that may be absent (empty then), but is an object when present."""
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise StatementError(f"{self._name(key)} is not an object")
        return dict(value)

    def at(self, *keys: str) -> _Reader:
        reader = self
        for key in keys:
            reader = _Reader(reader.raw.get(key), reader._name(key))
        return reader

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


_KIND_NAMES: dict[type, str] = {str: "string", list: "list", dict: "object"}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise StatementError("internalParameters.artifact is not a string")
    return value


def _git_uri(repository: str) -> str:
    return repository if repository.startswith("git+") else f"git+{repository}"

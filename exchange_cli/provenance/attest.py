"""Make the signed attestation of one artifact: its build facts, the statement, the DSSE envelope.

`RunContext` is what every statement of a run shares (the exchange repository, the source commit,
the CI run, the tool versions); `facts_for` adds one artifact's subject, spec and image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .. import __version__
from ..errors import redact
from .dsse import sign_envelope
from .sbom_statement import sign_sbom
from .signers import Signer
from .statement import IMAGE, ROOTFS_TARBALL, BuildFacts, ImageRef, SpecRef, build_statement, statement_bytes
from .verify import attestation_name

CI_RUN_URL_ENV = "CIRCLE_BUILD_URL"
_SCP_LIKE = re.compile(r"(?P<user>[^@/:\s]+@)?(?P<host>[^/:\s]+):(?P<path>(?!//).+)")


@dataclass(frozen=True)
class RunContext:
    source_commit: str
    repository: str  # URI of the exchange repository
    run_url: str | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    compression: dict[str, Any] = field(default_factory=dict)

    def with_squashfs(self, version: str, settings: str) -> RunContext:
        """The run also writes a squashfs image of each rootfs: the writer's version and settings, which
        fix its bytes, are facts of the build too (docs/squashfs.md)."""
        return dataclasses.replace(self, tool_versions={**self.tool_versions, "squashfs-tools-ng": version},
                                   compression={**self.compression, "squashfs": settings})


def run_context(source_commit: str, remote_url: str | None, root: Path, env: Mapping[str, str] = os.environ) -> RunContext:
    from ..rootfs.tarball import COMPRESS_BLOCK, GZIP_LEVEL

    run_url = (env.get(CI_RUN_URL_ENV) or "").strip() or None
    return RunContext(source_commit, repository_uri(remote_url, root), redact(run_url) if run_url else None,
                      tool_versions(), {"format": "gzip", "level": GZIP_LEVEL, "blockBytes": COMPRESS_BLOCK})


def tool_versions() -> dict[str, str]:
    """The exchange's own version and the pinned deflate implementation that fixes the tarball's bytes."""
    versions = {"exchange-cli": __version__}
    with contextlib.suppress(PackageNotFoundError):  # a dependency: always there when installed
        versions["isal"] = version("isal")
    return versions


def repository_uri(remote_url: str | None, root: Path) -> str:
    """The remote as a URI without credentials: https://…, ssh://git@host/path for scp-like remotes,
    file:///… for a local path; the work tree's file URI when there is no remote."""
    if not remote_url:
        return root.resolve().as_uri()
    if "://" in remote_url:
        return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", lambda m: m[1] + ("git@" if m[1] == "ssh://" else ""),
                      remote_url)
    scp = _SCP_LIKE.fullmatch(remote_url)
    if scp and not remote_url.startswith(("/", ".")):
        return f"ssh://{scp['user'] or ''}{scp['host']}/{scp['path'].lstrip('/')}"
    return Path(remote_url).resolve().as_uri()


class ArtifactLike(Protocol):
    """What process.artifacts.Artifact offers; kept structural so provenance does not import process."""

    job: Any  # SpecJob: relative_path, location.org, kind, name, version, image
    object_name: str
    sha384: str
    url: str
    image: Any  # image.model.Image
    delivered_digest: str | None
    squashfs_url: str | None  # the squashfs image beside the tarball, if the run made one
    squashfs_sha384: str | None
    squashfs_sha256: str | None


def subject_name(artifact: ArtifactLike) -> str:
    """The bucket object's name for a tarball; the mirrored digest reference for an image-delivered gear."""
    return artifact.url.removeprefix("docker://") if artifact.delivered_digest else artifact.object_name


def facts_for(artifact: ArtifactLike, *, sha256: str | None, spec_blob: str, context: RunContext) -> BuildFacts:
    job, image = artifact.job, artifact.image
    if artifact.delivered_digest:
        algorithm, _, hex_digest = artifact.delivered_digest.partition(":")
        digests, kind = {algorithm: hex_digest}, IMAGE
    else:
        assert sha256 is not None, "a tarball is attested with its sha384 and sha256"
        digests, kind = {"sha384": artifact.sha384, "sha256": sha256}, ROOTFS_TARBALL
    return BuildFacts(
        subject_name=subject_name(artifact),
        subject_digests=digests,
        artifact=kind,
        spec=SpecRef(job.relative_path, job.kind.value, job.location.org, job.name, job.version, spec_blob),
        image=ImageRef(job.image, image.pinned_reference, image.manifest_digest, image.config_digest,
                       str(image.platform)),
        source_commit=context.source_commit,
        repository=context.repository,
        tool_versions=dict(context.tool_versions),
        compression=dict(context.compression) if kind == ROOTFS_TARBALL else {},
        run_url=context.run_url,
        more_subjects=_squashfs_subject(artifact) if kind == ROOTFS_TARBALL else {},
    )


def _squashfs_subject(artifact: ArtifactLike) -> dict[str, dict[str, str]]:
    """The squashfs image as a second subject: built in the same pass, from the same tree (docs/squashfs.md)."""
    if artifact.squashfs_url is None or artifact.squashfs_sha384 is None:
        return {}
    assert artifact.squashfs_sha256 is not None, "a squashfs image is attested with its sha384 and sha256"
    name = unquote(PurePosixPath(urlsplit(artifact.squashfs_url).path).name)
    return {name: {"sha384": artifact.squashfs_sha384, "sha256": artifact.squashfs_sha256}}


@dataclass(frozen=True)
class Attestation:
    object_name: str  # `<artifact object>.intoto.jsonl` in the bucket
    content: bytes = field(repr=False)  # one DSSE envelope line
    facts: BuildFacts

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def attest(facts: BuildFacts, signer: Signer, artifact_object: str, sbom: bytes | None = None) -> Attestation:
    """The provenance envelope; with `sbom`, the SBOM statement's envelope on the next line of the same file."""
    envelope = sign_envelope(statement_bytes(build_statement(facts)), signer)
    content = envelope.line()
    if sbom is not None:
        content += sign_sbom(facts.subject_name, facts.subject_digests, sbom, signer)
    return Attestation(attestation_name(artifact_object), content, facts)

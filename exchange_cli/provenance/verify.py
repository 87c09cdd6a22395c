"""`exchange verify`: one published version checked end to end, stopping at the first check that fails.

The checks, in order:
  rootfs      the artifact's sha384 (and size) against the manifest; an image-delivered gear's digest
  sbom        when the manifest names an SBOM (sbom-url): the file (or --sbom) is the one it pins
              (sbom-sha256)
  squashfs    when the manifest names a squashfs image (squashfs-url): the image (or --squashfs) has the
              sha384 and size it pins (squashfs-sha384, squashfs-size)
  envelope    the attestation (manifest's attestation-url, or a file) is a DSSE envelope
  signature   an envelope signature verifies with one of the trusted keys
  custody     with the repository's keys (no --key): the commits that added that key and the manifest,
              and the manifest's is a process run's (custody.py)
  statement   the signed payload is the exchange's in-toto Statement v1 / SLSA Provenance v1
  subject     the statement's subject is this artifact: its name and every digest it gives
  squashfs-subject  when the manifest names a squashfs image (squashfs-url): the statement names it too,
              with the sha384 the manifest pins (squashfs-sha384) and the sha256 of the image read
  provenance  what the statement says was built (spec, version, commit, image digests, platform) is
              what the manifest says
  attestation the envelope file is the one the manifest pins (attestation-sha256)
  sbom-statement  when the manifest names an SBOM: an envelope signed by the same key says that file
              is this rootfs's SBOM
  image       with --image: the registry still serves the image digest the statement names
Finding problems only; commands/verify.py renders the result.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NoReturn, Protocol, overload
from urllib.parse import unquote, urlsplit

from ..bounded import Bounded, Limit, OverLimit, rootfs_limit
from ..errors import ExchangeError, redact
from ..manifests import ProcessedManifest
from .dsse import IN_TOTO_PAYLOAD_TYPE, EnvelopeError, check_signatures, parse_envelopes
from .keys import PublicKey
from .sbom_statement import SBOM_CHECK, sbom_statement_problem
from .statement import BuildFacts, StatementError, read_statement

ATTESTATION_URL = "attestation-url"
ATTESTATION_SHA256 = "attestation-sha256"
ATTESTATION_KEY_ID = "attestation-key-id"  # recorded since signing began to name it: older manifests lack it
ATTESTATION_SUFFIX = ".intoto.jsonl"
# An envelope file holds the SBOM statement too, whose predicate is the whole SBOM (base64 in the envelope).
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
ENVELOPE_LIMIT = Limit(MAX_ENVELOPE_BYTES, "an envelope")
SBOM_URL, SBOM_SHA256 = "sbom-url", "sbom-sha256"
SQUASHFS_URL, SQUASHFS_SHA384, SQUASHFS_SIZE = "squashfs-url", "squashfs-sha384", "squashfs-size"
MAX_SBOM_BYTES = 32 * 1024 * 1024
SBOM_LIMIT = Limit(MAX_SBOM_BYTES, "an SBOM")
BLOCK = 1024 * 1024

Opener = Callable[[str, Limit], AbstractContextManager[Bounded]]  # URL, limit -> a bounded binary stream


@dataclass(frozen=True)
class ManifestView:
    """What verification reads of a manifest, wherever it came from."""

    source: str  # path or URL, for messages
    org: str
    kind: str  # gear or boutique
    spec: dict[str, Any]
    record: dict[str, Any]  # the "exchange" block
    fetched_from: str | None = None  # the URL it was read from; None: a local file or the repository
    org_known: bool = True  # False: a manifest saved outside any manifests/<org>/ folder says no org

    def text(self, key: str) -> str | None:
        value = self.record.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def object_name(self) -> str | None:
        url = self.text("rootfs-url")
        if url is None:
            return None
        if url.startswith("docker://"):
            return url.removeprefix("docker://")
        return unquote(PurePosixPath(urlsplit(url).path).name) or None

    @property
    def image_delivered(self) -> bool:
        return (self.text("rootfs-url") or "").startswith("docker://")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    target: str
    checks: list[Check] = field(default_factory=list)
    key: PublicKey | None = None
    facts: BuildFacts | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failure(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)


class CheckFailed(Exception):
    """Internal: stops the run at the first failing check."""


@dataclass(frozen=True)
class ArtifactDigest:
    sha384: str
    sha256: str
    size: int

    def as_subject(self) -> dict[str, str]:
        return {"sha384": self.sha384, "sha256": self.sha256}


@dataclass(frozen=True)
class VerifyOptions:
    keys: list[PublicKey]
    artifact_file: Path | None = None  # instead of downloading the rootfs-url
    attestation_file: Path | None = None  # instead of downloading the attestation-url
    check_image: bool = False
    insecure_registries: tuple[str, ...] = ()
    # With the repository's keys: who added the key that verified, and the manifest (custody.py).
    custody: Callable[[PublicKey], tuple[bool, str]] | None = None
    sbom_file: Path | None = None  # instead of downloading the sbom-url
    squashfs_file: Path | None = None  # instead of downloading the squashfs-url


def verify_published(manifest: ManifestView, options: VerifyOptions, *, target: str,
                     open_url: Opener | None = None) -> Verification:
    opener = open_url or _opener_for(manifest)
    result = Verification(target)
    record = _recorder(result)
    try:
        artifact = _check_artifact(manifest, options, opener, record)
        sbom = _read_sbom(manifest, options, opener, record)
        squashfs = _check_squashfs(manifest, options, opener, record)
        envelope_bytes = _read_attestation(manifest, options, opener, record)
        _check_envelope(manifest, envelope_bytes, artifact, options, result, record, sbom, squashfs)
    except CheckFailed:
        pass
    return result


def _opener_for(manifest: ManifestView) -> Opener:
    """Opens what the manifest names, within what its origin may name (remote.refusal)."""
    from ..remote import open_named_url

    return lambda url, limit: open_named_url(url, manifest.fetched_from, limit)


def verify_envelope(manifest: ManifestView, envelope_bytes: bytes, digests: dict[str, str],
                    keys: list[PublicKey], sbom: bytes | None = None) -> Verification:
    """The envelope checks alone, for an artifact whose digests are already known to match the manifest
    (verify-storage --deep hashes the bucket's objects itself); with `sbom` (the file the manifest pins,
    read by the caller), its signed statement too."""
    result = Verification(manifest.source)
    record = _recorder(result)
    with contextlib.suppress(CheckFailed):  # the failure is recorded in `result`
        if sbom is not None:
            record("sbom", *sbom_hash_check(manifest, sbom))
        _check_envelope(manifest, envelope_bytes, digests, VerifyOptions(keys), result, record, sbom)
    return result


def sbom_hash_check(manifest: ManifestView, document: bytes) -> tuple[bool, str]:
    pinned = manifest.text(SBOM_SHA256)
    actual = hashlib.sha256(document).hexdigest()
    if pinned is None:
        return False, f"{manifest.source} names an SBOM but pins no {SBOM_SHA256}"
    if pinned.lower() != actual:
        return False, f"the SBOM hashes to sha256:{actual}, but the manifest pins {pinned}: it was changed or corrupted"
    return True, f"the SBOM is the one the manifest pins (sha256:{actual[:16]}…, {len(document)} bytes)"


def _read_sbom(manifest: ManifestView, options: VerifyOptions, opener: Opener, record: Record) -> bytes | None:
    """The SBOM the manifest names (or --sbom's file), checked against its sbom-sha256; None for a manifest
    without one."""
    url = manifest.text(SBOM_URL)
    if url is None:
        return None
    try:
        with _local_file(options.sbom_file, SBOM_LIMIT) if options.sbom_file else opener(url, SBOM_LIMIT) as stream:
            document = stream.read_all()
    except (ExchangeError, OSError) as error:
        record("sbom", False, f"cannot read the SBOM: {_reason(error)}")
    record("sbom", *sbom_hash_check(manifest, document))
    return document


def _check_squashfs(manifest: ManifestView, options: VerifyOptions, opener: Opener,
                    record: Record) -> ArtifactDigest | None:
    """The squashfs image the manifest names (or --squashfs's file), hashed and checked against its
    squashfs-sha384 and squashfs-size; None for a manifest without one."""
    url = manifest.text(SQUASHFS_URL)
    if url is None:
        return None
    pinned, size = (manifest.text(SQUASHFS_SHA384) or "").lower(), manifest.record.get(SQUASHFS_SIZE)
    if not pinned.startswith("sha384:") or not isinstance(size, int) or isinstance(size, bool):
        record("squashfs", False, f"{manifest.source} names a squashfs image but pins no {SQUASHFS_SHA384} "
                                  f"(sha384:<hex>) and {SQUASHFS_SIZE} to check it against")
    # Exactly squashfs-size bytes: a longer or shorter image fails as it is read (bounded.Limit).
    limit = Limit(size, "the squashfs image", exact=True)
    source = str(options.squashfs_file) if options.squashfs_file else redact(url)
    try:
        with _local_file(options.squashfs_file, limit) if options.squashfs_file else opener(url, limit) as stream:
            digest = hash_stream(stream)
    except OverLimit as error:  # longer than squashfs-size
        record("squashfs", False, f"{error}: it was changed or corrupted")
    except (ExchangeError, OSError) as error:
        record("squashfs", False, f"cannot read the squashfs image {source}: "
                                  f"{_reason(error)}")
    if f"sha384:{digest.sha384}" != pinned or digest.size != size:
        record("squashfs", False, f"{source} hashes to sha384:{digest.sha384} ({digest.size} bytes), but the "
                                  f"manifest pins {pinned} ({size} bytes): it was changed or corrupted")
    record("squashfs", True, f"{source}: sha384 matches the manifest ({digest.size} bytes)")
    return digest


def _check_sbom_statement(envelope_bytes: bytes, document: bytes, result: Verification, record: Record) -> None:
    assert result.key is not None and result.facts is not None, "after the envelope's checks passed"
    facts = result.facts
    problem = sbom_statement_problem(parse_envelopes(envelope_bytes, "the attestation"), [result.key],
                                     facts.subject_name, facts.subject_digests, document)
    record(SBOM_CHECK, problem is None, problem or "a statement signed by the same key names this SBOM for this rootfs")


class Record(Protocol):
    """Records a check; a failed one ends the run (CheckFailed), so nothing after `record(…, False, …)` runs."""

    @overload
    def __call__(self, name: str, ok: Literal[False], detail: str) -> NoReturn: ...

    @overload
    def __call__(self, name: str, ok: bool, detail: str) -> None: ...


def _recorder(result: Verification) -> Record:
    @overload
    def record(name: str, ok: Literal[False], detail: str) -> NoReturn: ...

    @overload
    def record(name: str, ok: bool, detail: str) -> None: ...

    def record(name: str, ok: bool, detail: str) -> None:
        result.checks.append(Check(name, ok, detail))
        if not ok:
            raise CheckFailed

    return record


def _check_envelope(manifest: ManifestView, envelope_bytes: bytes, digests: dict[str, str], options: VerifyOptions,
                    result: Verification, record: Record, sbom: bytes | None = None,
                    squashfs: ArtifactDigest | None = None) -> None:
    """The envelope's checks in order; with `sbom` (already checked against its pin), its signed statement;
    with `squashfs` (the image read, already checked against its pin), its subject's sha256 too."""
    try:
        envelopes = parse_envelopes(envelope_bytes, "the attestation")
    except EnvelopeError as error:
        record("envelope", False, str(error))
    record("envelope", True, f"{len(envelopes)} DSSE envelope(s), {len(envelope_bytes)} bytes")
    signed = [(envelope, check_signatures(envelope, options.keys)) for envelope in envelopes]
    verified = next(((envelope, check.key) for envelope, check in signed if check.key is not None), None)
    if verified is None:
        record("signature", False, signed[0][1].reason)
    envelope, key = verified
    result.key = key
    named = manifest.text(ATTESTATION_KEY_ID)
    if named is not None and named != key.key_id:
        record("signature", False, f"the manifest says key {named[:16]}… signed it, but it verifies with key "
                                   f"{key.key_id[:16]}…")
    record("signature", True, f"signed by the exchange's key {key.key_id} ({key.algorithm})")
    if options.custody is not None:
        record("custody", *options.custody(key))
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        record("statement", False, f"payloadType is {envelope.payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE}")
    try:
        facts = read_statement(envelope.payload)
    except StatementError as error:
        record("statement", False, f"the signed payload is not the exchange's provenance statement: {error}")
    result.facts = facts
    record("statement", True, "in-toto Statement v1, SLSA Provenance v1")
    record("subject", *_subject_check(manifest, digests, facts))
    if manifest.text(SQUASHFS_URL) is not None:
        record("squashfs-subject", *_squashfs_subject_check(manifest, facts, squashfs))
    record("provenance", *_provenance_check(manifest, facts))
    record("attestation", *_attestation_hash_check(manifest, envelope_bytes))
    if sbom is not None:
        _check_sbom_statement(envelope_bytes, sbom, result, record)
    if options.check_image:
        record("image", *_registry_check(facts, options))


def _check_artifact(manifest: ManifestView, options: VerifyOptions, opener: Opener,
                    record: Record) -> dict[str, str]:
    """The tarball's digests (checked against the manifest), or an image-delivered gear's sha256 digest."""
    expected = manifest.text("rootfs-hash")
    if expected is None:
        record("rootfs", False, f"{manifest.source} has no rootfs-hash: nothing to check the artifact against")
    if manifest.image_delivered:
        if not expected.startswith("sha256:"):
            record("rootfs", False, f"an image-delivered manifest's rootfs-hash must be sha256:, not {expected}")
        record("rootfs", True, f"image {manifest.object_name} (digest {expected}, checked against the statement)")
        algorithm, _, hex_digest = expected.partition(":")
        return {algorithm: hex_digest.lower()}
    algorithm, _, hex_digest = expected.partition(":")
    if algorithm != "sha384":
        record("rootfs", False, f"rootfs-hash {expected} is not sha384:<hex>")
    source, digest = _hash_artifact(manifest, options, opener, record)
    if digest.sha384 != hex_digest.lower():
        record("rootfs", False, f"{source} hashes to sha384:{digest.sha384}, but the manifest says {expected}: "
                                "the rootfs was tampered with or corrupted")
    size = manifest.record.get("rootfs-size")
    if isinstance(size, int) and size != digest.size:
        record("rootfs", False, f"{source} has {digest.size} bytes, the manifest says {size}")
    record("rootfs", True, f"{source}: sha384 matches the manifest ({digest.size} bytes)")
    return digest.as_subject()


def _hash_artifact(manifest: ManifestView, options: VerifyOptions, opener: Opener,
                   record: Record) -> tuple[str, ArtifactDigest]:
    limit = rootfs_limit(manifest.record.get("rootfs-size"))
    if options.artifact_file is not None:
        try:
            with _local_file(options.artifact_file, limit) as stream:
                return str(options.artifact_file), hash_stream(stream)
        except (ExchangeError, OSError) as error:
            record("rootfs", False, f"cannot read {options.artifact_file}: {_reason(error)}")
    url = manifest.text("rootfs-url")
    if url is None:
        record("rootfs", False, f"{manifest.source} has no rootfs-url; give the tarball with --file")
    try:
        with opener(url, limit) as stream:
            return redact(url), hash_stream(stream)
    except (ExchangeError, OSError) as error:
        record("rootfs", False, f"cannot download the rootfs: {error}")
    raise AssertionError("unreachable")  # record() raised


def hash_stream(stream: Bounded) -> ArtifactDigest:
    sha384, sha256, size = hashlib.sha384(), hashlib.sha256(), 0
    while block := stream.read(BLOCK):
        sha384.update(block)
        sha256.update(block)
        size += len(block)
    return ArtifactDigest(sha384.hexdigest(), sha256.hexdigest(), size)


def _read_attestation(manifest: ManifestView, options: VerifyOptions, opener: Opener, record: Record) -> bytes:
    if options.attestation_file is not None:
        try:
            with _local_file(options.attestation_file, ENVELOPE_LIMIT) as stream:
                return stream.read_all()
        except (ExchangeError, OSError) as error:
            record("envelope", False, f"cannot read {options.attestation_file}: {_reason(error)}")
    url = manifest.text(ATTESTATION_URL)
    if url is None:
        record("envelope", False, f"{manifest.source} has no {ATTESTATION_URL}: this version was published unsigned")
    try:
        with opener(url, ENVELOPE_LIMIT) as stream:
            return stream.read_all()
    except (ExchangeError, OSError) as error:
        record("envelope", False, f"cannot download the attestation: {error}")
    raise AssertionError("unreachable")


def _reason(error: ExchangeError | OSError) -> object:
    """Why reading failed: the system's words for an OSError (the path is in the message already)."""
    return getattr(error, "strerror", None) or error


def _local_file(path: Path, limit: Limit) -> AbstractContextManager[Bounded]:
    """A file the user gave (--file, --attestation): read with the same bounds, wherever the manifest came from."""
    from ..remote import open_url

    return open_url(path.resolve().as_uri(), limit)


def _subject_check(manifest: ManifestView, ours: dict[str, str], facts: BuildFacts) -> tuple[bool, str]:
    name = manifest.object_name
    claimed = facts.subject_digests
    shared = sorted(set(claimed) & set(ours))
    attested = f"{facts.subject_name} ({', '.join(f'{a}:{h[:16]}…' for a, h in sorted(claimed.items()))})"
    if not shared:
        return False, f"the envelope attests {attested} with no digest this check can compare ({', '.join(ours)})"
    mismatched = [algorithm for algorithm in shared if claimed[algorithm].lower() != ours[algorithm]]
    if mismatched:
        return False, (f"the envelope attests another artifact, {attested}; this artifact is {name} "
                       f"({mismatched[0]}:{ours[mismatched[0]][:16]}…)")
    if facts.subject_name != name:
        return False, f"the envelope attests {facts.subject_name!r}, but the manifest's artifact is {name!r}"
    return True, f"{name}: {', '.join(shared)} match"


def _squashfs_subject_check(manifest: ManifestView, facts: BuildFacts,
                            read: ArtifactDigest | None = None) -> tuple[bool, str]:
    """The manifest's squashfs image is a subject of the same signed statement, with the sha384 it pins
    (and, for an image read, the sha256 it has, when the statement gives one)."""
    url, pinned = manifest.text(SQUASHFS_URL) or "", (manifest.text(SQUASHFS_SHA384) or "").lower()
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    digests = facts.more_subjects.get(name)
    if digests is None:
        return False, f"the signed statement does not name the squashfs image {name!r} the manifest points at"
    if f"sha384:{digests.get('sha384', '').lower()}" != pinned:
        return False, (f"the signed statement gives {name} sha384:{digests.get('sha384', '')[:16]}…, but the "
                       f"manifest pins {pinned[:23]}…")
    claimed_sha256 = digests.get("sha256", "").lower()
    if read is not None and claimed_sha256 and claimed_sha256 != read.sha256:
        return False, (f"the signed statement gives {name} sha256:{claimed_sha256[:16]}…, but the image read "
                       f"hashes to sha256:{read.sha256[:16]}…")
    return True, f"{name}: its sha384 is the one the manifest pins"


def _provenance_check(manifest: ManifestView, facts: BuildFacts) -> tuple[bool, str]:
    spec, image = facts.spec, facts.image
    version_key = "version" if manifest.kind == "gear" else "tool-version"
    # A manifest with no known org (saved as manifest.json anywhere) is taken as the envelope's org, which
    # the result then names: the signature vouches for it, the manifest's folder would not.
    ours = (manifest.kind, manifest.org if manifest.org_known else spec.org, manifest.spec.get("name"),
            manifest.spec.get(version_key))
    theirs = (spec.kind, spec.org, spec.name, spec.version)
    if ours[:3] != theirs[:3]:
        return False, (f"the envelope attests {spec.kind} {spec.org}/{spec.name} ({spec.path}), but the manifest is "
                       f"for {ours[0]} {ours[1]}/{ours[2]}")
    if ours[3] != theirs[3]:
        return False, (f"the envelope attests version {spec.version} of {spec.org}/{spec.name}, but the manifest is "
                       f"for version {ours[3]}: an envelope replayed from another version")
    commit = manifest.text("git-commit")
    if commit != facts.source_commit:
        return False, (f"the envelope attests a build at commit {facts.source_commit}, but the manifest says "
                       f"{commit}: an envelope replayed from another run")
    problems = _image_mismatches(manifest, image)
    if problems:
        return False, f"the envelope and the manifest disagree on the image: {problems[0]}"
    return True, (f"{spec.kind} {spec.org}/{spec.name} {spec.version} from {spec.path} at commit "
                  f"{facts.source_commit[:12]}, image {image.digest_reference or image.reference}")


def _image_mismatches(manifest: ManifestView, image: Any) -> list[str]:
    problems = []
    if manifest.text("image") not in (None, image.reference):
        problems.append(f"the spec's image is {manifest.text('image')}, the envelope says {image.reference}")
    pinned = manifest.text("image-digest-reference")
    if pinned and "@" in pinned and pinned.rpartition("@")[2] != image.manifest_digest:
        problems.append(f"image digest {pinned.rpartition('@')[2]} in the manifest, {image.manifest_digest} attested")
    if manifest.text("image-config-digest") not in (None, image.config_digest):
        problems.append(f"config digest {manifest.text('image-config-digest')} in the manifest, "
                        f"{image.config_digest} attested")
    if manifest.text("platform") not in (None, image.platform):
        problems.append(f"platform {manifest.text('platform')} in the manifest, {image.platform} attested")
    return problems


def _attestation_hash_check(manifest: ManifestView, envelope_bytes: bytes) -> tuple[bool, str]:
    pinned = manifest.text(ATTESTATION_SHA256)
    actual = hashlib.sha256(envelope_bytes).hexdigest()
    if pinned is None:
        return False, f"{manifest.source} has no {ATTESTATION_SHA256} pinning the envelope"
    if pinned.removeprefix("sha256:").lower() != actual:
        return False, f"the envelope file hashes to sha256:{actual}, but the manifest pins {pinned}"
    return True, f"the envelope is the one the manifest pins (sha256:{actual[:16]}…)"


def _registry_check(facts: BuildFacts, options: VerifyOptions) -> tuple[bool, str]:
    """The registry serves, for the attested digest reference, a manifest that is that digest: both the
    digest it names (Docker-Content-Digest) and the digest of the bytes it sends. A 200 alone proves
    nothing: a registry (or a proxy) can answer any reference with any manifest."""
    from ..image.registry import served_manifest
    from ..reference import ReferenceError, parse_reference

    pinned = facts.image.digest_reference
    if pinned is None or "@" not in pinned:
        return False, "the statement names no image digest reference to look up"
    attested = pinned.rpartition("@")[2].lower()
    try:
        served = served_manifest(parse_reference(pinned), insecure_registries=options.insecure_registries)
    except (ReferenceError, ExchangeError) as error:
        return False, f"cannot ask the registry about {pinned}: {error}"
    if served is None:
        return False, f"the registry no longer serves {pinned}"
    if served.header_digest is not None and served.header_digest.lower() != attested:
        return False, f"asked for {pinned}, the registry names digest {served.header_digest} (Docker-Content-Digest)"
    if attested.startswith("sha256:") and served.body_digest != attested:
        return False, f"asked for {pinned}, the registry sends a manifest whose digest is {served.body_digest}"
    return True, f"the registry still serves {pinned} (its manifest's digest checked)"


def attestation_name(object_name: str) -> str:
    """`<object>.intoto.jsonl`: the in-toto bundle naming convention, beside the object."""
    return f"{object_name}{ATTESTATION_SUFFIX}"


def view_of(manifest: ProcessedManifest, shown: str | None = None, *, fetched_from: str | None = None,
            org_known: bool = True) -> ManifestView:
    """What verification reads of a manifest the exchange (or a file, or a URL) holds."""
    return ManifestView(shown or str(manifest.path), manifest.org or "", manifest.kind.value, manifest.spec,
                        manifest.exchange, fetched_from=fetched_from, org_known=org_known)

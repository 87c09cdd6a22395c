"""Renders a `StorageAudit`: one line per problem and a summary, or JSON."""

from __future__ import annotations

from typing import Any, TextIO

from ..quoting import printable
from .storage_audit import StorageAudit


def audit_summary(audit: StorageAudit) -> str:
    depth = "content hashed" if audit.deep else "sizes and recorded hashes compared; --deep hashes content"
    unreadable = f", {len(audit.unreadable)} unreadable manifest(s)" if audit.unreadable else ""
    envelopes = f" and {audit.envelopes_checked} envelope(s)" if audit.envelopes_checked else ""
    unsigned = f"; {len(audit.unsigned)} manifest(s) unsigned" if audit.deep else ""
    return (f"{audit.bucket_uri}: {audit.checked} artifact(s){envelopes} checked ({depth}): {len(audit.missing)} missing, "
            f"{len(audit.damaged)} damaged, {len(audit.orphans)} orphan(s){unreadable}{unsigned}")


def render_audit(audit: StorageAudit, stream: TextIO) -> None:
    for problem in audit.unreadable:
        print(printable(f"unreadable manifest: {problem}"), file=stream)
    for missing in audit.missing:
        print(printable(f"missing: {missing.object_name}: referenced by {', '.join(missing.manifests)}"), file=stream)
    for damaged in audit.damaged:
        print(printable(f"damaged: {damaged.object_name}: {damaged.problem} ({', '.join(damaged.manifests)})"), file=stream)
    for orphan in audit.orphans:
        print(printable(f"orphan: {orphan.name}: {orphan.size} bytes, no manifest references it"), file=stream)
    for path in audit.unsigned:
        print(printable(f"unsigned: {path}: no attestation-url (published without signed provenance)"), file=stream)
    print(printable(audit_summary(audit)), file=stream)


def audit_as_json(audit: StorageAudit) -> dict[str, Any]:
    return {
        "ok": audit.ok,
        "bucket": audit.bucket_uri,
        "deep": audit.deep,
        "checked": audit.checked,
        "missing": [{"object": m.object_name, "manifests": list(m.manifests)} for m in audit.missing],
        "damaged": [{"object": d.object_name, "manifests": list(d.manifests), "problem": d.problem}
                    for d in audit.damaged],
        "orphans": [{"object": o.name, "size": o.size} for o in audit.orphans],
        "unreadable-manifests": [{"path": p.path, "reason": p.reason} for p in audit.unreadable],
        "envelopes-checked": audit.envelopes_checked,
        "unsigned-manifests": audit.unsigned,
    }

"""Stage 3 at fan-in (--finalize): the artifacts are read from the shards' records, after checking they add up.

Every object any shard created goes into the run's ledger first, so whatever fails from here on (a
missing or duplicated record, an object that is not in the bucket, the push) deletes them all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from ..errors import ExchangeError
from ..storage.bucket import Bucket
from .artifacts import Artifact, artifact_name
from .delivery.stage import Delivery
from .ledger import CreatedObjects
from .plan import Plan, SpecJob
from .shard_records import ArtifactEntry, ShardRecord, read_records


class ShardsDoNotAddUp(ExchangeError):
    """The records do not cover every changed spec exactly once, or an object is not what they say."""


def collect_shard_artifacts(plan: Plan, finalize_dir: Path, bucket: Bucket, ledger: CreatedObjects,
                            delivery: Delivery, log: Callable[[str], None]) -> list[Artifact]:
    records = read_records(finalize_dir)
    for record in records:  # adopted first: whatever goes wrong next, every shard's work is undone
        for created in record.created:
            ledger.record(created.name, created.generation)
        delivery.adopt_tags(record.created_tags)
    problems = record_problems(plan, records, bucket.uri)
    entries = _entries_by_spec(records)
    unique = {spec: found[0][1] for spec, found in entries.items() if len(found) == 1}
    jobs = {job.relative_path: job for job in plan.jobs}
    problems += [problem for spec, entry in unique.items() if spec in jobs and entry.in_bucket
                 for problem in object_problems(jobs[spec], entry, bucket)]
    if problems:
        raise ShardsDoNotAddUp(f"the shard records in {finalize_dir} do not add up; nothing is published:\n  "
                               + "\n  ".join(problems))
    log(f"finalize: {len(records)} shard record(s) cover the {len(plan.jobs)} changed spec(s); "
        "every artifact is in the bucket")
    return [_artifact(job, unique[job.relative_path], bucket) for job in plan.jobs]


def _artifact(job: SpecJob, entry: ArtifactEntry, bucket: Bucket) -> Artifact:
    # The URL the finalize step's own settings give, as a one-machine run would write it.
    return entry.artifact_for(job, bucket.download_url(entry.artifact) if entry.in_bucket else entry.url)


def record_problems(plan: Plan, records: list[ShardRecord], bucket_uri: str) -> list[str]:
    """Every way the records fail to be one complete, consistent fan-out of this plan."""
    if not records:
        return ["no shard records at all (did the shards run and the workspace reach this job?)"]
    problems = [f"{record.file_name}: made at commit {record.source_commit[:12]}, not at {plan.source_commit[:12]}"
                for record in records if record.source_commit != plan.source_commit]
    problems += [f"{record.file_name}: uploaded to {record.bucket}, not to {bucket_uri}"
                 for record in records if record.bucket != bucket_uri]
    problems += _shard_problems(records)
    if len({tuple(sorted(record.assignment.items())) for record in records}) > 1:
        problems.append("the shards disagree on which spec goes where (did image sizes change between them?)")
    entries = _entries_by_spec(records)
    for job in plan.jobs:
        found = entries.get(job.relative_path, [])
        if not found:
            problems.append(f"{job.relative_path}: no shard recorded it")
        elif len(found) > 1:
            problems.append(f"{job.relative_path}: recorded {len(found)} times, by "
                            + ", ".join(record.file_name for record, _ in found))
    planned = {job.relative_path for job in plan.jobs}
    problems += [f"{spec}: recorded, but it is not a spec to process at this commit"
                 for spec in sorted(set(entries) - planned)]
    return problems


def _shard_problems(records: list[ShardRecord]) -> list[str]:
    totals = sorted({record.shard.total for record in records})
    if len(totals) > 1:
        return [f"records from fan-outs of different sizes: {', '.join(map(str, totals))} shards"]
    by_index: dict[int, list[ShardRecord]] = defaultdict(list)
    for record in records:
        by_index[record.shard.index].append(record)
    problems = [f"no record from shard {index}/{totals[0]}" for index in range(1, totals[0] + 1) if index not in by_index]
    problems += [f"shard {index}/{totals[0]} has {len(found)} records: "
                 + ", ".join(record.file_name for record in found)
                 for index, found in sorted(by_index.items()) if len(found) > 1]
    return problems


def object_problems(job: SpecJob, entry: ArtifactEntry, bucket: Bucket) -> list[str]:
    """The recorded object must be in the bucket with the recorded size and hash, under its content name."""
    if entry.artifact != artifact_name(job, entry.sha384):
        return [f"{job.relative_path}: recorded artifact {entry.artifact} is not named after its hash"]
    found = bucket.mismatch(entry.artifact, size=entry.size, sha384=entry.sha384)
    return [] if found is None else [f"{job.relative_path}: {found.describe(entry.artifact, 'the record')}"]


def _entries_by_spec(records: list[ShardRecord]) -> dict[str, list[tuple[ShardRecord, ArtifactEntry]]]:
    entries: dict[str, list[tuple[ShardRecord, ArtifactEntry]]] = defaultdict(list)
    for record in records:
        for entry in record.artifacts:
            entries[entry.spec].append((record, entry))
    return entries

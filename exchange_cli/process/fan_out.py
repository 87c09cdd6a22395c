"""One fan-out machine: export and upload this shard's share of the plan, then record it for finalize.

A shard never touches git. If it fails or is interrupted it deletes the objects it created and
writes no record, so the finalize step sees the shard as missing and publishes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from ..delivery.stage import Delivery
from ..progress import Progress
from .image_sizes import image_sizes
from .ledger import CreatedObjects
from .run import Log, ProcessOptions, ProcessOutcome, build_artifacts, describe
from .shard_records import ArtifactEntry, ShardRecord
from .shards import assign, share_of
from .signals import CancellableProgress, interrupts_raise


def process_shard(outcome: ProcessOutcome, options: ProcessOptions, *, progress: Progress, log: Log) -> ProcessOutcome:
    plan, shard = outcome.plan, options.shard
    assert shard is not None and (options.shard_dir is not None or options.dry_run)
    sizes = image_sizes(plan.jobs, options.export) if plan.jobs else {}
    assignment = assign(plan.jobs, shard.total, sizes)
    outcome.share = share_of(plan.jobs, shard, assignment)
    by = "image size" if plan.jobs and all(size is not None for size in sizes.values()) else "count"
    log(f"shard {shard}: {len(outcome.share)} of {len(plan.jobs)} spec(s), split by {by}")
    if options.dry_run:
        return outcome
    ledger = CreatedObjects()
    delivery = Delivery(options.delivery, options.export, log)
    cancelled = threading.Event()
    work_dir = Path(tempfile.mkdtemp(prefix="exchange-process-"))
    try:
        with interrupts_raise():
            outcome.artifacts = build_artifacts(replace(plan, jobs=outcome.share), options, work_dir, ledger,
                                                CancellableProgress(progress, cancelled), cancelled, log,
                                                on_artifact=outcome.exported.append, delivery=delivery)
            record = ShardRecord(plan.source_commit, shard, options.bucket.uri, assignment,  # type: ignore[attr-defined]
                                 [ArtifactEntry.of(artifact) for artifact in outcome.artifacts], ledger.objects(),
                                 delivery.created_tags())
            outcome.record_path = record.write(options.shard_dir)  # type: ignore[arg-type]
            log(f"shard {shard}: recorded {len(record.artifacts)} artifact(s) in {outcome.record_path}")
    except BaseException:
        cancelled.set()
        outcome.rollback = ledger.delete_all(options.bucket)
        delivery.rollback(outcome.rollback)  # the mirrored tags this shard created
        log(describe(outcome.rollback, None))
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return outcome

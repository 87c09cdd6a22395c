"""`exchange process`: changed specs -> rootfs artifacts in the bucket -> manifests -> git, as one transaction.

One orchestrator (run.py, `process_exchange`, called by commands/process.py) enters each stage once, in
this order, for every mode (one machine, a shard, the finalize); each stage is given what it needs,
returns its record, and calls nothing back up. The run report names the stages a run entered.

    0. recover    recovery.py    one context around stages 1-5, entered once (`recovered`):
                  checkout_lock.py   one run per work tree
                  leftovers.py   work directories, partial uploads and the lease of runs that are gone
                  resume.py      manifest commits an earlier run made but never pushed: pushed, or rolled back
                                 with the objects only they referenced
                  confirm.py     (finish_unfinished) the check after a push a dead run never finished;
                                 again on leaving `holding_lease`, for leases broken while we waited
    1. plan       plan.py        the changed specs that validate, minus those already processed
       (shard)    shards.py, image_sizes.py   a shard's share of the plan
    2. check      check.py       resolve each image once, conformance-check its tree (the flattener's
                                 pass 1, kept for the export) -> CheckedJob(job, image, index);
                                 not at --finalize (each shard checked its own)
    3. artifacts  artifacts.py   export the checked image, upload by hash -> Artifact
                  delivery/      (stage.py) mirrors an image, or delivers it instead of a rootfs
                  fan_in.py      at --finalize: the artifacts the shards recorded (shard_records.py)
    4. publish    publish.py     manifests placed by content (placement.py), committed (transaction.py),
                                 pushed -> Published; attestations.py signs (a PublishHook).
                                 A shard publishes its record (shard_records.py) for finalize instead
    5. confirm    confirm.py     after the push: every referenced object is there with its size and hash
    on failure    rollback.py    (in 3 and 4) undoes this run's commits, the objects it created (keeping
                                 what the remote's manifests reference: references.py) and its mirrored tags

Alongside: context.py (options, outcome), ledger.py (objects created, for rollback), signals.py
(SIGTERM as an interrupt), report.py and run_report.py (what happened), history.py (git history).
"""

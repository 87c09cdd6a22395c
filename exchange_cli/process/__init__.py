"""`exchange process`: changed specs -> rootfs artifacts in the bucket -> manifests -> git, as one transaction.

The stages, each called from above (commands/process.py -> run.py, `process_exchange`, one orchestrator
per mode: one machine, a shard, the finalize), none calling back up:

    0. recover    checkout_lock.py   one run per work tree
                  leftovers.py   work directories, partial uploads and the lease of runs that are gone
                  resume.py      manifest commits an earlier run made but never pushed: pushed, or rolled back
                  confirm.py     (finish_unfinished) the check after a push a dead run never finished
    1. plan       plan.py        the changed specs that validate, minus those already processed
       (shard)    shards.py, image_sizes.py   a shard's share of the plan
    2. check      check.py       resolve each image once, conformance-check it -> CheckedJob(job, image)
    3. artifacts  artifacts.py   export the checked image, upload by hash; attestations.py signs it
                  delivery/      (stage.py) mirrors an image, or delivers it instead of a rootfs
                  fan_in.py      at --finalize: the artifacts the shards recorded (shard_records.py)
    4. publish    publish.py     manifests placed by content (placement.py), committed (transaction.py),
                                 pushed; PublishHook extends it
    5. confirm    confirm.py     after the push: every referenced object is there with its size and hash
    on failure    rollback.py    deletes what this run created, keeping what the remote's manifests
                                 reference (references.py)

Alongside: context.py (options, outcome), ledger.py (objects created, for rollback), signals.py
(SIGTERM as an interrupt), report.py and run_report.py (what happened), history.py (git history).
"""

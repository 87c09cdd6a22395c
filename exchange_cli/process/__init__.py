"""`exchange process`: changed specs -> rootfs artifacts in the bucket -> manifests -> git, as one transaction.

The stages, each called from above (commands/process.py -> run.py, one orchestrator per mode), none
calling back up:

    1. plan       plan.py        the changed specs that validate, minus those already processed
       (shard)    shards.py, image_sizes.py   a shard's share of the plan
    2. check      check.py       resolve each image once, conformance-check it -> CheckedJob(job, image)
    3. artifacts  artifacts.py   export the checked image, upload by hash; delivery/stage.py mirrors or
                                 delivers the image
                  fan_in.py      at --finalize: the artifacts the shards recorded (shard_records.py)
    4. publish    publish.py     manifests committed (transaction.py), pushed; PublishHook extends it

Alongside: context.py (options, outcome), ledger.py (objects created, for rollback), signals.py
(SIGTERM as an interrupt), report.py and run_report.py (what happened), history.py (git history).
"""

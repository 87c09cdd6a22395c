"""Buckets (bucket.py: a local directory or Google Cloud Storage; settings.py: which one) and the control
objects runs keep in them (lease.py, owner.py)."""

# How long a run waits for another run's lease (lease.py), and the variable that sets it: here, so that
# `exchange process --help` shows them without loading the buckets.
DEFAULT_WAIT_SECONDS = 1800.0
WAIT_ENV = "EXCHANGE_LEASE_WAIT"

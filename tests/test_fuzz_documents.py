"""The fuzz driver (tests/fuzz_documents.py), one round in CI, in a process of its own under RLIMIT_AS:
no exception but the readers' own escapes, memory bounded. The 10-minute hunt is the same driver with
--minutes 10 (docs/testing.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DRIVER = Path(__file__).with_name("fuzz_documents.py")


def test_every_reader_of_outside_documents_survives_fuzzing_within_its_memory() -> None:
    result = subprocess.run([sys.executable, str(DRIVER), "--examples", "150"], capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert set(summary["examples"]) == {"envelope", "statement", "policy", "lease", "ownership", "manifest"}
    assert summary["peak-rss-mib"] < summary["memory-limit-mib"]

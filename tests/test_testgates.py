"""exchange_cli/testgates.py: a gate holds a run only when a test armed it, and lets it go when disarmed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from exchange_cli.testgates import GATES_ENV, gate


def test_without_the_variable_a_gate_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(GATES_ENV, raising=False)
    (tmp_path / "upload.armed").touch()  # armed in a directory nobody named: still inert
    gate("upload")
    assert not (tmp_path / "upload.reached").exists()


def test_an_unarmed_gate_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(GATES_ENV, str(tmp_path))
    (tmp_path / "export.armed").touch()
    gate("upload")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.armed"]


def test_an_armed_gate_holds_until_it_is_disarmed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(GATES_ENV, str(tmp_path))
    (tmp_path / "upload.armed").touch()
    passed = threading.Event()
    held = threading.Thread(target=lambda: (gate("upload"), passed.set()), daemon=True)
    held.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "upload.reached").exists():
        assert time.monotonic() < deadline, "the gate was never reached"
        time.sleep(0.01)
    assert not passed.wait(0.2), "went through an armed gate"
    (tmp_path / "upload.armed").unlink()
    assert passed.wait(30), "still held after the gate was disarmed"

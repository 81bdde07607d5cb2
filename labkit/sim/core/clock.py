"""The simulated clock: what time it is for schedules and data collection.

``now()`` starts at the real time when first used and moves only when ``advance`` moves it
(it never runs behind the real clock, so a notebook picked up days later does not live in
the past). The time is kept in ``<root>/clock.json`` for the active simulation root, so every
process working on that root agrees on it.

``advance(days=1)`` (in ``labkit.sim.schedules.clock``) moves the clock forward and fires, in
time order, every enabled schedule of the root's workspaces that falls due in between: each firing submits the schedule's
pipeline job through the simulated ``jobs.create_or_update``, as the service does, at once
(nothing waits in real time). It returns the names of the jobs it submitted::

    import labkit.sim.clock
    labkit.sim.clock.advance(days=1)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from labkit.sim.core import config

STATE_FILE = "clock.json"


def _root() -> Path:
    root = config.resolve_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[Path]:
    """One process at a time reads and moves the clock of a root."""
    with open(root / ".clock.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root / STATE_FILE
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["now"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _write(path: Path, moment: datetime) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"now": moment.isoformat()}, indent=2))
    os.replace(tmp, path)


def now() -> datetime:
    """The simulated time (UTC, timezone-aware)."""
    with _locked(_root()) as path:
        return _now(path)


def _now(path: Path) -> datetime:
    real = datetime.now(timezone.utc)
    stored = _read(path)
    if stored is None:
        _write(path, real)
        return real
    return max(stored, real)

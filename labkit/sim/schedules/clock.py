"""Moving the simulated clock: ``advance`` fires, in time order, the schedules that fall due.

The time itself (``now``, kept in ``<root>/clock.json``) is ``labkit.sim.core.clock``'s, below
every operation group; moving it fires schedules, which submit jobs and monitors, so it is
here, above them. Learners call both as ``labkit.sim.clock``.
"""
from __future__ import annotations

from datetime import timedelta

from labkit.sim.core.clock import _locked, _now, _root, _write
from labkit.sim.schedules.operations import due_firings, fire



def advance(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0,
            weeks: float = 0) -> list[str]:
    """Move the simulated clock forward; fire the schedules that fall due; return the names of
    the jobs submitted, in firing order."""
    step = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, weeks=weeks)
    if step < timedelta(0):
        raise ValueError("The simulated clock only moves forward.")
    root = _root()
    with _locked(root) as path:
        start = _now(path)
        end = start + step
        submitted = []
        for moment, workspace, schedule in due_firings(root, start, end):
            _write(path, moment)  # a job submitted now sees the time it was scheduled for
            submitted.append(fire(workspace, schedule, moment))
        _write(path, end)
    return submitted

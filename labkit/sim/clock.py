"""The public name of the simulated clock: ``labkit.sim.clock.now()`` and ``advance(days=1)``.

Labs call it by this name. The time is kept by ``labkit.sim.core.clock``; moving it fires the
schedules that fall due, which ``labkit.sim.schedules.clock`` does.
"""
from labkit.sim.core.clock import STATE_FILE, now
from labkit.sim.schedules.clock import advance

__all__ = ["STATE_FILE", "advance", "now"]

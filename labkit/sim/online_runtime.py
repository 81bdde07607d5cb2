"""The public name of ``labkit.sim.endpoints.online_runtime``: the processes behind online endpoints (free_port, stop_process ... used by benchmarks/bench_online_endpoints.py).

This is the module itself under its earlier name (``sys.modules`` maps one to the other), not a
copy, so attributes read or patched through either name are the same.
"""
import sys

from labkit.sim.endpoints import online_runtime as _module

sys.modules[__name__] = _module

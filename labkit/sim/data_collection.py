"""The public name of ``labkit.sim.endpoints.data_collection``: an online deployment's data collector.

This is the module itself under its earlier name (``sys.modules`` maps one to the other), not a
copy, so attributes read or patched through either name are the same.
"""
import sys

from labkit.sim.endpoints import data_collection as _module

sys.modules[__name__] = _module

"""The public name of ``labkit.sim.core.credentials``: the fake azure-identity credentials.

This is the module itself under its earlier name (``sys.modules`` maps one to the other), not a
copy, so attributes read or patched through either name are the same.
"""
import sys

from labkit.sim.core import credentials as _module

sys.modules[__name__] = _module

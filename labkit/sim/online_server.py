"""The public name of one online deployment instance's server: ``python -m labkit.sim.online_server``.

Labs (online-endpoints.md) and benchmarks run it by this name, with azmlinfsrv's arguments; the
module is ``labkit.sim.endpoints.online_server``. Run as a script, this calls its ``main``;
imported, it is that module itself (``sys.modules`` maps one name to the other).
"""
import sys

from labkit.sim.endpoints import online_server as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module

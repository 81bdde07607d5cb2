"""The simulated workspace: a local stand-in for the Azure ML service.

Two ways in:

- ``labkit.connect(backend="simulated")`` (what the labs call) or :func:`connect`;
- :func:`activate` (moto style): while active, ``azure.ai.ml.MLClient(...)`` and
  ``MLClient.from_config(...)`` build simulated clients and the azure-identity credentials
  hand out fake tokens, so a notebook written for Azure runs unchanged. It works as a
  plain call or as a context manager; :func:`deactivate` undoes it.

See ``labkit/sim/README.md`` for what is simulated and how it differs from Azure.
"""
from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from labkit.sim.core import config
from labkit.sim.core.tracking import forget_workspace_tracking_uri, use_workspace_tracking_uri  # noqa: F401 - public

if TYPE_CHECKING:
    from labkit.sim.core.client import SimMLClient

__all__ = ["activate", "deactivate", "connect", "is_active", "running", "stop_everything", "SimMLClient", "workspace_folder"]


def __getattr__(name: str):
    # The client module imports the whole Azure ML SDK; a job's worker process imports this
    # package without needing it, so it is loaded on first use.
    if name == "SimMLClient":
        from labkit.sim.core.client import SimMLClient

        return SimMLClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class _Activation:
    """Returned by :func:`activate`; leaving its ``with`` block deactivates."""

    def __enter__(self) -> "_Activation":
        return self

    def __exit__(self, *exc) -> None:
        deactivate()


_saved: dict | None = None


def _new_client(cls, *args, **kwargs):
    """``MLClient.__new__`` once the simulation has been activated in this process.

    While active, ``MLClient(...)`` builds a ``SimMLClient``; otherwise the class itself, as
    before. It stays installed after deactivation because CPython cannot cleanly remove a
    ``__new__`` from a class once set (``object.__new__`` then rejects the arguments).
    """
    from labkit.sim.core.client import SimMLClient

    return object.__new__(SimMLClient if cls is MLClient_class() and is_active() else cls)


def MLClient_class():
    from azure.ai.ml import MLClient

    return MLClient


def is_active() -> bool:
    return _saved is not None


def activate(root: str | os.PathLike | None = None) -> _Activation:
    """Route ``MLClient`` and the azure-identity credentials to the simulation.

    ``root``: the folder of simulated workspaces (else ``$LABKIT_SIM_ROOT``, else
    ``~/.labkit/workspaces``). Activating again only changes the root.
    """
    global _saved
    from azure.ai.ml import MLClient

    from labkit.sim.core import credentials
    from labkit.sim.core import fs

    if root is not None:
        config.active_root = Path(root).expanduser().resolve()
    if _saved is not None:
        return _Activation()

    def simulated_from_config(cls, credential=None, *, path=None, file_name=None, **kwargs):
        from labkit.sim.core.client import SimMLClient

        names = config.names_from_config(path, file_name)
        return SimMLClient(credential, *names, **kwargs)

    _saved = {
        "from_config": MLClient.__dict__["from_config"],
        "credentials": credentials.patch(),
        "fs": fs.register(),
    }
    MLClient.__new__ = _new_client
    MLClient.from_config = classmethod(simulated_from_config)
    _use_configured_workspace_for_mlflow()
    return _Activation()


def _use_configured_workspace_for_mlflow() -> None:
    """With a ``config.json`` in reach, the notebook is "on a compute instance" of that workspace."""
    from labkit.sim.core.client import malformed_subscription
    from labkit.workspace_config import find_config

    if not find_config(None, None):
        return
    names = config.names_from_config(None, None)
    if not malformed_subscription(names[0]):  # a placeholder names no workspace to reach
        use_workspace_tracking_uri(config.open_workspace(config.resolve_root(), *names))


def deactivate() -> None:
    """Undo :func:`activate`. Harmless when not active."""
    global _saved
    if _saved is None:
        return
    from azure.ai.ml import MLClient

    from labkit.sim.core import credentials
    from labkit.sim.core import fs

    MLClient.from_config = _saved["from_config"]
    from labkit.sim.endpoints import online_runtime

    online_runtime.stop_all()  # online endpoints' servers this process started or found
    credentials.restore(_saved["credentials"])
    fs.unregister(_saved["fs"])
    forget_workspace_tracking_uri()
    config.active_root = None
    _saved = None


def running(root: str | os.PathLike | None = None) -> list[str]:
    """What the simulated workspaces under ``root`` still run: jobs in progress and online
    endpoints' servers (see :mod:`labkit.sim.leftovers`)."""
    from labkit.sim import leftovers

    return leftovers.running(root)


def stop_everything(root: str | os.PathLike | None = None) -> list[str]:
    """Cancel every job in progress and stop every endpoint server under ``root``; what was
    stopped. Records stay: an endpoint serves again at its next call."""
    from labkit.sim import leftovers

    return leftovers.stop_everything(root)


def connect(root: str | os.PathLike | None = None, workspace_name: str | None = None) -> "SimMLClient":
    """Activate the simulation and return a client for its workspace (from ``config.json``
    if there is one, else the default names)."""
    activate(root)
    subscription, group, workspace = config.names_from_config(None, None)
    from labkit.sim.core.client import SimMLClient

    return SimMLClient(None, subscription, group, workspace_name or workspace)


def workspace_folder(client: "SimMLClient") -> Path:
    return client._sim_workspace.folder

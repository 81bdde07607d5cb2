"""Where simulated workspaces live and what they are called when nothing says otherwise."""
from __future__ import annotations

import os
from pathlib import Path

from labkit.sim.core.workspace import SimWorkspace

ROOT_ENV_VAR = "LABKIT_SIM_ROOT"
DEFAULT_ROOT = Path.home() / ".labkit" / "workspaces"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "rg-dp100-labs"
DEFAULT_WORKSPACE = "mlw-dp100-labs"


# Set by labkit.sim.activate(root=...) while the simulation is active.
active_root: Path | None = None


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else the active one, else ``$LABKIT_SIM_ROOT``, else ``~/.labkit/workspaces``."""
    chosen = root or active_root or os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def names_from_config(path=None, file_name=None) -> tuple[str, str, str]:
    """(subscription, resource group, workspace) from a ``config.json`` found where
    ``MLClient.from_config`` looks, else the simulation's default names."""
    from azure.ai.ml import MLClient

    from labkit.workspace_config import find_config

    found = find_config(path, file_name)
    if found:
        return MLClient._get_workspace_info(str(found))
    return DEFAULT_SUBSCRIPTION, DEFAULT_RESOURCE_GROUP, DEFAULT_WORKSPACE


def open_workspace(root: Path, subscription_id: str, resource_group: str, name: str) -> SimWorkspace:
    """The simulated workspace ``name``, provisioned on first use.

    On Azure the workspace must exist before a client can use it (it is created in the
    portal, with the CLI or with ``ml_client.workspaces.begin_create``); the simulation
    creates it the first time a client names it, as if that step had been done.
    """
    from labkit.sim.core.provisioning import provision

    workspace = SimWorkspace(subscription_id, resource_group, name, root / name)
    provision(workspace)
    return workspace

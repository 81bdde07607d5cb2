"""labkit: what the DP-100 labs import.

``connect()`` hands a lab an ``azure.ai.ml.MLClient``: for a real workspace when one is
configured, otherwise for the simulated workspace of :mod:`labkit.sim`. The lab code after
that line is the same either way.
"""
from __future__ import annotations

import os
from pathlib import Path

from labkit import quiet
from labkit.workspace_config import find_config

quiet.install()

__all__ = ["connect", "data_file", "installed_requirements", "BACKENDS"]

BACKENDS = ("auto", "simulated", "azure")
# The three variables MLClient needs when no config.json is used (the names the Azure ML
# docs and the azure-ai-ml samples use).
AZURE_ENV_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_file(name: str) -> Path:
    """Path of a file in the book's ``data/`` folder, wherever the lab runs from."""
    path = REPO_ROOT / "data" / name
    if not path.exists():
        raise FileNotFoundError(f"{name!r} is not in {path.parent}; run scripts/make_data.py")
    return path


def installed_requirements(*packages: str) -> list[str]:
    """``package==version`` for each of ``packages`` installed in this Python, the others
    left out: the pins a model saved here needs to load elsewhere (MLflow 3 saves
    scikit-learn models with skops, which MLflow 2 environments do not have)."""
    from importlib import metadata

    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return pins


def _choose_backend(backend: str) -> str:
    backend = os.environ.get("LABKIT_BACKEND", backend) if backend == "auto" else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend != "auto":
        return backend
    configured = find_config() or all(os.environ.get(v) for v in AZURE_ENV_VARS)
    return "azure" if configured else "simulated"


def _connect_azure():
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    # Neither the constructor nor the credential calls Azure: the first token is fetched
    # when the first operation runs.
    credential = DefaultAzureCredential()
    config = find_config()
    if config is not None:
        return MLClient.from_config(credential, path=str(config), enable_telemetry=False)
    sub, group, workspace = (os.environ[v] for v in AZURE_ENV_VARS)
    return MLClient(credential, sub, group, workspace, enable_telemetry=False)


def connect(backend: str = "auto", root: str | os.PathLike | None = None):
    """An ``MLClient`` for this lab: Azure when configured, else the simulated workspace.

    ``backend``: ``"auto"`` (a ``config.json`` where ``MLClient.from_config`` looks, or the
    ``AZURE_SUBSCRIPTION_ID`` / ``AZURE_RESOURCE_GROUP`` / ``AZUREML_WORKSPACE_NAME``
    variables, mean Azure; anything else the simulation), ``"simulated"`` or ``"azure"``.
    The ``LABKIT_BACKEND`` variable overrides ``"auto"``. ``root``: the folder of simulated
    workspaces (default: ``LABKIT_SIM_ROOT``, else ``~/.labkit/workspaces``).
    """
    chosen = _choose_backend(backend)
    if chosen == "azure":
        client = _connect_azure()
        print(f"Connected to Azure ML workspace {client.workspace_name!r} "
              f"(resource group {client.resource_group_name!r}).")
        return client
    from labkit import sim

    client = sim.connect(root=root)
    print(f"Connected to the SIMULATED workspace {client.workspace_name!r} "
          f"(a local stand-in for Azure ML, stored in {sim.workspace_folder(client)}).")
    return client

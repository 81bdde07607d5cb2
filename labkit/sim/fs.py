"""``azureml://`` URIs on the local disk while the simulation is active.

On Azure, azureml-fsspec registers the ``azureml`` protocol with fsspec, so
``pandas.read_csv("azureml://subscriptions/.../datastores/<store>/paths/<file>")`` reads
from the datastore. Here the same protocol maps to the datastore's folder in the simulated
workspace. ``mltable.load`` reads through its own engine rather than fsspec, so it is
wrapped to hand that engine the local folder instead of the URI.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import importlib

import fsspec
from fsspec.implementations.local import LocalFileSystem

# ``fsspec.registry`` is shadowed by a read-only view; the module holds the writable dict.
_fsspec_registry = importlib.import_module("fsspec.registry")

LONG_URI = re.compile(
    r"^azureml://subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/workspaces/(?P<ws>[^/]+)"
    r"/datastores/(?P<datastore>[^/]+)/paths/?(?P<path>.*)$", re.IGNORECASE)
SHORT_URI = re.compile(r"^azureml://datastores/(?P<datastore>[^/]+)/paths/?(?P<path>.*)$")


def local_path(uri: str) -> str:
    """The local path that an ``azureml://`` datastore URI stands for in the simulation."""
    from labkit.sim import config
    from labkit.sim.datastores import datastore_folder
    from labkit.sim.workspace import SimWorkspace

    match = LONG_URI.match(uri)
    if match:
        workspace = SimWorkspace(match["sub"], match["rg"], match["ws"], config.resolve_root() / match["ws"])
    else:
        match = SHORT_URI.match(uri)
        if not match:
            raise ValueError(
                f"{uri!r} is not a datastore URI: expected azureml://subscriptions/<id>/resourcegroups/"
                "<group>/workspaces/<workspace>/datastores/<datastore>/paths/<path>")
        subscription, group, name = config.names_from_config()
        workspace = SimWorkspace(subscription, group, name, config.resolve_root() / name)
    if not (workspace.folder / "workspace.db").is_file():
        raise FileNotFoundError(f"No simulated workspace {workspace.name!r} under {config.resolve_root()}")
    return str(datastore_folder(workspace, match["datastore"]) / match["path"])


class SimulatedDatastoreFileSystem(LocalFileSystem):
    """fsspec's local file system, addressed with ``azureml://`` URIs."""

    protocol = "azureml"
    root_marker = "/"

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, str) and path.startswith("azureml://"):
            path = local_path(path)
        return LocalFileSystem._strip_protocol(path)


def _wrap_mltable_load(load):
    @functools.wraps(load)
    def load_simulated(uri, *args, **kwargs):
        if isinstance(uri, str) and uri.startswith("azureml://"):
            uri = local_path(uri)
        return load(uri, *args, **kwargs)
    return load_simulated


def register() -> dict:
    """Route ``azureml://`` to the simulation; returns what :func:`unregister` restores."""
    import mltable

    saved = {"fsspec": fsspec.registry.get("azureml"), "mltable_load": mltable.load}
    fsspec.register_implementation("azureml", SimulatedDatastoreFileSystem, clobber=True)
    mltable.load = _wrap_mltable_load(mltable.load)
    return saved


def unregister(saved: dict) -> None:
    import mltable

    # fsspec has no public way to unregister; its registry dict is the only handle.
    _fsspec_registry._registry.pop("azureml", None)
    if saved["fsspec"] is not None:
        fsspec.register_implementation("azureml", saved["fsspec"], clobber=True)
    mltable.load = saved["mltable_load"]

"""``azureml://`` URIs on the local disk while the simulation is active.

On Azure, azureml-fsspec registers the ``azureml`` protocol with fsspec, so
``pandas.read_csv("azureml://subscriptions/.../datastores/<store>/paths/<file>")`` reads
from the datastore. Here the same protocol maps to the datastore's folder in the simulated
workspace. ``mltable.load`` reads through its own engine rather than fsspec, so it is
wrapped to hand that engine the local folder instead of the URI; and the paths an MLTable
file lists (``paths: - file: azureml://datastores/<store>/paths/<file>``, which Azure reads
from the workspace's storage) and those given to ``mltable.from_delimited_files`` and the
other ``from_*`` functions are turned into local ``file://`` paths as mltable makes its
own paths absolute.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

# ``fsspec.registry`` is shadowed by a read-only view; the module holds the writable dict.
_fsspec_registry = importlib.import_module("fsspec.registry")

# azureml-fsspec accepts the workspace part with or without "providers/Microsoft.MachineLearningServices/".
_WORKSPACE = (r"^azureml://subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
              r"/(?:providers/Microsoft\.MachineLearningServices/)?workspaces/(?P<ws>[^/]+)")
LONG_URI = re.compile(_WORKSPACE + r"/datastores/(?P<datastore>[^/]+)(?:/paths/?(?P<path>.*))?$", re.IGNORECASE)
DATA_ASSET_URI = re.compile(_WORKSPACE + r"/data/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$",
                            re.IGNORECASE)
SHORT_URI = re.compile(r"^azureml://datastores/(?P<datastore>[^/]+)(?:/paths/?(?P<path>.*))?$")


def local_path(uri: str) -> str:
    """The local path that an ``azureml://`` datastore URI stands for in the simulation."""
    from labkit.sim.core import config
    from labkit.sim.core.storage import datastore_folder
    from labkit.sim.core.workspace import SimWorkspace

    asset = DATA_ASSET_URI.match(uri)
    if asset:
        return local_path(_data_asset_path(asset))
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
    return str(datastore_folder(workspace, match["datastore"]) / (match["path"] or ""))


def _data_asset_path(match: re.Match) -> str:
    """The datastore URI a data asset URI (``.../data/<name>[/versions/<v>]``) points at."""
    from labkit.sim.core import config
    from labkit.sim.core.workspace import SimWorkspace

    workspace = SimWorkspace(match["sub"], match["rg"], match["ws"], config.resolve_root() / match["ws"])
    store = workspace.store
    row = store.get("data", match["name"], match["version"]) if match["version"] else store.latest("data", match["name"])
    if row is None:
        raise FileNotFoundError(f"No data asset {match['name']}:{match['version'] or 'latest'} in {workspace.name!r}")
    return row.payload["properties"]["dataUri"]


class SimulatedDatastoreFileSystem(LocalFileSystem):
    """fsspec's local file system, addressed with ``azureml://`` URIs.

    Also stands in for ``azureml.fsspec.AzureMachineLearningFileSystem(uri)``: paths given
    to such an instance are relative to the datastore (or folder) its URI names, so
    ``fs.ls()``, ``fs.ls("folder")`` and ``fs.open("folder/file.csv")`` work as on Azure.
    """

    protocol = "azureml"
    root_marker = "/"

    def __init__(self, uri: str | None = None, ml_client=None, **kwargs):
        super().__init__(**kwargs)
        self._base: Path | None = None
        if uri:
            self._base = Path(local_path(uri))
            # An instance attribute shadows the class method for this instance's own calls.
            self._strip_protocol = self._resolve

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, str) and path.startswith("azureml://"):
            path = local_path(path)
        return LocalFileSystem._strip_protocol(path)

    def _resolve(self, path) -> str:
        """A path as this instance's user gives it (relative to its URI) -> the local path."""
        path = str(path or "")
        if path.startswith("azureml://"):
            path = local_path(path)
        elif not path.startswith(str(self._base)):
            path = str(self._base / path.lstrip("/"))
        return LocalFileSystem._strip_protocol(path)

    def _relative(self, local: str) -> str:
        """A local path -> the form azureml-fsspec returns: relative to the instance's URI."""
        if self._base is None or not os.path.isabs(local):
            return local
        relative = os.path.relpath(local, self._base).replace(os.sep, "/")
        return "" if relative == "." else relative

    # Listing methods run on a plain local file system (fsspec's compound operations call
    # one another, so each must see local paths) and hand back azureml-fsspec's form.
    def ls(self, path="", detail=False, **kwargs):
        entries = [dict(e, name=self._relative(e["name"]))
                   for e in _LOCAL.ls(self._strip_protocol(path), detail=True, **kwargs)]
        return entries if detail else sorted(e["name"] for e in entries)

    def info(self, path, **kwargs):
        found = _LOCAL.info(self._strip_protocol(path), **kwargs)
        return dict(found, name=self._relative(found["name"]))

    def glob(self, path, **kwargs):
        return sorted(self._relative(p) for p in _LOCAL.glob(self._strip_protocol(path), **kwargs))

    def find(self, path="", **kwargs):
        found = _LOCAL.find(self._strip_protocol(path), **kwargs)
        if isinstance(found, dict):
            return {self._relative(k): dict(v, name=self._relative(k)) for k, v in found.items()}
        return [self._relative(p) for p in found]


_LOCAL = LocalFileSystem()


def _wrap_mltable_load(load):
    @functools.wraps(load)
    def load_simulated(uri, *args, **kwargs):
        if isinstance(uri, str) and uri.startswith("azureml://"):
            uri = local_path(uri)
        return load(uri, *args, **kwargs)
    return load_simulated


def _local_table_path(path):
    """An MLTable path value: a datastore URI becomes the local file it stands for."""
    if isinstance(path, str) and (LONG_URI.match(path) or SHORT_URI.match(path)):
        local = local_path(path)
        return "file://" + local + ("/" if path.endswith("/") and not local.endswith("/") else "")
    return path


def _wrap_make_paths_absolute(make_absolute):
    @functools.wraps(make_absolute)
    def make_absolute_and_local(mltable_yaml_dict, base_path):
        given = list(mltable_yaml_dict.get("paths") or [])
        if given:
            # Before mltable's own step, which would take a datastore URI for a relative local path.
            mltable_yaml_dict["paths"] = [{kind: _local_table_path(path) for kind, path in entry.items()}
                                          for entry in given]
        table, pairs = make_absolute(mltable_yaml_dict, base_path)
        # (what the file said, what is read): mltable shows the first as .paths, reads the second
        return table, [(original, read) for original, (_, read) in zip(given, pairs)] if given else pairs
    return make_absolute_and_local


def mltable_for_job(source: Path, target: Path) -> Path:
    """The MLTable folder ``source`` as a job's script reads it: ``target``, where the MLTable
    file's paths are local and absolute, and every other entry links to ``source``'s.

    Inside an Azure ML job, ``mltable.load(input_folder)`` resolves the ``azureml://`` paths the
    MLTable file lists with the job's own identity and workspace ("Working with tables in Azure
    Machine Learning": an MLTable input is read in the job with ``mltable.load``). A job's
    process here has no simulation in it (no ``azureml`` protocol, no root), so the job is
    handed the table with those paths already turned into the local files they stand for.
    """
    import mltable.mltable as mltable_module
    import yaml

    table = yaml.safe_load((source / "MLTable").read_text()) or {}
    if table.get("paths"):
        table["paths"] = [{kind: _local_table_path(path) for kind, path in entry.items()} for entry in table["paths"]]
        table, _ = mltable_module._make_all_paths_absolute(table, str(source))
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "MLTable" and not (target / entry.name).exists():
            (target / entry.name).symlink_to(entry)
    (target / "MLTable").write_text(yaml.safe_dump(table, sort_keys=False))
    return target


def register() -> dict:
    """Route ``azureml://`` to the simulation; returns what :func:`unregister` restores."""
    import mltable
    import mltable.mltable as mltable_module

    import azureml.fsspec

    saved = {"fsspec": fsspec.registry.get("azureml"), "mltable_load": mltable.load,
             "fs_class": azureml.fsspec.AzureMachineLearningFileSystem,
             "make_paths_absolute": mltable_module._make_all_paths_absolute}
    fsspec.register_implementation("azureml", SimulatedDatastoreFileSystem, clobber=True)
    mltable.load = _wrap_mltable_load(mltable.load)
    # mltable.mltable looks this helper up in its own globals on every load and from_* call.
    mltable_module._make_all_paths_absolute = _wrap_make_paths_absolute(mltable_module._make_all_paths_absolute)
    azureml.fsspec.AzureMachineLearningFileSystem = SimulatedDatastoreFileSystem
    return saved


def unregister(saved: dict) -> None:
    import mltable

    # fsspec has no public way to unregister; its registry dict is the only handle.
    _fsspec_registry._registry.pop("azureml", None)
    if saved["fsspec"] is not None:
        fsspec.register_implementation("azureml", saved["fsspec"], clobber=True)
    mltable.load = saved["mltable_load"]
    import mltable.mltable as mltable_module

    mltable_module._make_all_paths_absolute = saved["make_paths_absolute"]
    import azureml.fsspec

    azureml.fsspec.AzureMachineLearningFileSystem = saved["fs_class"]

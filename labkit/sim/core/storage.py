"""Where a datastore's files live on the local disk.

A simulated storage container is a folder, ``<workspace>/storage/<account>/<container>``,
so two datastores naming the same account and container see the same files, as on Azure.
This module needs no Azure ML SDK import, so a job's worker process can use it and start fast.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.sim.core.base import not_found
from labkit.sim.core.workspace import SimWorkspace

if TYPE_CHECKING:
    from azure.ai.ml.entities import Datastore

KIND = "datastore"
DEFAULT_DATASTORE = "workspaceblobstore"


def _container_of(payload: dict) -> tuple[str, str]:
    props = payload["properties"]
    account = props.get("accountName") or "onelake"
    container = props.get("containerName") or props.get("fileShareName") or props.get("filesystem") or ""
    return account, container


def container_folder(workspace_folder: Path, payload: dict) -> Path:
    """The local folder of the container or share a datastore payload names."""
    account, container = _container_of(payload)
    return workspace_folder / "storage" / account / container


def datastore_folder(workspace: SimWorkspace, name: str) -> Path:
    """The local folder that stands for the datastore's container or share."""
    row = workspace.store.get(KIND, name.lower())
    if row is None:
        raise not_found(f"Datastore '{name}' was not found in workspace '{workspace.name}'.")
    return container_folder(workspace.folder, row.payload)


def put_datastore(workspace: SimWorkspace, db: sqlite3.Connection, datastore: Datastore,
                   is_default: bool = False) -> None:
    rest = datastore._to_rest_object()
    payload = rest.as_dict()
    credentials = payload["properties"].get("credentials") or {}
    secrets = credentials.pop("secrets", None)
    payload["properties"]["isDefault"] = is_default
    name = datastore.name.lower()
    workspace.store.put(db, KIND, name, "", type(rest)(payload))
    if secrets:
        workspace.store.put_secret(db, KIND, name, secrets)
    container_folder(workspace.folder, payload).mkdir(parents=True, exist_ok=True)

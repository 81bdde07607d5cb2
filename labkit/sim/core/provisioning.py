"""A workspace's first use: its record and its four default datastores.

On Azure a workspace exists before a client uses it; the simulation provisions one the first
time a client names it (``config.open_workspace``), or when ``workspaces.begin_create`` asks.
Here, below the operation groups, so that opening a workspace needs none of them.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
import uuid

from azure.ai.ml.entities import AccountKeyConfiguration, AzureBlobDatastore, AzureFileDatastore, Workspace

from labkit.sim.core.base import bad_request
from labkit.sim.core.storage import DEFAULT_DATASTORE, put_datastore
from labkit.sim.core.workspace import DEFAULT_LOCATION, SimWorkspace


KIND = "workspace"
# The service's rule for workspace names (ARM: Microsoft.MachineLearningServices/workspaces).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")


def _linked_resource_ids(workspace: SimWorkspace, workspace_id: str) -> dict:
    """Names shaped like the ones Azure generates for a workspace's linked resources."""
    suffix = hashlib.sha1(workspace_id.encode()).hexdigest()[:10]
    group = f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}/providers"
    return {
        "storageAccount": f"{group}/Microsoft.Storage/storageAccounts/st{suffix}",
        "keyVault": f"{group}/Microsoft.KeyVault/vaults/kv-{suffix}",
        "applicationInsights": f"{group}/Microsoft.Insights/components/appi-{suffix}",
        # No containerRegistry: Azure creates one only when the first environment image is built.
    }


def valid_name(name: str | None) -> bool:
    return bool(name) and bool(NAME_PATTERN.match(name))


def _validate_name(name: str) -> None:
    # The SDK sends any name; Azure Resource Manager refuses an invalid one (400).
    if not valid_name(name):
        raise bad_request(f"Workspace name {name!r} is invalid: use 3 to 33 letters, digits, hyphens "
                          "or underscores, starting with a letter or digit.")


def provision(workspace: SimWorkspace, entity: Workspace | None = None) -> None:
    """Create the workspace's record and default datastores if they are not there yet."""
    _validate_name(workspace.name)
    store = workspace.store
    if store.get(KIND, workspace.name):
        return
    entity = entity or Workspace(name=workspace.name, location=DEFAULT_LOCATION)
    rest = entity._to_rest_object()
    workspace_id = str(uuid.uuid4())
    props = rest.as_dict().setdefault("properties", {})
    payload = rest.as_dict()
    payload.setdefault("location", DEFAULT_LOCATION)
    payload["properties"] = dict(
        props,
        workspaceId=workspace_id,
        provisioningState="Succeeded",
        mlFlowTrackingUri=workspace.mlflow_tracking_uri,
        discoveryUrl=workspace.folder.as_uri(),
        **_linked_resource_ids(workspace, workspace_id),
    )
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM resources WHERE kind=? AND name=?", (KIND, workspace.name)).fetchone():
            return  # another process provisioned it first
        store.put(db, KIND, workspace.name, "", type(rest)(payload))
        create_default_datastores(workspace, db, workspace_id)
        workspace.write_names()


# Fake account key of the default datastores; never shown, as on Azure.
_DEFAULT_KEY = "c2ltdWxhdGVkLWFjY291bnQta2V5"


def create_default_datastores(workspace: SimWorkspace, db: sqlite3.Connection, workspace_id: str) -> None:
    """The four datastores every new workspace has, in one storage account."""
    account = _linked_resource_ids(workspace, workspace_id)["storageAccount"].rsplit("/", 1)[-1]
    key = AccountKeyConfiguration(account_key=_DEFAULT_KEY)
    defaults = [
        AzureBlobDatastore(name="workspaceblobstore", account_name=account,
                           container_name=f"azureml-blobstore-{workspace_id}", credentials=key),
        AzureBlobDatastore(name="workspaceartifactstore", account_name=account,
                           container_name="azureml", credentials=key),
        AzureFileDatastore(name="workspaceworkingdirectory", account_name=account,
                           file_share_name=f"code-{workspace_id}", credentials=key),
        AzureFileDatastore(name="workspacefilestore", account_name=account,
                           file_share_name=f"azureml-filestore-{workspace_id}", credentials=key),
    ]
    for datastore in defaults:
        put_datastore(workspace, db, datastore, is_default=datastore.name == DEFAULT_DATASTORE)

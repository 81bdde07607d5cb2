"""``ml_client.datastores``: references to storage, with their secrets kept apart.

A simulated storage container is a folder: ``<workspace>/storage/<account>/<container>``.
Two datastores that name the same account and container therefore see the same files,
as on Azure. Credentials are split off into the store's secrets table, the simulation's
Key Vault: ``get`` and ``list`` return a datastore without them, as the service does.
"""
from __future__ import annotations

import re
from typing import Iterable

from azure.ai.ml.entities import Datastore
from azure.ai.ml.operations import DatastoreOperations as _SdkDatastoreOperations

from labkit.sim.core.base import SimOperations, bad_request, not_found, pages, readable, with_service_fields
from labkit.sim.core.storage import KIND, put_datastore

# The service: datastore names are case-insensitive, letters, digits and underscores.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,255}$")


class DatastoreOperations(SimOperations, _SdkDatastoreOperations):
    """Register, read and remove datastores of the simulated workspace."""

    def _entity(self, name: str, include_secrets: bool) -> Datastore:
        row = self._store.get(KIND, name.lower())
        if row is None:
            raise not_found(f"Datastore '{name}' was not found in workspace '{self._workspace.name}'.")
        return self._entity_of(row, include_secrets)

    def _entity_of(self, row, include_secrets: bool) -> Datastore:
        rest = with_service_fields(row, self._workspace.child_id("datastores", row.name), row.name)
        if include_secrets:
            secrets = self._store.get_secret(KIND, row.name)
            if secrets and rest.properties.credentials is not None:
                payload = rest.as_dict()
                payload["properties"]["credentials"]["secrets"] = secrets
                rest = type(rest)(payload)
        return Datastore._from_rest_object(rest)

    def list(self, *, include_secrets: bool = False) -> Iterable[Datastore]:
        return pages(readable(self._store.list(KIND), lambda row: self._entity_of(row, include_secrets)))

    def get(self, name: str, *, include_secrets: bool = False) -> Datastore:
        return self._entity(name, include_secrets)

    def get_default(self, *, include_secrets: bool = False) -> Datastore:
        for row in self._store.list(KIND):
            if row.payload["properties"].get("isDefault"):
                return self._entity(row.name, include_secrets)
        raise not_found(f"Workspace '{self._workspace.name}' has no default datastore.")

    def create_or_update(self, datastore: Datastore) -> Datastore:
        # The SDK sends any name; the service refuses an invalid one (400).
        if not datastore.name or not NAME_PATTERN.match(datastore.name):
            raise bad_request(f"Datastore name {datastore.name!r} is invalid: it can only contain letters, "
                              "digits and underscores.")
        existing = self._store.get(KIND, datastore.name.lower())
        if existing and existing.payload["properties"].get("datastoreType") != datastore._to_rest_object().properties.datastore_type:
            raise bad_request(
                f"Datastore '{datastore.name}' already exists with a different type; "
                "the type of a datastore cannot be changed.")
        with self._store.transaction() as db:
            is_default = bool(existing and existing.payload["properties"].get("isDefault"))
            put_datastore(self._workspace, db, datastore, is_default=is_default)
        return self._entity(datastore.name, include_secrets=False)

    def delete(self, name: str) -> None:
        row = self._store.get(KIND, name.lower())
        if row is None:
            raise not_found(f"Datastore '{name}' was not found in workspace '{self._workspace.name}'.")
        if row.payload["properties"].get("isDefault"):
            raise bad_request(f"Datastore '{name}' is the workspace's default datastore and cannot be deleted.")
        # Unregistering a datastore leaves the storage (and its files) as they are, as on Azure.
        self._store.delete(KIND, row.name)

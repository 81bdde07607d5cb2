"""What data, models, environments and components share: versions, labels, archiving, upload.

The service's rules, applied to every versioned asset:
- a version is immutable once made; re-sending it with the same content may change only
  its description and tags; anything else is refused;
- omitting the version gives one more than the largest integer version so far;
- the ``latest`` label is the newest active version; archived versions stay readable by
  number but leave ``list`` and ``latest``;
- ``list()`` gives one entry per name (the container), ``list(name)`` its versions.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional

from azure.ai.ml._artifacts._artifact_utilities import ArtifactStorageInfo
from azure.ai.ml._restclient.arm_ml_service.models import ListViewType
from azure.ai.ml._utils._asset_utils import get_ignore_file, get_object_hash
from azure.ai.ml.exceptions import (
    ErrorCategory,
    ErrorTarget,
    ValidationErrorType,
    ValidationException,
)

from labkit.sim.core.base import SimOperations, bad_request, not_found, pages, readable, with_service_fields
from labkit.sim.core.storage import DEFAULT_DATASTORE, datastore_folder

# Asset names and versions as the service accepts them.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,29}$")
SHORT_URI = re.compile(r"^azureml://datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$")


def invalid(message: str, target: str, error_type=ValidationErrorType.INVALID_VALUE) -> ValidationException:
    return ValidationException(message=message, no_personal_data_message=message, target=target,
                               error_category=ErrorCategory.USER_ERROR, error_type=error_type)


class VersionedAssetOperations(SimOperations):
    """Base for the operation groups of versioned assets.

    Subclasses set ``kind`` (the store's key), ``collection`` (the ARM segment:
    ``data``, ``models`` ...), ``entity_class``, ``container_rest_class`` and ``target``.
    """

    kind: str
    collection: str
    entity_class: type
    container_rest_class: type
    target: str = ErrorTarget.ASSET

    # -- identity ---------------------------------------------------------------------------
    def _check_name_and_version(self, name: str | None, version: str | None) -> None:
        # The SDK does not check these before sending the request; the service refuses them (400).
        if not name or not NAME_PATTERN.match(name):
            raise bad_request(f"{self.entity_class.__name__} name {name!r} is invalid: use up to 255 "
                              "letters, digits, '-', '_' or '.', starting with a letter or digit.")
        if version is not None and not VERSION_PATTERN.match(str(version)):
            raise bad_request(f"Version {version!r} of {name!r} is invalid: use up to 30 letters, digits, "
                              "'-', '_' or '.', starting with a letter or digit.")

    # -- reading ----------------------------------------------------------------------------
    def _entity(self, row) -> Any:
        rest = with_service_fields(row, self._workspace.child_id(self.collection, row.name, row.version),
                                   row.version)
        return self.entity_class._from_rest_object(rest)

    def _row(self, name: str, version: str):
        row = self._store.get(self.kind, name, str(version))
        if row is None:
            raise not_found(f"{self.entity_class.__name__} {name}:{version} was not found in workspace "
                            f"'{self._workspace.name}'.")
        return row

    def _latest_row(self, name: str):
        row = self._store.latest(self.kind, name)
        if row is None:
            raise not_found(f"{self.entity_class.__name__} '{name}' has no active version in workspace "
                            f"'{self._workspace.name}'.")
        return row

    def _get(self, name: str, version: str | None, label: str | None) -> Any:
        if version and label:
            raise invalid("Cannot specify both version and label.", self.target)
        if label:
            if label != "latest":
                raise invalid(f"Asset {name} with version label {label} does not exist in workspace.",
                              self.target)
            return self._entity(self._latest_row(name))
        if not version:
            raise invalid("Must provide either version or label.", self.target, ValidationErrorType.MISSING_FIELD)
        return self._entity(self._row(name, version))

    def _list(self, name: str | None, list_view_type) -> Any:
        view = ListViewType(list_view_type) if list_view_type else ListViewType.ACTIVE_ONLY
        rows = self._store.list(self.kind, include_archived=True)
        keep = {
            ListViewType.ACTIVE_ONLY: lambda r: not r.archived,
            ListViewType.ARCHIVED_ONLY: lambda r: r.archived,
            ListViewType.ALL: lambda r: True,
        }[view]
        if name:
            return pages(readable((r for r in rows if r.name == name and keep(r)), self._entity))
        by_name: dict[str, list] = {}
        for row in rows:
            by_name.setdefault(row.name, []).append(row)
        containers = []
        for asset_name, versions in sorted(by_name.items()):
            archived = all(r.archived for r in versions)
            if not keep(type("C", (), {"archived": archived})()):
                continue
            containers.append(self._container_entity(asset_name, versions, archived))
        return pages(containers)

    def _container_entity(self, name: str, versions: list, archived: bool) -> Any:
        latest = ([r for r in versions if not r.archived] or versions)[-1]
        props = latest.payload.get("properties", {})
        numbers = [int(r.version) for r in versions if r.version.isdigit()]
        payload = {
            "id": self._workspace.child_id(self.collection, name),
            "name": name,
            "properties": {
                "description": props.get("description"),
                "tags": props.get("tags") or {},
                "properties": {},
                "isArchived": archived,
                "latestVersion": latest.version,
                "nextVersion": str(max(numbers, default=0) + 1),
                **self._container_extras(props),
            },
            "systemData": with_service_fields(versions[0], "", name).as_dict().get("systemData"),
        }
        return self.entity_class._from_container_rest_object(self.container_rest_class(payload))

    def _container_extras(self, version_properties: dict) -> dict:
        """Fields a container carries over from its versions (e.g. a data asset's type)."""
        return {}

    # -- writing ----------------------------------------------------------------------------
    def _create_version(self, entity: Any, immutable: Callable[[dict], Any]) -> Any:
        """Store ``entity`` as a new version, or as the same version with new tags/description.

        ``immutable(properties)`` picks what may not change in an existing version (its
        path, its image...); a different value is refused as the service refuses it.
        """
        self._check_name_and_version(entity.name, entity.version)
        rest = entity._to_rest_object()
        with self._store.transaction() as db:
            version = str(entity.version) if entity.version else self._store.next_version(db, self.kind, entity.name)
            old = db.execute("SELECT payload FROM resources WHERE kind=? AND name=? AND version=?",
                             (self.kind, entity.name, version)).fetchone()
            if old is not None:
                import json

                old_props = json.loads(old["payload"]).get("properties", {})
                if immutable(old_props) != immutable(rest.as_dict().get("properties", {})):
                    self._refuse_changed_version(entity.name, version)
            self._store.put(db, self.kind, entity.name, version, rest)
        return self._entity(self._row(entity.name, version))

    def _refuse_changed_version(self, name: str, version: str) -> None:
        from azure.ai.ml.exceptions import AssetPathException

        message = (f"{self.entity_class.__name__} {name}:{version} already exists with different "
                   "content; a version cannot be changed. Register a new version instead.")
        raise AssetPathException(message=message, no_personal_data_message=message, target=self.target,
                                 error_category=ErrorCategory.USER_ERROR)

    def archive(self, name: str, version: Optional[str] = None, label: Optional[str] = None,
                **kwargs: Any) -> None:
        self._set_archived(name, version, label, archived=True)

    def restore(self, name: str, version: Optional[str] = None, label: Optional[str] = None,
                **kwargs: Any) -> None:
        self._set_archived(name, version, label, archived=False)

    def _set_archived(self, name: str, version: str | None, label: str | None, archived: bool) -> None:
        if version and label:
            raise invalid("Cannot specify both version and label.", self.target)
        if label:
            version = self._get(name, None, label).version
        if not self._store.set_archived(self.kind, name, version, archived):
            raise not_found(f"{self.entity_class.__name__} {name}{':' + version if version else ''} "
                            f"was not found in workspace '{self._workspace.name}'.")

    # -- files --------------------------------------------------------------------------------
    def _upload(self, local_path: Path, datastore: str | None = None) -> ArtifactStorageInfo:
        """Copy a local file or folder into the datastore as the SDK's upload would.

        The destination is ``LocalUpload/<content hash>/<name>``, the SDK's layout, so the
        same content uploaded twice is stored once.
        """
        datastore = datastore or DEFAULT_DATASTORE
        ignore = get_ignore_file(local_path if local_path.is_dir() else local_path.parent)
        content_hash = get_object_hash(local_path, ignore)
        relative = f"LocalUpload/{content_hash}/{local_path.name}"
        destination = datastore_folder(self._workspace, datastore) / relative
        self._store.place_copy(local_path, destination,
                               ignore=(lambda folder, names: [n for n in names if ignore.is_file_excluded(Path(folder, n))]))
        return ArtifactStorageInfo(
            name=None, version=None, relative_path=relative,
            datastore_arm_id=self._workspace.child_id("datastores", datastore),
            container_name=destination.parent.parent.parent.name, is_file=local_path.is_file())

    def _service_uri(self, uri: str) -> str:
        """The service stores datastore URIs in their long form; do the same."""
        match = SHORT_URI.match(uri)
        return self._workspace.long_uri(match["datastore"], match["path"]) if match else uri

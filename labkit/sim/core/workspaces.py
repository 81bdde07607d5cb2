"""``ml_client.workspaces``: simulated workspaces are folders under the simulation root."""
from __future__ import annotations

import shutil
from typing import Any, Dict, Iterable, List, Optional, Union

from azure.ai.ml.entities import Workspace
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationException
from azure.ai.ml.operations import WorkspaceOperations as _SdkWorkspaceOperations
from azure.core.polling import LROPoller

from labkit.sim.core.base import SimOperations, done, not_found, pages, with_service_fields
from labkit.sim.core.provisioning import KIND, provision
from labkit.sim.core.workspace import SimWorkspace


def _entity(workspace: SimWorkspace) -> Workspace:
    row = workspace.store.get(KIND, workspace.name)
    entity = Workspace._from_rest_object(with_service_fields(row, workspace.arm_id, workspace.name))
    return entity


class WorkspaceOperations(SimOperations, _SdkWorkspaceOperations):
    """Workspaces of the simulation root, scoped like the SDK's by resource group."""

    def _folder_workspace(self, name: str) -> SimWorkspace:
        subscription, group = self._scope
        return SimWorkspace(subscription, group, name, self._root / name)

    def _existing(self, name: str) -> SimWorkspace:
        workspace = self._folder_workspace(name)
        if not (workspace.folder / "workspace.db").is_file() or not workspace.store.get(KIND, name):
            raise not_found(
                f"Resource 'Microsoft.MachineLearningServices/workspaces/{name}' under resource group "
                f"'{self._scope[1]}' was not found.")
        return workspace

    def list(self, *, scope: str = "resource_group",
             filtered_kinds: Union[str, List[str], None] = None) -> Iterable[Workspace]:
        found = []
        for folder in sorted(self._root.glob("*/workspace.db")):
            workspace = self._folder_workspace(folder.parent.name)
            row = workspace.store.get(KIND, workspace.name)
            if row is None:
                continue
            entity = _entity(workspace)
            kinds = [filtered_kinds] if isinstance(filtered_kinds, str) else filtered_kinds
            if kinds and entity._kind not in kinds:
                continue
            found.append(entity)
        return pages(found)

    def get(self, name: Optional[str] = None, **kwargs: Dict) -> Optional[Workspace]:
        name = name or (self._workspace.name if self._workspace else None)
        if not name:
            raise ValidationException(
                message="Please provide a workspace name or use an MLClient with a workspace name set.",
                no_personal_data_message="No workspace name.",
                target=ErrorTarget.WORKSPACE, error_category=ErrorCategory.USER_ERROR)
        return _entity(self._existing(name))

    def begin_create(self, workspace: Workspace, update_dependent_resources: bool = False,
                     **kwargs: Any) -> LROPoller[Workspace]:
        target = self._folder_workspace(workspace.name)
        provision(target, workspace)
        return done(_entity(target))

    def begin_update(self, workspace: Workspace, *, update_dependent_resources: bool = False,
                     **kwargs: Any) -> LROPoller[Workspace]:
        target = self._existing(workspace.name)
        store = target.store
        with store.transaction() as db:
            row = store.get(KIND, target.name)
            payload = dict(row.payload)
            properties = dict(payload.get("properties", {}))
            if workspace.description is not None:
                properties["description"] = workspace.description
            if workspace.display_name is not None:
                properties["friendlyName"] = workspace.display_name
            payload["properties"] = properties
            if workspace.tags:
                payload["tags"] = dict(payload.get("tags") or {}, **workspace.tags)
            store.put(db, KIND, target.name, "", type(row.rest_object())(payload))
        return done(_entity(target))

    def begin_delete(self, name: str, *, delete_dependent_resources: bool,
                     permanently_delete: bool = False, **kwargs: Dict) -> LROPoller[None]:
        target = self._existing(name)
        shutil.rmtree(target.folder)
        return done(None)

"""``SimMLClient``: the real ``MLClient`` with every operation group replaced.

The SDK's constructor runs as on Azure (it makes no network call), then each operation
group (``self._data``, ``self._jobs`` ...) is swapped for a simulated one and re-registered
in the client's operations container, which is what ``ml_client.create_or_update(entity)``
and ``begin_create_or_update`` dispatch through. Groups the simulation does not cover yet
refuse every call with ``NotImplementedError`` rather than reach for Azure.
"""
from __future__ import annotations

import importlib
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.constants._common import AzureMLResourceType

from labkit.sim import config
from labkit.sim._base import SimOperations
from labkit.sim.credentials import SimulatedCredential

# client attribute -> (operations-container key, "module:Class" of the simulated group)
SIMULATED_GROUPS = {
    "_workspaces": (AzureMLResourceType.WORKSPACE, "labkit.sim.workspaces:WorkspaceOperations"),
    "_datastores": (AzureMLResourceType.DATASTORE, "labkit.sim.datastores:DatastoreOperations"),
    "_data": (AzureMLResourceType.DATA, "labkit.sim.data:DataOperations"),
    "_compute": (AzureMLResourceType.COMPUTE, "labkit.sim.compute:ComputeOperations"),
    "_environments": (AzureMLResourceType.ENVIRONMENT, "labkit.sim.environments:EnvironmentOperations"),
    "_models": (AzureMLResourceType.MODEL, "labkit.sim.models:ModelOperations"),
    "_components": (AzureMLResourceType.COMPONENT, "labkit.sim.components:ComponentOperations"),
    "_jobs": (AzureMLResourceType.JOB, "labkit.sim.jobs:JobOperations"),
    "_online_endpoints": (AzureMLResourceType.ONLINE_ENDPOINT, "labkit.sim.online_endpoints:OnlineEndpointOperations"),
    "_online_deployments": (AzureMLResourceType.ONLINE_DEPLOYMENT,
                            "labkit.sim.online_deployments:OnlineDeploymentOperations"),
    "_schedules": (AzureMLResourceType.SCHEDULE, "labkit.sim.schedules:ScheduleOperations"),
    "_batch_endpoints": (AzureMLResourceType.BATCH_ENDPOINT, "labkit.sim.batch_endpoints:BatchEndpointOperations"),
    "_batch_deployments": (AzureMLResourceType.BATCH_DEPLOYMENT,
                           "labkit.sim.batch_deployments:BatchDeploymentOperations"),
}


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _refusing_group(real_class: type) -> type:
    """A stand-in for an operation group the simulation does not cover: every call refuses."""
    return type(f"Unsimulated{real_class.__name__}", (SimOperations, real_class), {})


class SimMLClient(MLClient):
    """An ``MLClient`` whose operations act on a simulated workspace folder."""

    def __init__(
        self,
        credential: Any = None,
        subscription_id: str | None = None,
        resource_group_name: str | None = None,
        workspace_name: str | None = None,
        registry_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if registry_name:
            raise NotImplementedError("Registries are not part of the simulated workspace.")
        root = kwargs.pop("root", None)
        kwargs["enable_telemetry"] = False
        super().__init__(
            credential or SimulatedCredential(),
            subscription_id or config.DEFAULT_SUBSCRIPTION,
            resource_group_name or config.DEFAULT_RESOURCE_GROUP,
            workspace_name,
            **kwargs,
        )
        self._sim_root = config.resolve_root(root)
        self._sim_workspace = None
        if workspace_name:
            self._sim_workspace = config.open_workspace(
                self._sim_root, self.subscription_id, self.resource_group_name, workspace_name)
            from labkit.sim import use_workspace_tracking_uri

            use_workspace_tracking_uri(self._sim_workspace)
        self._replace_operation_groups()

    def _replace_operation_groups(self) -> None:
        simulated = {attr: _load(path) for attr, (_, path) in SIMULATED_GROUPS.items()}
        for attr, value in list(vars(self).items()):
            if not type(value).__module__.startswith("azure.ai.ml.operations"):
                continue
            group_class = simulated.get(attr) or _refusing_group(type(value))
            group = group_class(self._sim_workspace, root=self._sim_root,
                                scope=(self.subscription_id, self.resource_group_name))
            setattr(self, attr, group)
            for key, registered in list(self._operation_container.all_operations.items()):
                if registered is value:
                    self._operation_container.add(key, group)

    def __repr__(self) -> str:
        return (f"SimMLClient(subscription_id={self.subscription_id}, "
                f"resource_group_name={self.resource_group_name}, "
                f"workspace_name={self.workspace_name}, simulated_root={self._sim_root})")

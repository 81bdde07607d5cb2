"""The simulated operation groups, by the client attribute each stands in for.

Each group is named by ``"module:Class"`` and imported when a client is built, so this module
(and ``base.SimOperations._group``, through which one group reaches another of its workspace)
depends on no operation group: the groups sit above the core and import it, never the reverse.
A new operation group is one line here (see ``labkit/sim/README.md``).
"""
from __future__ import annotations

import importlib

from azure.ai.ml.constants._common import AzureMLResourceType

# client attribute -> (operations-container key, "module:Class" of the simulated group)
SIMULATED_GROUPS = {
    "_workspaces": (AzureMLResourceType.WORKSPACE, "labkit.sim.core.workspaces:WorkspaceOperations"),
    "_datastores": (AzureMLResourceType.DATASTORE, "labkit.sim.assets.datastores:DatastoreOperations"),
    "_data": (AzureMLResourceType.DATA, "labkit.sim.assets.data:DataOperations"),
    "_compute": (AzureMLResourceType.COMPUTE, "labkit.sim.compute.operations:ComputeOperations"),
    "_environments": (AzureMLResourceType.ENVIRONMENT, "labkit.sim.assets.environments:EnvironmentOperations"),
    "_models": (AzureMLResourceType.MODEL, "labkit.sim.assets.models:ModelOperations"),
    "_components": (AzureMLResourceType.COMPONENT, "labkit.sim.assets.components:ComponentOperations"),
    "_jobs": (AzureMLResourceType.JOB, "labkit.sim.jobs.operations:JobOperations"),
    "_online_endpoints": (AzureMLResourceType.ONLINE_ENDPOINT, "labkit.sim.endpoints.online_endpoints:OnlineEndpointOperations"),
    "_online_deployments": (AzureMLResourceType.ONLINE_DEPLOYMENT,
                            "labkit.sim.endpoints.online_deployments:OnlineDeploymentOperations"),
    "_schedules": (AzureMLResourceType.SCHEDULE, "labkit.sim.schedules.operations:ScheduleOperations"),
    "_batch_endpoints": (AzureMLResourceType.BATCH_ENDPOINT, "labkit.sim.endpoints.batch_endpoints:BatchEndpointOperations"),
    "_batch_deployments": (AzureMLResourceType.BATCH_DEPLOYMENT,
                           "labkit.sim.endpoints.batch_deployments:BatchDeploymentOperations"),
}


def load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)

"""``SimMLClient``: the real ``MLClient`` with every operation group replaced.

The SDK's constructor runs as on Azure (it makes no network call), then each operation
group (``self._data``, ``self._jobs`` ...) is swapped for a simulated one and re-registered
in the client's operations container, which is what ``ml_client.create_or_update(entity)``
and ``begin_create_or_update`` dispatch through. Groups the simulation does not cover yet
refuse every call with ``NotImplementedError`` rather than reach for Azure.
"""
from __future__ import annotations

import functools
import inspect
import uuid
from typing import Any

from azure.ai.ml import MLClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.paging import ItemPaged

from labkit.sim.core import config, provisioning
from labkit.sim.core.base import SimOperations, service_error
from labkit.sim.core.credentials import SimulatedCredential
from labkit.sim.core.groups import SIMULATED_GROUPS, load
from labkit.sim.core.tracking import use_workspace_tracking_uri

def _refusing_group(real_class: type) -> type:
    """A stand-in for an operation group the simulation does not cover: every call refuses."""
    return type(f"Unsimulated{real_class.__name__}", (SimOperations, real_class), {})


def malformed_subscription(subscription_id: str) -> bool:
    """Whether Azure Resource Manager refuses ``subscription_id`` as no subscription id at all.

    ARM takes a GUID there; anything else (a notebook's ``"<SUBSCRIPTION_ID>"`` placeholder,
    a subscription's display name) gets 400 ``InvalidSubscriptionId``. ``uuid.UUID`` accepts the
    same spellings as .NET's ``Guid.TryParse`` (with or without hyphens or braces).
    """
    try:
        uuid.UUID(subscription_id)
    except ValueError:
        return True
    return False


def _invalid_subscription(subscription_id: str):
    # ARM's answer for a malformed id in the URL, as management.azure.com sends it
    # (body {"error": {"code": "InvalidSubscriptionId", "message": ...}}, status 400).
    return service_error(HttpResponseError,
                         f"The provided subscription identifier '{subscription_id}' is malformed or invalid.",
                         400, code="InvalidSubscriptionId")


def _raise(error: Exception):
    raise error


def _workspace_not_found(client: "SimMLClient"):
    # ARM's answer for a resource that does not exist (Learn: "Resolve errors for resource not
    # found"); a name the service would refuse to create names no workspace.
    return service_error(ResourceNotFoundError,
                         f"The Resource 'Microsoft.MachineLearningServices/workspaces/{client.workspace_name}' "
                         f"under resource group '{client.resource_group_name}' was not found.", 404,
                         code="ResourceNotFound")


def _unreachable_group(real_class: type, error) -> type:
    """A group whose every call fails with ``error()``, as Azure answers a URL that names no
    workspace (a malformed subscription id, a workspace name that cannot exist).

    The SDK builds its clients without a call, so on Azure ``MLClient(credential,
    "<SUBSCRIPTION_ID>", ...)`` succeeds and the first operation that reaches the service fails.
    """
    def refusing(name, real):
        @functools.wraps(real)
        def refuse(self, *args, **kwargs):
            if name == "list":  # a listing asks the service only when it is iterated
                return ItemPaged(lambda token: _raise(error()), lambda page: page)
            raise error()
        return refuse

    methods = {name: refusing(name, member) for name, member in inspect.getmembers(real_class, inspect.isfunction)
               if not name.startswith("_")}
    return type(f"Unreachable{real_class.__name__}", (real_class,), methods)


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
            # The SDK's constructor asks the registry's discovery service for its region here.
            raise NotImplementedError(
                f"MLClient(..., registry_name={registry_name!r}) is not part of the simulated workspace: registry "
                "clients, and the components and models they read, need Azure. The simulation knows only the "
                "curated environments of the 'azureml' registry (by azureml://registries/azureml/environments/... "
                "URIs in jobs and deployments), and it does not run Responsible AI insights: the RAI dashboard's "
                "rai_tabular_* components come from that registry.")
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
        # Nothing is provisioned and MLflow keeps its tracking URI when no workspace is reached.
        if malformed_subscription(self.subscription_id):
            self._refuse_every_operation(lambda: _invalid_subscription(self.subscription_id))
            return
        if workspace_name and not provisioning.valid_name(workspace_name):  # a notebook's "<AML_WORKSPACE_NAME>"
            # Only the workspace's own groups fail: ``workspaces`` lists and creates in the resource group.
            self._refuse_every_operation(lambda: _workspace_not_found(self), keep={"_workspaces"})
            self._replace_operation_groups()  # what is left of the SDK's: workspaces
            return
        if workspace_name:
            self._sim_workspace = config.open_workspace(
                self._sim_root, self.subscription_id, self.resource_group_name, workspace_name)
            use_workspace_tracking_uri(self._sim_workspace)
        self._replace_operation_groups()

    def _replace_operation_groups(self) -> None:
        simulated = {attr: load(path) for attr, (_, path) in SIMULATED_GROUPS.items()}
        for attr, value in self._sdk_groups():
            group_class = simulated.get(attr) or _refusing_group(type(value))
            self._install(attr, value, group_class(self._sim_workspace, root=self._sim_root,
                                                   scope=(self.subscription_id, self.resource_group_name)))

    def _refuse_every_operation(self, error, keep: set[str] = frozenset()) -> None:
        for attr, value in self._sdk_groups():
            if attr not in keep:
                self._install(attr, value, object.__new__(_unreachable_group(type(value), error)))

    def _sdk_groups(self) -> list[tuple[str, Any]]:
        return [(attr, value) for attr, value in vars(self).items()
                if type(value).__module__.startswith("azure.ai.ml.operations")]

    def _install(self, attr: str, sdk_group: Any, group: Any) -> None:
        setattr(self, attr, group)
        for key, registered in list(self._operation_container.all_operations.items()):
            if registered is sdk_group:
                self._operation_container.add(key, group)

    def __repr__(self) -> str:
        return (f"SimMLClient(subscription_id={self.subscription_id}, "
                f"resource_group_name={self.resource_group_name}, "
                f"workspace_name={self.workspace_name}, simulated_root={self._sim_root})")

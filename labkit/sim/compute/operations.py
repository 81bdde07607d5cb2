"""``ml_client.compute``: compute clusters, compute instances and attached Kubernetes.

Each compute is stored as the ``ComputeResource`` payload the SDK's ``_to_rest_object``
produces, plus what the service fills in (provisioning state, creation time, node counts,
instance state, identity principal), and read back through ``Compute._from_rest_object``.

The service's rules applied here:
- compute names: 3 to 24 letters, digits or hyphens, starting with a letter, and a
  hyphen must be followed by at least one letter later in the name (so ``cpu-cluster-1``
  is refused); names are case-insensitive;
- the VM size must be one the region offers (``labkit.sim.compute.vm_sizes``), matched
  case-insensitively; low priority needs a low-priority-capable size;
- ``min_instances`` may not exceed ``max_instances``; a cluster's VM size and priority
  cannot change after creation: sending the cluster again (``AmlCompute(name=...,
  max_instances=2)``, which the SDK sends with its default size) updates its scale settings
  and keeps its size and priority;
- start and stop apply to compute instances only, and only from the opposite state.

What differs on Azure: creation takes minutes, not milliseconds; clusters here never
allocate nodes of their own (jobs run as local processes), so a cluster reports
``min_instances`` nodes, idle; compute instances offer no Jupyter or SSH endpoints;
name uniqueness across a region is checked only within the workspace.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Iterable, Optional

from azure.ai.ml._restclient.arm_ml_service.models import (
    AmlComputeNodeInformation,
    ComputeResource,
    Usage as RestUsage,
    UsageName,
)
from azure.ai.ml.constants._compute import ComputeType
from azure.ai.ml.entities import AmlComputeNodeInfo, Compute, Usage, VmSize
from azure.ai.ml.operations import ComputeOperations as _SdkComputeOperations
from azure.core.polling import LROPoller

from labkit.sim.core.base import (
    SimOperations,
    bad_request,
    conflict,
    done,
    not_found,
    pages,
    readable,
    with_service_fields,
)
from labkit.sim.core.store import utc_now
from labkit.sim.compute.vm_sizes import VM_SIZES, families, find_size
from labkit.sim.core.workspace import DEFAULT_LOCATION, PROVIDER

KIND = "compute"
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{2,23}$")
SIMULATED_TENANT = "00000000-0000-0000-0000-000000000001"

# Simulated quota (vCPUs per region). Azure's real limits depend on the subscription
# type and are raised by request; these keep a small lab inside quota and a large GPU
# size (ND96asr_v4) outside it, as on a new subscription.
CPU_FAMILY_LIMIT = 100
GPU_FAMILY_LIMIT = 24
TOTAL_DEDICATED_LIMIT = 300
TOTAL_LOW_PRIORITY_LIMIT = 100

_REST_TYPES = {
    ComputeType.AMLCOMPUTE: "AmlCompute",
    ComputeType.COMPUTEINSTANCE: "ComputeInstance",
    ComputeType.KUBERNETES: "Kubernetes",
}


def _check_name(name: str | None) -> None:
    valid = bool(name) and NAME_PATTERN.match(name)
    if valid and "-" in name:
        valid = any(c.isalpha() for c in name.rsplit("-", 1)[1])
    if not valid:
        raise bad_request(
            f"Compute name '{name}' is not valid: a compute name has 3 to 24 characters, "
            "letters, digits and hyphens only, starts with a letter, and any hyphen must be "
            "followed by at least one letter later in the name.")


class ComputeOperations(SimOperations, _SdkComputeOperations):
    """Create, read, scale, start, stop and delete the simulated workspace's computes."""

    # -- reading --------------------------------------------------------------------------
    def _location(self) -> str:
        row = self._store.get("workspace", self._workspace.name)
        return (row.payload.get("location") if row else None) or DEFAULT_LOCATION

    def _row(self, name: str):
        row = self._store.get(KIND, (name or "").lower())
        if row is None:
            raise not_found(f"Compute '{name}' was not found in workspace '{self._workspace.name}'.")
        return row

    def _entity(self, row) -> Compute:
        name = row.payload.get("name") or row.name
        return Compute._from_rest_object(with_service_fields(row, self._workspace.child_id("computes", name), name))

    def get(self, name: str) -> Compute:
        return self._entity(self._row(name))

    def list(self, *, compute_type: Optional[str] = None) -> Iterable[Compute]:
        computes = readable(self._store.list(KIND), self._entity)
        if compute_type:
            computes = [c for c in computes if str(c.type).lower() == compute_type.lower()]
        return pages(computes)

    def list_nodes(self, name: str) -> Iterable[AmlComputeNodeInfo]:
        row = self._row(name)
        if row.payload["properties"].get("computeType") != "AmlCompute":
            raise bad_request(f"Compute '{name}' is not a compute cluster; only clusters have nodes to list.")
        count = row.payload["properties"]["properties"].get("currentNodeCount") or 0
        nodes = [AmlComputeNodeInformation({
            "nodeId": f"tvmps_{uuid.uuid5(uuid.NAMESPACE_URL, f'{row.name}/{i}').hex[:24]}_d",
            "privateIpAddress": f"10.0.0.{4 + i}",
            "port": 50000 + i,
            "nodeState": "idle",
        }) for i in range(count)]
        return pages(AmlComputeNodeInfo._from_rest_object(node) for node in nodes)

    def list_sizes(self, *, location: Optional[str] = None, compute_type: Optional[str] = None) -> Iterable[VmSize]:
        sizes = VM_SIZES
        if compute_type:
            sizes = [s for s in sizes if compute_type.lower() in (t.lower() for t in s.supported_compute_types)]
        return [VmSize._from_rest_object(spec._to_rest_object()) for spec in sizes]

    def list_usage(self, *, location: Optional[str] = None) -> Iterable[Usage]:
        """Quota-like usage per VM family in the region.

        ``current_value`` counts the vCPUs the workspace's computes can hold: each cluster's
        ``max_instances`` x the size's vCPUs (its dedicated family, or the low-priority
        total), plus each compute instance's vCPUs unless it is stopped with
        ``release_quota_on_stop``. Azure counts the cores allocated at this moment instead,
        so there a scaled-down cluster uses none; planning against ``max_instances`` is what
        decides whether a cluster can ever scale out. Limits are the simulated ones above.
        """
        location = location or self._location()
        dedicated: dict[str, int] = {family: 0 for family in families()}
        low_priority = 0
        for row in self._store.list(KIND):
            props = row.payload["properties"]
            inner = props.get("properties") or {}
            spec = find_size(inner.get("vmSize"))
            if spec is None:
                continue
            if props.get("computeType") == "AmlCompute":
                cores = spec.vcpus * int((inner.get("scaleSettings") or {}).get("maxNodeCount") or 0)
                if inner.get("vmPriority") == "LowPriority":
                    low_priority += cores
                    continue
            elif props.get("computeType") == "ComputeInstance":
                if inner.get("state") == "Stopped" and inner.get("releaseQuotaOnStop"):
                    continue
                cores = spec.vcpus
            else:
                continue
            dedicated[spec.family] += cores

        subscription = self._workspace.subscription_id
        prefix = f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/usages"
        gpu_families = {spec.family for spec in VM_SIZES if spec.is_gpu}

        def usage(name: str, label: str, kind: str, current: int, limit: int) -> Usage:
            return Usage._from_rest_object(RestUsage(
                id=f"{prefix}/{name}", aml_workspace_location=location,
                type=f"{PROVIDER}/{kind}/usages", unit="Count", current_value=current, limit=limit,
                name=UsageName(value=name, localized_value=label)))

        found = [
            usage("Cores", "Total Cluster Dedicated Regional vCPUs", "totalCores",
                  sum(dedicated.values()), TOTAL_DEDICATED_LIMIT),
            usage("TotalLowPriorityCores", "Total Cluster LowPriority Regional vCPUs", "totalLowPriorityCores",
                  low_priority, TOTAL_LOW_PRIORITY_LIMIT),
        ]
        for family, label in families().items():
            limit = GPU_FAMILY_LIMIT if family in gpu_families else CPU_FAMILY_LIMIT
            found.append(usage(family, f"{label} Cluster Dedicated vCPUs", "vmFamily", dedicated[family], limit))
        return pages(found)

    # -- writing --------------------------------------------------------------------------
    def begin_create_or_update(self, compute: Compute) -> LROPoller[Compute]:
        _check_name(compute.name)
        kind = str(compute.type).lower()
        if kind not in _REST_TYPES:
            raise bad_request(f"Compute type '{compute.type}' is not supported by the simulated workspace; "
                              "use AmlCompute, ComputeInstance or KubernetesCompute.")
        # As the SDK does: only clusters may live outside the workspace's region.
        if kind != ComputeType.AMLCOMPUTE or not compute.location:
            compute.location = self._location()
        compute._set_full_subnet_name(self._workspace.subscription_id, self._workspace.resource_group)
        return self._put(compute)

    def _put(self, compute: Compute) -> LROPoller[Compute]:
        kind = str(compute.type).lower()
        compute.location = compute.location or self._location()
        payload = compute._to_rest_object().as_dict()
        payload["name"] = compute.name
        payload["location"] = compute.location
        props = payload["properties"]
        inner = props.setdefault("properties", {})
        if kind in (ComputeType.AMLCOMPUTE, ComputeType.COMPUTEINSTANCE):
            self._check_size(inner, compute.location)
        if kind == ComputeType.AMLCOMPUTE:
            self._check_cluster(compute.name, inner)
        if kind == ComputeType.KUBERNETES and not props.get("resourceId"):
            raise bad_request(f"Kubernetes compute '{compute.name}' needs the resource_id of the AKS or "
                              "Arc-enabled cluster to attach.")

        key = compute.name.lower()
        with self._store.transaction() as db:
            old = db.execute("SELECT payload FROM resources WHERE kind=? AND name=? AND version=''",
                             (KIND, key)).fetchone()
            previous = None
            if old is not None:
                import json

                previous = json.loads(old["payload"])
                self._check_update(compute.name, previous, payload)
            self._fill_service_fields(payload, previous)
            self._store.put(db, KIND, key, "", ComputeResource(payload))
        return done(self.get(compute.name))

    def begin_attach(self, compute: Compute, **kwargs: Any) -> LROPoller[Compute]:
        return self.begin_create_or_update(compute)

    def begin_update(self, compute: Compute) -> LROPoller[Compute]:
        # The SDK's update sends the entity as it is (no location or subnet resolution).
        if str(compute.type).lower() != ComputeType.AMLCOMPUTE:
            raise bad_request(f"Only compute clusters can be updated; '{compute.name}' is a {compute.type} compute.")
        self._row(compute.name)
        return self._put(compute)

    def begin_delete(self, name: str, *, action: str = "Delete") -> LROPoller[None]:
        if str(action).lower() not in ("delete", "detach"):
            raise bad_request(f"Action '{action}' is not valid: use 'Delete' or 'Detach'.")
        row = self._row(name)
        self._store.delete(KIND, row.name)
        return done(None)

    def begin_start(self, name: str) -> LROPoller[None]:
        return self._instance_action(name, "Start", "Running", refuse_if="Running")

    def begin_stop(self, name: str) -> LROPoller[None]:
        return self._instance_action(name, "Stop", "Stopped", refuse_if="Stopped")

    def begin_restart(self, name: str) -> LROPoller[None]:
        return self._instance_action(name, "Restart", "Running", refuse_if=None)

    def enable_sso(self, *, name: str, enable_sso: bool = True, **kwargs: Any) -> None:
        def set_sso(payload: dict) -> None:
            self._check_instance(name, payload, "enableSso")
            payload["properties"]["properties"]["enableSSO"] = bool(enable_sso)
        self._mutate(name, set_sso)

    # -- rules ----------------------------------------------------------------------------
    @staticmethod
    def _check_size(inner: dict, location: str) -> None:
        size = inner.get("vmSize")
        if find_size(size) is None:
            raise bad_request(f"VM size '{size}' is not supported in region '{location}'. "
                              "See ml_client.compute.list_sizes() for the sizes you can use.")

    @staticmethod
    def _check_cluster(name: str, inner: dict) -> None:
        scale = inner.get("scaleSettings") or {}
        low, high = scale.get("minNodeCount") or 0, scale.get("maxNodeCount")
        if low < 0 or (high is not None and high < 0):
            raise bad_request(f"Compute '{name}': node counts cannot be negative.")
        if high is not None and low > high:
            raise bad_request(f"Compute '{name}': min_instances ({low}) cannot be greater than "
                              f"max_instances ({high}).")
        priority = inner.get("vmPriority") or "Dedicated"
        if priority not in ("Dedicated", "LowPriority"):
            raise bad_request(f"Compute '{name}': tier '{priority}' is not valid; use 'dedicated' or 'low_priority'.")
        inner["vmPriority"] = priority
        if priority == "LowPriority" and not find_size(inner.get("vmSize")).low_priority_capable:
            raise bad_request(f"VM size '{inner.get('vmSize')}' cannot run at low priority.")

    @staticmethod
    def _check_update(name: str, old: dict, new: dict) -> None:
        old_props, new_props = old["properties"], new["properties"]
        if old_props.get("computeType") != new_props.get("computeType"):
            raise conflict(f"Compute '{name}' already exists as {old_props.get('computeType')}; "
                           f"it cannot be changed to {new_props.get('computeType')}.")
        old_inner, new_inner = old_props.get("properties") or {}, new_props.get("properties") or {}
        if new_props.get("computeType") == "AmlCompute":
            # Sending an existing cluster again updates what can change (scale settings, idle time,
            # description, identity) and keeps its VM size and tier, which are fixed at creation. The
            # request cannot say whether a size was chosen or filled in: AmlCompute(name=...,
            # max_instances=2) is sent with the SDK's default size (ComputeDefaults.VMSIZE,
            # STANDARD_DS3_V2), which is how the official compute lab scales its cluster. The service
            # accepts such a request and the cluster keeps its size (Azure/azure-rest-api-specs#18889,
            # hashicorp/terraform-provider-azurerm#15825: a new vmSize is acknowledged, the cluster
            # keeps the old one); "you can't change the VM size of a cluster once created: delete and
            # recreate it" (learn.microsoft.com/azure/machine-learning/how-to-create-attach-compute-cluster).
            for fixed in ("vmSize", "vmPriority"):
                if old_inner.get(fixed):
                    new_inner[fixed] = old_inner[fixed]
            return
        old_size, new_size = old_inner.get("vmSize"), new_inner.get("vmSize")
        if old_size and new_size and old_size.lower() != new_size.lower():
            raise bad_request(f"The VM size of compute '{name}' cannot be changed from {old_size} to "
                              f"{new_size}; delete the compute and create it again.")

    def _fill_service_fields(self, payload: dict, previous: dict | None) -> None:
        now = utc_now()
        props = payload["properties"]
        inner = props["properties"]
        old_props = (previous or {}).get("properties", {})
        old_inner = old_props.get("properties") or {}
        props["provisioningState"] = "Succeeded"
        props["createdOn"] = old_props.get("createdOn", now)
        props["modifiedOn"] = now
        props["isAttachedCompute"] = props["computeType"] == "Kubernetes"
        props.setdefault("computeLocation", payload["location"])
        if props["computeType"] == "AmlCompute":
            nodes = inner["scaleSettings"].get("minNodeCount") or 0
            inner.update(
                allocationState="Steady", allocationStateTransitionTime=now,
                currentNodeCount=nodes, targetNodeCount=nodes,
                nodeStateCounts={"idleNodeCount": nodes, "runningNodeCount": 0, "preparingNodeCount": 0,
                                 "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0},
            )
        elif props["computeType"] == "ComputeInstance":
            inner["state"] = old_inner.get("state", "Running")
            inner["lastOperation"] = old_inner.get("lastOperation") or {
                "operationName": "Create", "operationTime": now,
                "operationStatus": "Succeeded", "operationTrigger": "User"}
        identity = payload.get("identity")
        if identity and "SystemAssigned" in (identity.get("type") or ""):
            old_identity = (previous or {}).get("identity") or {}
            identity["principalId"] = old_identity.get("principalId") or str(uuid.uuid4())
            identity["tenantId"] = SIMULATED_TENANT

    def _mutate(self, name: str, change) -> None:
        """Apply ``change(payload)`` to the stored compute inside one transaction."""
        import json

        key = (name or "").lower()
        with self._store.transaction() as db:
            found = db.execute("SELECT payload FROM resources WHERE kind=? AND name=? AND version=''",
                               (KIND, key)).fetchone()
            if found is None:
                raise not_found(f"Compute '{name}' was not found in workspace '{self._workspace.name}'.")
            payload = json.loads(found["payload"])
            change(payload)
            payload["properties"]["modifiedOn"] = utc_now()
            self._store.put(db, KIND, key, "", ComputeResource(payload))

    @staticmethod
    def _check_instance(name: str, payload: dict, action: str) -> None:
        compute_type = payload["properties"].get("computeType")
        if compute_type != "ComputeInstance":
            raise bad_request(f"'{action}' applies only to compute instances; '{name}' is a {compute_type} "
                              "compute.")

    def _instance_action(self, name: str, action: str, new_state: str, refuse_if: str | None) -> LROPoller[None]:
        def change_state(payload: dict) -> None:
            self._check_instance(name, payload, action)
            inner = payload["properties"]["properties"]
            if refuse_if and inner.get("state") == refuse_if:
                raise conflict(f"Compute instance '{name}' is already {refuse_if.lower()}; "
                               f"'{action}' needs it to be in another state.")
            inner["state"] = new_state
            inner["lastOperation"] = {"operationName": action, "operationTime": utc_now(),
                                      "operationStatus": "Succeeded", "operationTrigger": "User"}
        self._mutate(name, change_state)
        return done(None)

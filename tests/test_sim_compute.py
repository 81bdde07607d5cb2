"""``ml_client.compute`` in the simulated workspace, as a learner uses it."""
from __future__ import annotations

import pytest
from azure.ai.ml.entities import (
    AmlCompute,
    ComputeInstance,
    IdentityConfiguration,
    KubernetesCompute,
)
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.polling import LROPoller

from labkit.sim.compute import operations as sim_compute
from labkit.sim.compute.vm_sizes import find_size

AKS_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dp100-labs/providers/"
          "Microsoft.ContainerService/managedClusters/aks-labs")


def make_cluster(ml_client, name="cpu-cluster", **kwargs):
    settings = dict(size="Standard_DS3_v2", min_instances=0, max_instances=4, idle_time_before_scale_down=120)
    settings.update(kwargs)
    return ml_client.compute.begin_create_or_update(AmlCompute(name=name, **settings)).result()


def test_create_cluster_returns_poller_and_provisioned_cluster(ml_client):
    poller = ml_client.compute.begin_create_or_update(
        AmlCompute(name="cpu-cluster", size="Standard_DS11_v2", min_instances=0, max_instances=2,
                   idle_time_before_scale_down=300, tier="low_priority"))
    assert isinstance(poller, LROPoller)
    cluster = poller.result()
    assert isinstance(cluster, AmlCompute)
    assert cluster.name == "cpu-cluster"
    assert cluster.provisioning_state == "Succeeded"
    assert cluster.size == "Standard_DS11_v2"
    assert (cluster.min_instances, cluster.max_instances) == (0, 2)
    assert cluster.idle_time_before_scale_down == 300
    assert cluster.tier == "low_priority"
    assert cluster.location == "eastus"
    assert cluster.id.endswith("/workspaces/mlw-dp100-labs/computes/cpu-cluster")


def test_cluster_defaults_to_dedicated_and_idle_with_no_nodes(ml_client):
    cluster = make_cluster(ml_client)
    assert cluster.tier == "dedicated"
    row = ml_client._sim_workspace.store.get(sim_compute.KIND, "cpu-cluster")
    inner = row.payload["properties"]["properties"]
    assert inner["currentNodeCount"] == 0
    assert inner["allocationState"] == "Steady"
    assert list(ml_client.compute.list_nodes("cpu-cluster")) == []


def test_cluster_with_minimum_nodes_keeps_them(ml_client):
    make_cluster(ml_client, min_instances=1, max_instances=2)
    nodes = list(ml_client.compute.list_nodes("cpu-cluster"))
    assert len(nodes) == 1


def test_cluster_identity_gets_a_principal(ml_client):
    cluster = make_cluster(ml_client, identity=IdentityConfiguration(type="system_assigned"))
    assert cluster.identity.type == "system_assigned"
    assert cluster.identity.principal_id
    again = ml_client.compute.get("cpu-cluster")
    assert again.identity.principal_id == cluster.identity.principal_id


def test_client_level_begin_create_or_update_reaches_the_simulation(ml_client):
    cluster = ml_client.begin_create_or_update(
        AmlCompute(name="aml-cluster", size="Standard_D2s_v3", max_instances=2)).result()
    assert cluster.provisioning_state == "Succeeded"
    assert ml_client.compute.get("aml-cluster").size == "Standard_D2s_v3"


def test_get_missing_compute_is_not_found(ml_client):
    with pytest.raises(ResourceNotFoundError, match="no-such-compute"):
        ml_client.compute.get("no-such-compute")


def test_names_are_case_insensitive(ml_client):
    make_cluster(ml_client, name="CPU-Cluster")
    assert ml_client.compute.get("cpu-cluster").name == "CPU-Cluster"


@pytest.mark.parametrize("name", ["ab", "1cluster", "cpu_cluster", "cpu-cluster-1",
                                  "a-very-long-cluster-name-xyz"])
def test_invalid_compute_names_are_refused(ml_client, name):
    with pytest.raises(HttpResponseError) as raised:
        make_cluster(ml_client, name=name)
    assert raised.value.status_code == 400
    assert name in str(raised.value)
    with pytest.raises(ResourceNotFoundError):
        ml_client.compute.get(name)


@pytest.mark.parametrize("name", ["abc", "cpu-cluster", "gpu-cluster-a", "Cluster24CharactersLong1"])
def test_valid_compute_names_are_accepted(ml_client, name):
    assert make_cluster(ml_client, name=name).name == name


def test_unknown_vm_size_is_refused_naming_the_size(ml_client):
    with pytest.raises(HttpResponseError, match="Standard_XYZ99_v9") as raised:
        make_cluster(ml_client, size="Standard_XYZ99_v9")
    assert raised.value.status_code == 400
    assert list(ml_client.compute.list()) == []


def test_vm_size_matches_case_insensitively(ml_client):
    cluster = make_cluster(ml_client, size="STANDARD_DS3_V2")
    assert cluster.size == "STANDARD_DS3_V2"
    # The SDK's own default size is written in capitals.
    default = ml_client.compute.begin_create_or_update(AmlCompute(name="default-size")).result()
    assert default.size.lower() == "standard_ds3_v2"


def test_min_greater_than_max_is_refused(ml_client):
    with pytest.raises(HttpResponseError, match="min_instances") as raised:
        make_cluster(ml_client, min_instances=3, max_instances=1)
    assert raised.value.status_code == 400


def test_update_cluster_scale_settings_keeps_it(ml_client):
    make_cluster(ml_client, max_instances=2)
    cluster = ml_client.compute.get("cpu-cluster")
    cluster.max_instances = 6
    cluster.idle_time_before_scale_down = 600
    updated = ml_client.compute.begin_update(cluster).result()
    assert updated.max_instances == 6
    assert updated.idle_time_before_scale_down == 600
    assert updated.created_on == cluster.created_on


def test_sending_an_existing_cluster_with_only_max_instances_scales_it(ml_client):
    # The official compute lab: the SDK sends its default size, the cluster keeps its own.
    make_cluster(ml_client, name="aml-cluster", size="STANDARD_DS11_V2", max_instances=1, tier="low_priority")
    ml_client.begin_create_or_update(AmlCompute(name="aml-cluster", max_instances=2)).result()
    cluster = ml_client.compute.get("aml-cluster")
    assert cluster.max_instances == 2
    assert (cluster.size, cluster.tier) == ("STANDARD_DS11_V2", "low_priority")


def test_a_clusters_vm_size_stays_what_it_was_created_with(ml_client):
    make_cluster(ml_client)
    updated = make_cluster(ml_client, size="Standard_DS4_v2", max_instances=3)
    assert (updated.size, updated.max_instances) == ("Standard_DS3_v2", 3)


def test_changing_the_compute_type_of_a_name_is_refused(ml_client):
    make_cluster(ml_client, name="shared-name")
    with pytest.raises(ResourceExistsError):
        ml_client.compute.begin_create_or_update(ComputeInstance(name="shared-name", size="Standard_DS3_v2"))


def test_compute_instance_lifecycle(ml_client):
    instance = ml_client.compute.begin_create_or_update(
        ComputeInstance(name="ci-learner", size="Standard_DS11_v2")).result()
    assert isinstance(instance, ComputeInstance)
    assert instance.state == "Running"
    assert instance.last_operation["operationName"] == "Create"

    poller = ml_client.compute.begin_stop("ci-learner")
    assert isinstance(poller, LROPoller)
    poller.result()
    assert ml_client.compute.get("ci-learner").state == "Stopped"

    ml_client.compute.begin_start("ci-learner").result()
    started = ml_client.compute.get("ci-learner")
    assert started.state == "Running"
    assert started.last_operation["operationName"] == "Start"

    ml_client.compute.begin_restart("ci-learner").result()
    restarted = ml_client.compute.get("ci-learner")
    assert restarted.state == "Running"
    assert restarted.last_operation["operationName"] == "Restart"


def test_stop_twice_and_start_while_running_are_refused(ml_client):
    ml_client.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_DS11_v2")).result()
    with pytest.raises(ResourceExistsError):
        ml_client.compute.begin_start("ci-learner")
    ml_client.compute.begin_stop("ci-learner").result()
    with pytest.raises(ResourceExistsError):
        ml_client.compute.begin_stop("ci-learner")


def test_restart_brings_a_stopped_instance_back(ml_client):
    ml_client.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_DS11_v2")).result()
    ml_client.compute.begin_stop("ci-learner").result()
    ml_client.compute.begin_restart("ci-learner").result()
    assert ml_client.compute.get("ci-learner").state == "Running"


def test_start_and_stop_apply_only_to_compute_instances(ml_client):
    make_cluster(ml_client)
    for action in (ml_client.compute.begin_start, ml_client.compute.begin_stop, ml_client.compute.begin_restart):
        with pytest.raises(HttpResponseError, match="compute instances") as raised:
            action("cpu-cluster")
        assert raised.value.status_code == 400


def test_start_missing_instance_is_not_found(ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.compute.begin_start("ci-missing")


def test_compute_instance_with_unknown_size_is_refused(ml_client):
    with pytest.raises(HttpResponseError, match="Standard_Q1"):
        ml_client.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_Q1"))


def test_kubernetes_attach_is_stored(ml_client):
    attached = ml_client.compute.begin_attach(
        KubernetesCompute(name="k8s-compute", resource_id=AKS_ID, namespace="azureml")).result()
    assert isinstance(attached, KubernetesCompute)
    assert attached.namespace == "azureml"
    assert attached.resource_id == AKS_ID
    assert attached.provisioning_state == "Succeeded"
    assert [c.name for c in ml_client.compute.list(compute_type="kubernetes")] == ["k8s-compute"]


def test_kubernetes_attach_needs_a_cluster_resource_id(ml_client):
    with pytest.raises(HttpResponseError, match="resource_id"):
        ml_client.compute.begin_attach(KubernetesCompute(name="k8s-compute"))


def test_list_filters_by_type(ml_client):
    make_cluster(ml_client)
    ml_client.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_DS11_v2")).result()
    assert sorted(c.name for c in ml_client.compute.list()) == ["ci-learner", "cpu-cluster"]
    assert [c.name for c in ml_client.compute.list(compute_type="AmlCompute")] == ["cpu-cluster"]
    assert [c.name for c in ml_client.compute.list(compute_type="computeinstance")] == ["ci-learner"]


def test_delete_removes_compute_and_missing_delete_is_not_found(ml_client):
    make_cluster(ml_client)
    poller = ml_client.compute.begin_delete("cpu-cluster")
    assert isinstance(poller, LROPoller)
    assert poller.result() is None
    with pytest.raises(ResourceNotFoundError):
        ml_client.compute.get("cpu-cluster")
    with pytest.raises(ResourceNotFoundError):
        ml_client.compute.begin_delete("cpu-cluster")


def test_detach_kubernetes(ml_client):
    ml_client.compute.begin_attach(KubernetesCompute(name="k8s-compute", resource_id=AKS_ID)).result()
    ml_client.compute.begin_delete("k8s-compute", action="Detach").result()
    assert list(ml_client.compute.list()) == []


def test_list_sizes_describes_cpu_and_gpu_sizes(ml_client):
    sizes = {size.name: size for size in ml_client.compute.list_sizes()}
    assert {"Standard_DS3_v2", "Standard_D2as_v4", "Standard_E4s_v3",
            "Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4", "Standard_ND96asr_v4"} <= set(sizes)
    assert "Standard_NC6s_v3" not in sizes  # retired on 30 September 2025
    # VmSize._from_rest_object copies the service's field names (vCPUs, memoryGB) as they come.
    gpu = sizes["Standard_NC4as_T4_v3"]
    assert gpu.gpus == 1
    assert gpu.vCPUs == 4
    assert gpu.memoryGB == 28
    assert gpu.family == "standardNCASv3_T4Family"
    assert sizes["Standard_ND96asr_v4"].gpus == 8
    assert sizes["Standard_DS3_v2"].gpus == 0
    assert sizes["Standard_DS3_v2"].vCPUs == 4
    assert len(ml_client.compute.list_sizes(compute_type="ComputeInstance")) == len(sizes)
    assert ml_client.compute.list_sizes(compute_type="Kubernetes") == []


def test_vm_size_table_gpu_types():
    assert find_size("standard_nc4as_t4_v3").gpu_type.startswith("NVIDIA Tesla T4")
    assert find_size("Standard_DS1_v2").gpu_type is None
    assert find_size("Standard_Nope") is None


def test_list_usage_counts_cluster_capacity_per_family(ml_client):
    def usage():
        return {u.name["value"]: u for u in ml_client.compute.list_usage()}

    before = usage()
    assert before["standardDSv2Family"].currentValue == 0
    assert before["standardNCASv3_T4Family"].limit == sim_compute.GPU_FAMILY_LIMIT

    make_cluster(ml_client, size="Standard_DS3_v2", max_instances=4)  # 4 x 4 vCPUs
    make_cluster(ml_client, name="gpu-cluster", size="Standard_NC4as_T4_v3", max_instances=2)  # 2 x 4
    make_cluster(ml_client, name="cheap-cluster", size="Standard_D2s_v3", max_instances=3, tier="low_priority")
    ml_client.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_DS11_v2")).result()

    after = usage()
    assert after["standardDSv2Family"].currentValue == 16 + 2
    assert after["standardNCASv3_T4Family"].currentValue == 8
    assert after["standardDSv3Family"].currentValue == 0
    assert after["TotalLowPriorityCores"].currentValue == 6
    assert after["Cores"].currentValue == 16 + 2 + 8  # dedicated only
    assert after["Cores"].limit == sim_compute.TOTAL_DEDICATED_LIMIT
    assert after["standardNCASv3_T4Family"].type == "Microsoft.MachineLearningServices/vmFamily/usages"
    assert after["standardNCASv3_T4Family"].amlWorkspaceLocation == "eastus"

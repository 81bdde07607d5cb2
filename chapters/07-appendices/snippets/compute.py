# SDK v2: a compute cluster that scales to zero nodes when idle.
from azure.ai.ml.entities import AmlCompute

cluster = AmlCompute(
    name="cpu-cluster",
    size="Standard_DS3_v2",
    min_instances=0,
    max_instances=4,
    idle_time_before_scale_down=120,  # seconds
    tier="dedicated",                 # or "low_priority"
)
cluster = ml_client.compute.begin_create_or_update(cluster).result()
print(cluster.name, cluster.provisioning_state)

# SDK v2: an endpoint and a deployment replace InferenceConfig, Model.deploy and
# AciWebservice / AksWebservice.
from azure.ai.ml.entities import (
    CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint)

endpoint = ManagedOnlineEndpoint(name="diabetes-endpoint", auth_mode="key")  # or "aml_token", "aad_token"
deployment = ManagedOnlineDeployment(
    name="blue",
    endpoint_name="diabetes-endpoint",
    model="azureml:diabetes-classifier:1",
    code_configuration=CodeConfiguration(code="./src", scoring_script="score.py"),  # was entry_script
    environment="azureml:diabetes-train:1",                                        # was InferenceConfig's environment
    instance_type="Standard_DS3_v2",                                               # was cpu_cores / memory_gb
    instance_count=1,
)
# On Azure:
#   ml_client.online_endpoints.begin_create_or_update(endpoint).result()
#   ml_client.online_deployments.begin_create_or_update(deployment).result()
#   endpoint.traffic = {"blue": 100}
#   ml_client.online_endpoints.begin_create_or_update(endpoint).result()

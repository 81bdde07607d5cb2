# SDK v2: a client for one workspace, from the config.json the studio lets you download.
from azure.ai.ml import MLClient
from azure.identity import DefaultAzureCredential

ml_client = MLClient.from_config(credential=DefaultAzureCredential())
workspace = ml_client.workspaces.get(ml_client.workspace_name)
print(workspace.name, workspace.location)

# SDK v2: an environment from a base image plus a conda file, registered as a version.
from azure.ai.ml.entities import Environment

env = Environment(
    name="diabetes-train",
    image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
    conda_file="env/conda.yml",
    description="scikit-learn and MLflow for the training script",
)
env = ml_client.environments.create_or_update(env)
print(env.name, env.version)

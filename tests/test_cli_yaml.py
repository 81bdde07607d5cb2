"""Every CLI YAML file the labs ship loads with the azure-ai-ml loader its ``$schema`` names.

The Azure ML CLI (``az ml ... create --file``) and the Python SDK share one set of YAML
schemas; ``azure.ai.ml.load_*`` validates a file against the SDK's copy of them. So a file
that loads here, into the entity its schema stands for, is one the CLI accepts too (the
service may still refuse values such as a placeholder secret, as it would on Azure).

Schema URLs are listed in the Azure ML "CLI (v2) YAML schemas" reference
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-overview); the
file name after ``/latest/`` says which kind of resource the YAML describes.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import azure.ai.ml as aml
from azure.ai.ml import entities
from azure.ai.ml.sweep import SweepJob

# The SDK has no public loader for schedules (the CLI uses this one internally) and no
# public base class for AutoML jobs; both live in modules the SDK does not export.
from azure.ai.ml.entities._job.automl.automl_job import AutoMLJob
from azure.ai.ml.entities._load_functions import load_schedule
# `type: model` and `type: pipeline` batch deployments keep their options under `settings:`,
# which only these two loaders read (load_batch_deployment reads the legacy flat layout).
from azure.ai.ml.entities._load_functions import (
    load_model_batch_deployment,
    load_pipeline_component_batch_deployment,
)

REPO = Path(__file__).resolve().parent.parent
SCHEMA_URL = re.compile(r"^https://azuremlschemas\.azureedge\.net/latest/(?P<kind>[A-Za-z0-9]+)\.schema\.json$")

# schema name -> (loader, entity type the file must produce)
LOADERS = {
    "workspace": (aml.load_workspace, entities.Workspace),
    "registry": (aml.load_registry, entities.Registry),
    # Datastores: one schema per storage service.
    "azureBlob": (aml.load_datastore, entities.AzureBlobDatastore),
    "azureFile": (aml.load_datastore, entities.AzureFileDatastore),
    "azureDataLakeGen1": (aml.load_datastore, entities.AzureDataLakeGen1Datastore),
    "azureDataLakeGen2": (aml.load_datastore, entities.AzureDataLakeGen2Datastore),
    "data": (aml.load_data, entities.Data),
    # Compute targets.
    "amlCompute": (aml.load_compute, entities.AmlCompute),
    "computeInstance": (aml.load_compute, entities.ComputeInstance),
    "vmCompute": (aml.load_compute, entities.VirtualMachineCompute),
    "kubernetesCompute": (aml.load_compute, entities.KubernetesCompute),
    "environment": (aml.load_environment, entities.Environment),
    "model": (aml.load_model, entities.Model),
    # Components.
    "commandComponent": (aml.load_component, entities.CommandComponent),
    "pipelineComponent": (aml.load_component, entities.PipelineComponent),
    # Jobs. load_job turns a command job into a `Command` node (a Job subclass).
    "commandJob": (aml.load_job, entities.Command),
    "pipelineJob": (aml.load_job, entities.PipelineJob),
    "sweepJob": (aml.load_job, SweepJob),
    "autoMLJob": (aml.load_job, AutoMLJob),
    "schedule": (load_schedule, entities.Schedule),
    # Endpoints and deployments.
    "managedOnlineEndpoint": (aml.load_online_endpoint, entities.ManagedOnlineEndpoint),
    "kubernetesOnlineEndpoint": (aml.load_online_endpoint, entities.KubernetesOnlineEndpoint),
    "managedOnlineDeployment": (aml.load_online_deployment, entities.ManagedOnlineDeployment),
    "kubernetesOnlineDeployment": (aml.load_online_deployment, entities.KubernetesOnlineDeployment),
    "batchEndpoint": (aml.load_batch_endpoint, entities.BatchEndpoint),
    "batchDeployment": (aml.load_batch_deployment, entities.BatchDeployment),
    "modelBatchDeployment": (load_model_batch_deployment, entities.ModelBatchDeployment),
    "pipelineComponentBatchDeployment": (load_pipeline_component_batch_deployment,
                                         entities.PipelineComponentBatchDeployment),
}


def cli_yaml_files(root: Path) -> list[Path]:
    return sorted(p for pattern in ("labs/**/cli/*.yml", "labs/**/cli/*.yaml") for p in root.glob(pattern))


def schema_kind(path: Path) -> str:
    """The schema name in the file's ``$schema`` URL; fails on a missing or unknown one."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    url = document.get("$schema")
    assert url, f"{path.name} has no $schema line"
    match = SCHEMA_URL.match(str(url))
    assert match, f"{path.name}: $schema {url!r} is not an Azure ML 'latest' schema URL"
    kind = match["kind"]
    assert kind in LOADERS, f"{path.name}: unknown schema {kind!r} (known: {', '.join(sorted(LOADERS))})"
    return kind


def load(path: Path):
    """Load a CLI YAML file with the loader its schema names; returns (entity, expected type)."""
    loader, expected = LOADERS[schema_kind(path)]
    return loader(source=path), expected


FILES = cli_yaml_files(REPO)


@pytest.mark.skipif(not FILES, reason="no CLI YAML files yet")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_cli_yaml_loads_as_its_schema_says(path):
    entity, expected = load(path)
    assert isinstance(entity, expected), (
        f"{path.name} loaded as {type(entity).__name__}, but its schema means {expected.__name__}")


# --- the check itself can fail ---------------------------------------------------------

BLOB = """$schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json
name: some_store
type: azure_blob
account_name: someaccount
container_name: some-container
"""


def test_check_accepts_a_good_file(tmp_path):
    path = tmp_path / "store.yml"
    path.write_text(BLOB, encoding="utf-8")
    entity, expected = load(path)
    assert isinstance(entity, expected) and entity.name == "some_store"


def test_check_refuses_an_unknown_schema(tmp_path):
    path = tmp_path / "odd.yml"
    path.write_text(BLOB.replace("azureBlob.schema", "azureBlobby.schema"), encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown schema 'azureBlobby'"):
        load(path)


def test_check_refuses_a_file_without_schema(tmp_path):
    path = tmp_path / "bare.yml"
    path.write_text(BLOB.split("\n", 1)[1], encoding="utf-8")
    with pytest.raises(AssertionError, match="no \\$schema"):
        load(path)


def test_check_notices_a_schema_that_does_not_match_the_content(tmp_path):
    # A file share datastore under the Blob schema loads as the wrong entity type.
    path = tmp_path / "share.yml"
    path.write_text("""$schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json
name: some_share
type: azure_file
account_name: someaccount
file_share_name: some-share
""", encoding="utf-8")
    entity, expected = load(path)
    assert not isinstance(entity, expected)

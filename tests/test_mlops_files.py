"""The MLOps files of lab 3.5 (``labs/03-deploy-operationalize/mlops/``) are what they claim to be.

- The GitHub Actions workflow and the Azure Pipelines file validate against the schemas that
  check-jsonschema vendors (SchemaStore's GitHub workflow schema, Microsoft's Azure Pipelines
  service schema), offline, with the check-jsonschema of this virtualenv.
- Every ``az ml <group> <verb>`` they run is a command of the Azure CLI ``ml`` extension, and
  every YAML file they pass with ``--file`` (and every request file) exists and loads with the
  SDK's matching ``load_*`` function. No Azure CLI is installed here, so the commands are
  checked against a table taken from the CLI reference pages, each cited below.
- The Bicep file: no Bicep compiler can be installed here (it is a .NET binary downloaded by
  ``az bicep install``, not a Python package), so its structure is checked instead: the
  resource types and API versions it declares, its parameters, balanced braces, and that the
  cluster's VM size is a real one.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import azure.ai.ml as aml
from azure.ai.ml import entities

from labkit.sim.compute.vm_sizes import find_size

REPO = Path(__file__).resolve().parent.parent
MLOPS = REPO / "labs" / "03-deploy-operationalize" / "mlops"
GITHUB_WORKFLOW = MLOPS / "github" / "train-register-deploy.yml"
AZURE_PIPELINE = MLOPS / "azure-devops" / "azure-pipelines.yml"
BICEP = MLOPS / "infra" / "main.bicep"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# check-jsonschema options per schema. The Azure Pipelines schema comes from the pipelines
# language server, which reads YAML scalars as strings and expands `${{ }}` expressions:
# the `azure-pipelines` data transform does the latter, and the schema's patterns need the
# non-unicode regex dialect (its default, unicode mode, refuses escapes such as `\-`).
SCHEMA_OPTIONS = {
    "vendor.github-workflows": [],
    "vendor.azure-pipelines": ["--data-transform", "azure-pipelines", "--regex-variant", "nonunicode"],
}

# The `az ml` groups and verbs the workflows may run, from the ml extension's reference pages:
#   job:               https://learn.microsoft.com/cli/azure/ml/job (create, download, show, stream, ...)
#   model:             https://learn.microsoft.com/cli/azure/ml/model (create, share, show, ...)
#   online-endpoint:   https://learn.microsoft.com/cli/azure/ml/online-endpoint
#   online-deployment: https://learn.microsoft.com/cli/azure/ml/online-deployment
ML_EXTENSION_COMMANDS = {
    "job": {"archive", "cancel", "connect-ssh", "create", "download", "list", "restore", "show",
            "show-services", "stream", "update", "validate"},
    "model": {"archive", "create", "download", "list", "package", "restore", "share", "show", "update"},
    "online-endpoint": {"create", "delete", "get-credentials", "invoke", "list", "regenerate-keys",
                        "show", "update"},
    "online-deployment": {"create", "delete", "get-logs", "list", "show", "update"},
}

# `--file` of each group: which loader reads it and what it must produce. The CLI and the SDK
# share one set of YAML schemas (https://learn.microsoft.com/azure/machine-learning/reference-yaml-overview).
FILE_LOADERS = {
    "job": (aml.load_job, entities.Job),
    "online-endpoint": (aml.load_online_endpoint, entities.ManagedOnlineEndpoint),
    "online-deployment": (aml.load_online_deployment, entities.ManagedOnlineDeployment),
    "model": (aml.load_model, entities.Model),
}

# Resource types the Bicep file must declare, with the API versions this test accepts: stable
# versions listed in the ARM template reference, https://learn.microsoft.com/azure/templates/
# (<namespace>/<version>/<type> pages: machinelearningservices 2024-04-01, storage 2023-05-01,
# keyvault 2023-07-01, insights components 2020-02-02, operationalinsights 2023-09-01).
BICEP_RESOURCES = {
    "Microsoft.MachineLearningServices/workspaces": {"2023-10-01", "2024-04-01"},
    "Microsoft.MachineLearningServices/workspaces/computes": {"2023-10-01", "2024-04-01"},
    "Microsoft.Storage/storageAccounts": {"2023-01-01", "2023-05-01"},
    "Microsoft.KeyVault/vaults": {"2022-07-01", "2023-07-01"},
    "Microsoft.Insights/components": {"2020-02-02"},
}
BICEP_PARAMS = {"location", "prefix", "workspaceName", "clusterName", "clusterVmSize", "clusterMaxNodes"}


# --- schema validation -------------------------------------------------------------------------
def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    command = [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *SCHEMA_OPTIONS[schema], str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("schema, path", [("vendor.github-workflows", GITHUB_WORKFLOW),
                                          ("vendor.azure-pipelines", AZURE_PIPELINE)],
                         ids=["github-actions", "azure-pipelines"])
def test_workflow_file_validates_against_its_schema(schema, path):
    result = check_jsonschema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_fails_on_a_broken_github_workflow(tmp_path):
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    del workflow["jobs"]["train"]["runs-on"]         # a job needs a runner
    workflow["permissions"]["id-token"] = "always"   # not read, write or none
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_schema_check_fails_on_a_broken_azure_pipeline(tmp_path):
    pipeline = yaml.safe_load(AZURE_PIPELINE.read_text())
    pipeline["stages"][0]["jobs"][0]["steps"].append({"task": "AzureCLI@2", "inputz": {}})  # misspelt key
    broken = tmp_path / "azure-pipelines.yml"
    broken.write_text(yaml.safe_dump(pipeline))
    result = check_jsonschema("vendor.azure-pipelines", broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_github_workflow_signs_in_with_openid_connect():
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    assert workflow["permissions"]["id-token"] == "write"
    logins = [step for job in workflow["jobs"].values() for step in job["steps"]
              if str(step.get("uses", "")).startswith("azure/login@")]
    assert len(logins) == len(workflow["jobs"]), "every job signs in"
    for login in logins:
        assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}, "no client secret"


# --- the az ml commands and the files they read ------------------------------------------------
def shell_scripts(path: Path) -> list[str]:
    """The shell scripts a workflow runs: GitHub `run:` steps, Azure Pipelines `inlineScript`s."""
    scripts = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("run", "inlineScript", "script", "bash") and isinstance(value, str):
                    scripts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(path.read_text()))
    return scripts


def az_ml_commands(script: str) -> list[list[str]]:
    """Each `az ml ...` command of a script as a list of words (line continuations joined)."""
    text = script.replace("\\\n", " ")
    text = re.sub(r"\$\(([\w.]+)\)", r"${\1}", text)  # Azure Pipelines macros $(name) -> ${name}
    commands = []
    for match in re.finditer(r"\baz ml ([^\n;|)&]*)", text):
        commands.append(shlex.split(match.group(1), comments=True))
    return commands


def resolve(path_text: str) -> Path:
    """A workflow path (relative to the repository root, with $MLOPS / $(mlops) for the mlops folder)."""
    path_text = re.sub(r"\$\{?(MLOPS|mlops)\}?", "labs/03-deploy-operationalize/mlops", path_text)
    return REPO / path_text


WORKFLOWS = [GITHUB_WORKFLOW, AZURE_PIPELINE]
COMMANDS = [(workflow, words) for workflow in WORKFLOWS for script in shell_scripts(workflow)
            for words in az_ml_commands(script)]


def test_the_workflows_run_az_ml_commands():
    for workflow in WORKFLOWS:
        groups = {words[0] for path, words in COMMANDS if path == workflow}
        assert {"job", "model", "online-endpoint", "online-deployment"} <= groups, workflow.name


@pytest.mark.parametrize("workflow, words", COMMANDS,
                         ids=[f"{w.parent.name}:az ml {' '.join(c[:2])}" for w, c in COMMANDS])
def test_az_ml_command_exists_in_the_ml_extension(workflow, words):
    group, verb = words[0], words[1]
    assert group in ML_EXTENSION_COMMANDS, f"{workflow.name}: no command group 'az ml {group}'"
    assert verb in ML_EXTENSION_COMMANDS[group], f"{workflow.name}: no command 'az ml {group} {verb}'"


def option_values(words: list[str], option: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == option]


FILE_ARGUMENTS = [(words[0], value) for _, words in COMMANDS for value in option_values(words, "--file")]


def test_the_workflows_pass_yaml_files():
    assert {group for group, _ in FILE_ARGUMENTS} >= {"job", "online-endpoint", "online-deployment"}


@pytest.mark.parametrize("group, path_text", sorted(set(FILE_ARGUMENTS)),
                         ids=[f"{g}:{Path(p).name}" for g, p in sorted(set(FILE_ARGUMENTS))])
def test_file_argument_exists_and_loads_with_the_sdk(group, path_text):
    path = resolve(path_text)
    assert path.is_file(), f"az ml {group} --file {path_text}: no such file"
    loader, expected = FILE_LOADERS[group]
    entity = loader(source=path)
    assert isinstance(entity, expected), f"{path.name} loaded as {type(entity).__name__}"


def test_request_files_exist_and_match_the_training_columns():
    requests = {value for _, words in COMMANDS for value in option_values(words, "--request-file")}
    assert requests, "the workflows smoke-test the new deployment"
    for path_text in requests:
        body = yaml.safe_load(resolve(path_text).read_text())  # JSON is YAML
        columns = body["input_data"]["columns"]
        assert all(len(row) == len(columns) for row in body["input_data"]["data"])
        assert "diabetic" not in columns and "plasma_glucose_mg_dl" in columns


def test_pipeline_yaml_names_the_cluster_the_bicep_file_creates():
    job = aml.load_job(MLOPS / "cli" / "retraining-pipeline.yml")
    default_cluster = re.search(r"param clusterName string = '([^']+)'", BICEP.read_text())[1]
    assert job.settings.default_compute in (default_cluster, f"azureml:{default_cluster}")


def test_file_check_fails_on_a_missing_file(tmp_path):
    bad = tmp_path / "deployment.yml"
    bad.write_text("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
                   "name: green\nendpoint_name: e\ninstance_count: many\n")
    assert not resolve("labs/03-deploy-operationalize/mlops/cli/no-such-file.yml").is_file()
    with pytest.raises(Exception):
        aml.load_online_deployment(source=bad)


def test_command_check_fails_on_an_unknown_verb():
    words = az_ml_commands("az ml online-endpoint swap --name e \\\n  --traffic 'blue=0 green=100'")[0]
    assert words[:2] == ["online-endpoint", "swap"]
    assert words[1] not in ML_EXTENSION_COMMANDS[words[0]]


# --- the Bicep file, by structure ---------------------------------------------------------------
def bicep_resources(text: str) -> dict[str, str]:
    """symbolic name -> 'type@apiVersion' of every `resource` declaration."""
    return dict(re.findall(r"^resource (\w+) '([\w./]+@[\w-]+)'", text, flags=re.MULTILINE))


def test_bicep_declares_the_workspace_its_dependencies_and_a_cluster():
    declared = {}
    for _, spec in bicep_resources(BICEP.read_text()).items():
        kind, version = spec.split("@")
        declared[kind] = version
    for kind, versions in BICEP_RESOURCES.items():
        assert kind in declared, f"main.bicep declares no {kind}"
        assert declared[kind] in versions, f"{kind}@{declared[kind]}: not a known stable API version"


def test_bicep_workspace_refers_to_its_dependencies():
    text = BICEP.read_text()
    names = {spec.split("@")[0]: name for name, spec in bicep_resources(text).items()}
    workspace = re.search(r"resource \w+ 'Microsoft.MachineLearningServices/workspaces@[^']+' = \{(.*?)\n\}",
                          text, flags=re.DOTALL)[1]
    for key, kind in (("storageAccount", "Microsoft.Storage/storageAccounts"),
                      ("keyVault", "Microsoft.KeyVault/vaults"),
                      ("applicationInsights", "Microsoft.Insights/components")):
        assert re.search(rf"\b{key}: {names[kind]}\.id\b", workspace), f"the workspace's {key}"
    assert re.search(r"parent: " + names["Microsoft.MachineLearningServices/workspaces"], text)
    assert "computeType: 'AmlCompute'" in text and "minNodeCount: 0" in text


def test_bicep_parameters_and_balance():
    text = BICEP.read_text()
    params = set(re.findall(r"^param (\w+) ", text, flags=re.MULTILINE))
    assert params == BICEP_PARAMS
    code = re.sub(r"//.*", "", re.sub(r"'(?:\\'|[^'])*'", "''", text))  # strings and comments out
    for opening, closing in ("{}", "[]", "()"):
        depth = 0
        for char in code:
            depth += (char == opening) - (char == closing)
            assert depth >= 0, f"unbalanced {closing}"
        assert depth == 0, f"unbalanced {opening}"


def test_bicep_cluster_vm_size_is_a_real_size():
    size = re.search(r"param clusterVmSize string = '([^']+)'", BICEP.read_text())[1]
    assert find_size(size) is not None, f"{size} is not an Azure VM size"
    assert find_size("Standard_DS3_v9") is None  # the check can fail

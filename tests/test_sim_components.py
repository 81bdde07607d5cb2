"""Registering command components in the simulated workspace, from YAML and from Python."""
from __future__ import annotations

import textwrap

import pytest
from azure.ai.ml import Input, Output, command, dsl, load_component
from azure.ai.ml.constants import ListViewType
from azure.ai.ml.entities import CommandComponent
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from labkit import sim

CURATED_ENV = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
TRAIN_SCRIPT = "import argparse\nprint('training')\n"


def write_component(folder, name="train_model", version="1", command_line=None):
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(TRAIN_SCRIPT)
    spec = folder / f"{name}.yml"
    command_line = command_line or (
        "python train.py --training_data ${{inputs.training_data}} "
        "--reg_rate ${{inputs.reg_rate}} --model_output ${{outputs.model_output}}")
    version_line = f"version: {version}\n" if version else ""
    spec.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\n"
        f"name: {name}\n"
        "display_name: Train a model\n"
        "description: Trains a logistic regression model\n"
        f"{version_line}"
        "type: command\n"
        + textwrap.dedent(f"""\
            inputs:
              training_data:
                type: uri_folder
              reg_rate:
                type: number
                default: 0.01
            outputs:
              model_output:
                type: mlflow_model
            code: ./src
            environment: {CURATED_ENV}
            command: >-
              {command_line}
            """))
    return spec


def python_component(folder, name="prep_data"):
    src = folder / "prep"
    src.mkdir(parents=True, exist_ok=True)
    (src / "prep.py").write_text("print('prep')\n")
    return command(
        name=name,
        display_name="Prepare data",
        command="python prep.py --input_data ${{inputs.input_data}} --output_data ${{outputs.output_data}}",
        code=src,
        environment="azureml:diabetes-env:3",
        inputs={"input_data": Input(type="uri_file")},
        outputs={"output_data": Output(type="uri_folder")},
    ).component


def test_component_from_yaml(ml_client, tmp_path):
    component = ml_client.components.create_or_update(load_component(source=write_component(tmp_path)))
    assert isinstance(component, CommandComponent)
    assert (component.name, component.version) == ("train_model", "1")
    assert component.id.endswith("/components/train_model/versions/1")
    assert component.display_name == "Train a model"
    assert component.environment == CURATED_ENV.removeprefix("azureml:")
    assert set(component.inputs) == {"training_data", "reg_rate"}
    assert component.outputs["model_output"].type == "mlflow_model"

    # The code folder became a code asset in this workspace, referred to by ARM id...
    assert component.code.startswith(ml_client._sim_workspace.arm_id + "/codes/")
    assert component.code.endswith("/versions/1")
    # ...and its files were uploaded to the workspace's storage.
    uploaded = list(sim.workspace_folder(ml_client).glob("storage/**/LocalUpload/*/src/train.py"))
    assert [p.read_text() for p in uploaded] == [TRAIN_SCRIPT]

    fetched = ml_client.components.get("train_model", version="1")
    assert fetched.code == component.code
    assert fetched.command == component.command
    assert fetched.inputs["reg_rate"].default == 0.01


def test_component_from_python_and_client_dispatch(ml_client, tmp_path):
    first = ml_client.create_or_update(python_component(tmp_path))
    second = ml_client.components.create_or_update(python_component(tmp_path))
    explicit = ml_client.components.create_or_update(python_component(tmp_path), version="10")
    assert [first.version, second.version, explicit.version] == ["1", "2", "10"]
    assert first.environment.endswith("/environments/diabetes-env/versions/3")
    assert first.code == second.code  # the same code is one code asset
    assert ml_client.components.get("prep_data").version == "10"
    assert ml_client.components.get("prep_data", label="latest").version == "10"
    assert sorted(c.version for c in ml_client.components.list("prep_data")) == ["1", "10", "2"]
    after = ml_client.components.create_or_update(python_component(tmp_path))
    assert after.version == "11"


def test_list_gives_one_entry_per_name(ml_client, tmp_path):
    ml_client.components.create_or_update(load_component(source=write_component(tmp_path)))
    ml_client.components.create_or_update(load_component(source=write_component(tmp_path, version="2")))
    ml_client.components.create_or_update(python_component(tmp_path))
    containers = {c.name: c for c in ml_client.components.list()}
    assert sorted(containers) == ["prep_data", "train_model"]
    assert containers["train_model"].latest_version == "2"


def test_a_version_cannot_change(ml_client, tmp_path):
    ml_client.components.create_or_update(load_component(source=write_component(tmp_path)))
    changed = write_component(tmp_path / "changed", command_line="python other.py")
    with pytest.raises(HttpResponseError) as error:
        ml_client.components.create_or_update(load_component(source=changed))
    assert error.value.status_code == 400
    assert ml_client.components.get("train_model", version="1").command.startswith("python train.py")

    # Sending the same definition again, with a new description, is an update.
    same = load_component(source=write_component(tmp_path))
    same.description = "Better described"
    assert ml_client.components.create_or_update(same).version == "1"
    assert ml_client.components.get("train_model", version="1").description == "Better described"


@pytest.mark.parametrize("name", ["Prep_Data", "prep-data", "1prep", "prep data"])
def test_invalid_names_are_refused(ml_client, tmp_path, name):
    component = python_component(tmp_path, name=name)
    with pytest.raises(ValidationException, match="lower letter"):
        ml_client.components.create_or_update(component)
    # Without the SDK's check, the service refuses the name too.
    with pytest.raises(HttpResponseError):
        ml_client.components.create_or_update(component, skip_validation=True)

    loaded = load_component(source=write_component(tmp_path))
    loaded.name = name
    with pytest.raises(ValidationException):
        ml_client.components.create_or_update(loaded)
    assert list(ml_client.components.list()) == []


def test_archive_and_restore(ml_client, tmp_path):
    ml_client.components.create_or_update(load_component(source=write_component(tmp_path)))
    ml_client.components.create_or_update(load_component(source=write_component(tmp_path, version="2")))
    ml_client.components.archive("train_model", version="2")
    assert [c.version for c in ml_client.components.list("train_model")] == ["1"]
    assert ml_client.components.get("train_model").version == "1"
    assert ml_client.components.get("train_model", version="2").version == "2"
    ml_client.components.restore("train_model", version="2")
    assert ml_client.components.get("train_model").version == "2"

    ml_client.components.archive("train_model")
    assert list(ml_client.components.list()) == []
    archived = ml_client.components.list(list_view_type=ListViewType.ARCHIVED_ONLY)
    assert [c.name for c in archived] == ["train_model"]


def test_missing_components_are_not_found(ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.components.get("nothing", version="1")
    with pytest.raises(ResourceNotFoundError):
        ml_client.components.get("nothing")


def test_a_dsl_pipeline_registers_as_a_pipeline_component(ml_client, tmp_path):
    step = load_component(source=write_component(tmp_path))

    @dsl.pipeline(description="train once")
    def training_pipeline():
        step(training_data=Input(type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/data/"))

    registered = ml_client.components.create_or_update(training_pipeline)
    assert registered.type == "pipeline" and registered.name == "training_pipeline"
    assert ml_client.components.get("training_pipeline", version=registered.version).type == "pipeline"


def test_inline_environment_becomes_an_environment_asset(ml_client, tmp_path):
    from azure.ai.ml.entities import Environment

    component = python_component(tmp_path, name="inline_env")
    component.environment = Environment(image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest")
    registered = ml_client.components.create_or_update(component)
    assert "/environments/" in registered.environment
    assert ml_client.components.get("inline_env").environment == registered.environment


def test_a_registry_environment_is_checked_and_stored_as_the_version_it_names(ml_client, tmp_path):
    component = python_component(tmp_path, name="registry_env")
    component.environment = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    registered = ml_client.components.create_or_update(component)
    assert registered.environment.startswith("azureml://registries/azureml/environments/sklearn-1.5/versions/")
    missing = python_component(tmp_path, name="missing_registry_env")
    missing.environment = "azureml://registries/azureml/environments/no-such-environment/labels/latest"
    with pytest.raises(ResourceNotFoundError):
        ml_client.components.create_or_update(missing)
    with pytest.raises(ResourceNotFoundError):
        ml_client.components.get("missing_registry_env")

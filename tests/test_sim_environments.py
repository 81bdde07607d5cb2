"""``ml_client.environments`` in the simulated workspace, as a learner uses it."""
from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml.entities import BuildContext, Environment
from azure.ai.ml.exceptions import MlException, ValidationException
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from labkit.sim.core import fs
from labkit.sim.assets.environments import conda_packages, pip_packages, python_version, resolve_environment

IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
CONDA = """\
name: sklearn-env
channels:
  - conda-forge
dependencies:
  - python=3.10
  - pip
  - scikit-learn=1.5.1
  - pandas
  - pip:
      - mlflow
      - azureml-mlflow
"""


@pytest.fixture
def conda_file(tmp_path) -> Path:
    path = tmp_path / "conda.yml"
    path.write_text(CONDA)
    return path


def make_env(ml_client, conda_file, name="sklearn-env", **kwargs):
    settings = dict(image=IMAGE, conda_file=str(conda_file))
    settings.update(kwargs)
    return ml_client.environments.create_or_update(Environment(name=name, **settings))


def test_image_and_conda_file_environment(ml_client, conda_file):
    env = make_env(ml_client, conda_file, description="scikit-learn training")
    assert isinstance(env, Environment)
    assert (env.name, env.version) == ("sklearn-env", "1")
    assert env.image == IMAGE
    assert env.description == "scikit-learn training"
    assert env.conda_file["dependencies"][0] == "python=3.10"
    assert env.id.endswith("/workspaces/mlw-dp100-labs/environments/sklearn-env/versions/1")
    assert env.creation_context.created_by


def test_conda_dependencies_are_recorded_for_the_runner(ml_client, conda_file):
    make_env(ml_client, conda_file)
    env = ml_client.environments.get("sklearn-env", label="latest")
    assert conda_packages(env) == ["python=3.10", "scikit-learn=1.5.1", "pandas"]
    assert pip_packages(env) == ["mlflow", "azureml-mlflow"]
    assert python_version(env) == "3.10"


def test_client_level_create_or_update_reaches_the_simulation(ml_client, conda_file):
    env = ml_client.create_or_update(Environment(name="client-env", image=IMAGE, conda_file=str(conda_file)))
    assert env.version == "1"
    assert ml_client.environments.get("client-env", version="1").image == IMAGE


def test_same_definition_without_version_keeps_the_version(ml_client, conda_file):
    assert make_env(ml_client, conda_file).version == "1"
    again = make_env(ml_client, conda_file, tags={"stage": "dev"})
    assert again.version == "1"
    assert again.tags == {"stage": "dev"}
    assert [e.version for e in ml_client.environments.list(name="sklearn-env")] == ["1"]


def test_changed_definition_without_version_becomes_next_version(ml_client, conda_file, tmp_path):
    make_env(ml_client, conda_file)
    other = tmp_path / "other.yml"
    other.write_text(CONDA.replace("pandas", "numpy"))
    assert make_env(ml_client, other).version == "2"
    assert make_env(ml_client, conda_file, image="python:3.11-slim").version == "3"
    latest = ml_client.environments.get("sklearn-env", label="latest")
    assert (latest.version, latest.image) == ("3", "python:3.11-slim")


def test_explicit_versions(ml_client, conda_file):
    assert make_env(ml_client, conda_file, version="1.0.0").version == "1.0.0"
    assert make_env(ml_client, conda_file, version="7", image="python:3.11-slim").version == "7"
    assert ml_client.environments.get("sklearn-env", version="1.0.0").image == IMAGE
    # Auto-versioning continues after the largest integer version.
    assert make_env(ml_client, conda_file, image="python:3.12-slim").version == "8"


def test_a_version_is_immutable_but_tags_and_description_update(ml_client, conda_file):
    make_env(ml_client, conda_file, version="1")
    updated = make_env(ml_client, conda_file, version="1", tags={"owner": "learner"}, description="now described")
    assert updated.tags == {"owner": "learner"}
    assert updated.description == "now described"
    with pytest.raises(ResourceExistsError, match="sklearn-env:1"):
        make_env(ml_client, conda_file, version="1", image="python:3.11-slim")
    assert ml_client.environments.get("sklearn-env", version="1").image == IMAGE


def test_get_requires_version_or_label(ml_client, conda_file):
    make_env(ml_client, conda_file)
    with pytest.raises(ValidationException):
        ml_client.environments.get("sklearn-env")
    with pytest.raises(ValidationException):
        ml_client.environments.get("sklearn-env", version="1", label="latest")


def test_get_missing_environment_is_not_found(ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.environments.get("no-such-env", version="1")
    with pytest.raises(ResourceNotFoundError):
        ml_client.environments.get("no-such-env", label="latest")


def test_environment_needs_an_image_or_a_build_context(ml_client):
    # The SDK validates this itself and reports it as a formatted MlException.
    with pytest.raises(MlException, match="Docker image or Dockerfile"):
        ml_client.environments.create_or_update(Environment(name="empty-env"))


def test_list_gives_one_entry_per_name_and_versions_of_a_name(ml_client, conda_file):
    make_env(ml_client, conda_file)
    make_env(ml_client, conda_file, image="python:3.11-slim")
    make_env(ml_client, conda_file, name="other-env")
    names = [e.name for e in ml_client.environments.list()]
    assert names.count("sklearn-env") == 1
    assert "other-env" in names
    containers = {e.name: e for e in ml_client.environments.list()}
    assert containers["sklearn-env"].latest_version == "2"
    assert [e.version for e in ml_client.environments.list(name="sklearn-env")] == ["1", "2"]


def test_archive_hides_from_list_and_latest_restore_brings_back(ml_client, conda_file):
    make_env(ml_client, conda_file)
    make_env(ml_client, conda_file, image="python:3.11-slim")
    ml_client.environments.archive("sklearn-env", version="2")
    assert ml_client.environments.get("sklearn-env", label="latest").version == "1"
    assert [e.version for e in ml_client.environments.list(name="sklearn-env")] == ["1"]
    # Archived versions stay readable by number.
    assert ml_client.environments.get("sklearn-env", version="2").image == "python:3.11-slim"

    ml_client.environments.archive("sklearn-env")
    assert "sklearn-env" not in [e.name for e in ml_client.environments.list()]
    with pytest.raises(ResourceNotFoundError):
        ml_client.environments.get("sklearn-env", label="latest")

    ml_client.environments.restore("sklearn-env")
    assert ml_client.environments.get("sklearn-env", label="latest").version == "2"


def test_curated_environment_get_and_latest(ml_client):
    env = ml_client.environments.get("AzureML-sklearn-1.5", label="latest")
    assert env.name == "AzureML-sklearn-1.5"
    assert env.image.startswith("mcr.microsoft.com/azureml/curated/sklearn-1.5:")
    assert env.version and env.version.isdigit()
    assert ml_client.environments.get("AzureML-sklearn-1.5", version=env.version).image == env.image
    assert "scikit-learn~=1.5.0" in pip_packages(env)
    assert python_version(env) == "3.10"


def test_a_curated_environment_is_found_by_a_version_azure_has(ml_client):
    # The official environments lab pins version 44.
    env = ml_client.environments.get("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", version=44)
    assert (env.name, env.version) == ("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "44")
    assert env.tags["Scikit-learn"] == "1.0"
    older = ml_client.environments.get("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", version="1")
    assert older.image.endswith(":1")
    with pytest.raises(ResourceNotFoundError) as missing:
        ml_client.environments.get("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", version="100000")
    assert missing.value.status_code == 404


def test_the_curated_automl_environment(ml_client):
    assert "AzureML-ai-ml-automl" in [e.name for e in ml_client.environments.list()]
    env = ml_client.environments.get("AzureML-ai-ml-automl", label="latest")
    assert env.image.startswith("mcr.microsoft.com/azureml/curated/ai-ml-automl:")
    assert python_version(env) == "3.10"
    assert any(package.startswith("azureml-train-automl") for package in pip_packages(env))


def test_curated_environments_are_listed(ml_client, conda_file):
    make_env(ml_client, conda_file)
    names = [e.name for e in ml_client.environments.list()]
    assert "AzureML-sklearn-1.5" in names
    assert "AzureML-lightgbm-3.3" in names
    assert "sklearn-env" in names
    versions = list(ml_client.environments.list(name="AzureML-sklearn-1.0-ubuntu20.04-py38-cpu"))
    assert len(versions) == 1


def test_curated_names_are_reserved_and_read_only(ml_client):
    with pytest.raises(HttpResponseError, match="AzureML-") as raised:
        ml_client.environments.create_or_update(Environment(name="AzureML-sklearn-1.5", image=IMAGE))
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError, match="reserved"):
        ml_client.environments.create_or_update(Environment(name="AzureML-my-own", image=IMAGE))
    with pytest.raises(HttpResponseError):
        ml_client.environments.archive("AzureML-sklearn-1.5")


def test_references_resolve_as_jobs_write_them(ml_client, conda_file):
    make_env(ml_client, conda_file)
    make_env(ml_client, conda_file, image="python:3.11-slim")
    assert resolve_environment(ml_client, "azureml:AzureML-sklearn-1.5@latest").name == "AzureML-sklearn-1.5"
    assert resolve_environment(ml_client, "AzureML-lightgbm-3.3@latest").image.startswith(
        "mcr.microsoft.com/azureml/curated/lightgbm-3.3:")
    assert resolve_environment(ml_client, "azureml:sklearn-env@latest").version == "2"
    assert resolve_environment(ml_client, "azureml:sklearn-env:1").image == IMAGE
    assert resolve_environment(ml_client, "sklearn-env:2").version == "2"
    env = ml_client.environments.get("sklearn-env", version="1")
    assert resolve_environment(ml_client, env.id).version == "1"
    with pytest.raises(ResourceNotFoundError):
        resolve_environment(ml_client, "azureml:missing-env@latest")


def test_build_context_is_uploaded_to_the_default_datastore(ml_client, tmp_path):
    context = tmp_path / "docker-context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM python:3.10-slim\nRUN pip install scikit-learn\n")
    (context / "requirements.txt").write_text("scikit-learn\n")
    env = ml_client.environments.create_or_update(
        Environment(name="docker-env", build=BuildContext(path=str(context)), description="built"))
    assert env.version == "1"
    assert env.image is None
    assert env.build.path.startswith("azureml://subscriptions/")
    assert "/datastores/workspaceblobstore/paths/LocalUpload/" in env.build.path
    uploaded = Path(fs.local_path(env.build.path))
    assert (uploaded / "Dockerfile").read_text().startswith("FROM python:3.10-slim")
    assert (uploaded / "requirements.txt").is_file()

    # The same context again is the same version; a changed context is a new one.
    again = ml_client.environments.create_or_update(
        Environment(name="docker-env", build=BuildContext(path=str(context))))
    assert again.version == "1"
    (context / "requirements.txt").write_text("scikit-learn\nlightgbm\n")
    changed = ml_client.environments.create_or_update(
        Environment(name="docker-env", build=BuildContext(path=str(context))))
    assert changed.version == "2"
    assert changed.build.path != env.build.path


def test_missing_build_context_folder_is_refused(ml_client, tmp_path):
    with pytest.raises(ValidationException, match="not a folder"):
        ml_client.environments.create_or_update(
            Environment(name="docker-env", build=BuildContext(path=str(tmp_path / "missing"))))


def test_anonymous_environment_is_accepted(ml_client):
    env = ml_client.environments.create_or_update(
        Environment(image=IMAGE, conda_file={"dependencies": ["python=3.10", {"pip": ["pandas"]}]}))
    assert env.name == "CliV2AnonymousEnvironment"
    assert len(env.version) == 64
    assert pip_packages(env) == ["pandas"]

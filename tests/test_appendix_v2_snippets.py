"""The SDK v2 halves of appendix A1's v1/v2 pairs (chapters/07-appendices/snippets/*.py) run
with the installed SDK: the ones that call a client against a fresh simulated workspace, the
others by building their entities and serializing them the way a submission would, so a
renamed class, a wrong keyword or a rule the SDK checks fails here before a reader meets it.

Every snippet runs in a folder laid out as the page describes it (config.json, ./src,
./data, ./env, ./model), with ``ml_client`` given as the page's first pair makes it.
"""
from __future__ import annotations

import json
import os
import re
import runpy
import textwrap
from pathlib import Path

import pytest

from helpers import write_files

REPO = Path(__file__).resolve().parent.parent
SNIPPETS = REPO / "chapters" / "07-appendices" / "snippets"
PAGE = REPO / "chapters" / "07-appendices" / "sdk-v1-to-v2.md"

# Snippets that need others to have run first in the same workspace (the service would refuse
# a job on a compute target that does not exist).
NEEDS = {"command_job": ["compute"]}

TRAIN_SCRIPT = textwrap.dedent("""
    import argparse
    import mlflow
    import pandas as pd

    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--alpha", type=float)
    args = parser.parse_args()
    rows = pd.read_csv(args.data)
    with mlflow.start_run():
        mlflow.log_param("alpha", args.alpha)
        mlflow.log_metric("rows", len(rows))
    print("trained on", len(rows), "rows")
""")
MLTABLE = textwrap.dedent("""
    paths:
      - file: ./diabetes.csv
    transformations:
      - read_delimited:
          delimiter: ","
          header: all_files_same_headers
""")
CONDA = textwrap.dedent("""
    name: diabetes-train
    channels: [conda-forge]
    dependencies:
      - python=3.11
      - pip
      - pip: [scikit-learn, mlflow, azureml-mlflow, pandas]
""")


def snippet_names() -> list[str]:
    return sorted(path.stem for path in SNIPPETS.glob("*.py"))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The working folder the snippets assume, made current."""
    sample = "\n".join((REPO / "data" / "diabetes.csv").read_text().splitlines()[:41]) + "\n"
    folder = write_files(tmp_path / "project", {
        "src/train.py": TRAIN_SCRIPT,
        "src/score.py": "def init():\n    pass\n\ndef run(raw):\n    return []\n",
        "data/raw/diabetes.csv": sample,
        "data/table/diabetes.csv": sample,
        "data/table/MLTable": MLTABLE,
        "env/conda.yml": CONDA,
        "model/model.pkl": b"not a real pickle: a custom model is only files",
        "config.json": json.dumps({
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "resource_group": "rg-dp100-labs",
            "workspace_name": "ws-appendix",
        }),
    })
    monkeypatch.chdir(folder)
    return folder


def run_snippet(name: str, namespace: dict) -> dict:
    for before in NEEDS.get(name, []):
        namespace = run_snippet(before, namespace)
    return runpy.run_path(str(SNIPPETS / f"{name}.py"), init_globals=namespace)


@pytest.fixture
def workspace_client(project, ml_client):
    """The client the first pair makes (from config.json), on the simulated workspace."""
    return run_snippet("workspace", {})["ml_client"]


# --- the page and its snippets agree -------------------------------------------------------

def test_every_snippet_is_on_the_page():
    page = PAGE.read_text(encoding="utf-8")
    included = set(re.findall(r"```\{literalinclude\} snippets/(\w+)\.py", page))
    assert included == set(snippet_names())


# --- snippets that call a client -----------------------------------------------------------

def test_workspace_from_config(project, ml_client):
    namespace = run_snippet("workspace", {})
    assert namespace["workspace"].name == "ws-appendix"
    assert namespace["ml_client"].workspace_name == "ws-appendix"


def test_compute_cluster(workspace_client):
    cluster = run_snippet("compute", {"ml_client": workspace_client})["cluster"]
    assert (cluster.min_instances, cluster.max_instances) == (0, 4)
    assert workspace_client.compute.get("cpu-cluster").idle_time_before_scale_down == 120


def test_environment(workspace_client):
    env = run_snippet("environment", {"ml_client": workspace_client})["env"]
    assert env.version == "1"
    assert workspace_client.environments.get("diabetes-train", version="1").conda_file


def test_data_assets(workspace_client):
    namespace = run_snippet("data_assets", {"ml_client": workspace_client})
    assert namespace["files"].type == "uri_folder"
    assert namespace["table"].type == "mltable"
    assert namespace["latest"].version == namespace["table"].version


def test_command_job(workspace_client):
    namespace = run_snippet("command_job", {"ml_client": workspace_client})
    job = workspace_client.jobs.get(namespace["returned"].name)
    assert job.status == "Completed"
    assert job.experiment_name == "diabetes-training"


def test_model_register(workspace_client):
    model = run_snippet("model_register", {"ml_client": workspace_client})["model"]
    assert (model.name, model.version, model.type) == ("diabetes-classifier", "1", "custom_model")


# --- snippets that build entities ----------------------------------------------------------

def test_mlflow_logging(workspace_client):
    import mlflow

    # As in a job or on a compute instance, MLflow already points at the (simulated) workspace.
    assert mlflow.get_tracking_uri() == workspace_client.workspaces.get().mlflow_tracking_uri
    run_snippet("mlflow_logging", {})
    run = mlflow.last_active_run()
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics["accuracy"] == 0.91
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [point.value for point in history] == [0.9, 0.6, 0.4]


def test_sweep_jobs(project):
    from azure.ai.ml.entities import Sweep
    from azure.ai.ml.sweep import SweepJob

    namespace = run_snippet("sweep_job", {})
    random_sweep, bayesian_sweep = namespace["random_sweep"], namespace["bayesian_sweep"]
    # `.sweep(...)` gives a Sweep node; jobs.create_or_update submits it as a SweepJob.
    assert isinstance(random_sweep, Sweep) and isinstance(bayesian_sweep, Sweep)
    assert random_sweep.early_termination is not None
    assert bayesian_sweep.early_termination is None
    assert {type(space).__name__ for space in bayesian_sweep.search_space.values()} <= {
        "Choice", "Uniform", "QUniform"}
    for sweep in (random_sweep, bayesian_sweep):
        job = sweep._to_job()
        assert isinstance(job, SweepJob)
        job._to_rest_object()  # the SDK's own checks, as on submission


def test_automl_job(project):
    from azure.ai.ml.automl import ClassificationJob

    job = run_snippet("automl_job", {})["job"]
    assert isinstance(job, ClassificationJob)
    assert job.limits.max_trials == 30 and job.limits.enable_early_termination
    job._to_rest_object()


def test_pipeline_job(project):
    from azure.ai.ml.entities import PipelineJob

    pipeline_job = run_snippet("pipeline_job", {})["pipeline_job"]
    assert isinstance(pipeline_job, PipelineJob)
    assert list(pipeline_job.jobs) == ["cleaned", "trained"]
    assert pipeline_job.settings.force_rerun is True
    pipeline_job._to_rest_object()


def test_online_deployment(project):
    namespace = run_snippet("online_deployment", {})
    endpoint, deployment = namespace["endpoint"], namespace["deployment"]
    assert endpoint.auth_mode == "key"
    assert deployment.code_configuration.scoring_script == "score.py"
    endpoint._to_rest_online_endpoint(location="westeurope")
    deployment._to_rest_object(location="westeurope")


def test_model_monitor(project):
    monitor = run_snippet("model_monitor", {})["monitor"]
    assert list(monitor.create_monitor.monitoring_signals) == ["input-drift"]
    monitor._to_rest_object()


# --- the check itself: a snippet that breaks an SDK rule fails -----------------------------

def test_a_broken_snippet_fails(tmp_path, project):
    broken = tmp_path / "broken.py"
    broken.write_text("from azure.ai.ml.sweep import IntegerParameterSampling\n")
    with pytest.raises(ImportError):
        runpy.run_path(str(broken))


@pytest.mark.parametrize("name", snippet_names())
def test_every_snippet_has_a_test(name):
    assert f'"{name}"' in Path(__file__).read_text(encoding="utf-8"), name

"""Batch endpoints of the simulated workspace, as a learner (and the service) would see them.

Jobs are slow to start on a busy machine, so each test starts its jobs together and then
waits for all of them; no test depends on how long anything takes.
"""

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from azure.ai.ml import Input, Output, command, dsl
from azure.ai.ml.constants import AssetTypes, BatchDeploymentOutputAction
from azure.ai.ml.entities import (
    AmlCompute,
    BatchEndpoint,
    BatchJob,
    BatchRetrySettings,
    CodeConfiguration,
    Environment,
    Model,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    PipelineComponentBatchDeployment,
    PipelineJob,
)
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from helpers import sklearn_pins, wait_for_jobs

ENVIRONMENT = Environment(name="batch-env", image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")

SCORE_PY = textwrap.dedent("""
    import os
    from pathlib import Path

    import pandas as pd

    factor = None


    def init():
        global factor
        # A model registered from a folder sits in a folder of that name, as on Azure.
        factor = float((Path(os.environ["AZUREML_MODEL_DIR"]) / "model" / "factor.txt").read_text())
        print("init called in process", os.getpid())


    def run(mini_batch):
        print(f"run({len(mini_batch)} files)")
        flaky = os.environ.get("FLAKY_MARKS")
        if flaky:  # fail the first try of every mini batch
            mark = Path(flaky) / Path(mini_batch[0]).name
            if not mark.exists():
                mark.touch()
                raise RuntimeError("a passing failure")
        rows = []
        for path in mini_batch:
            if os.environ.get("FAIL_ON") and os.environ["FAIL_ON"] in Path(path).name:
                raise ValueError(f"cannot score {path}")
            data = pd.read_csv(path)
            rows.append([Path(path).name, float(data["x"].sum() * factor)])
        return pd.DataFrame(rows, columns=["file", "score"])
""")


def wait(ml_client, names):
    """``{name: status}`` once the jobs named have ended."""
    return {name: job.status for name, job in wait_for_jobs(ml_client, names, timeout=600, interval=0.5).items()}


def scoring_child(ml_client, name):
    [child] = list(ml_client.jobs.list(parent_job_name=name))
    return child


def predictions(ml_client, job_name, tmp_path, file_name="predictions.csv"):
    target = tmp_path / f"download-{job_name}"
    ml_client.jobs.download(job_name, output_name="score", download_path=target)
    path = target / "named-outputs" / "score" / file_name  # as Microsoft's batch pages read it
    return path.read_text().splitlines() if path.exists() else None


@pytest.fixture
def workspace(ml_client, tmp_path):
    """A cluster, a custom model with its scoring script, a folder of CSV files, an endpoint."""
    ml_client.compute.begin_create_or_update(AmlCompute(name="batch-cluster", size="Standard_DS3_v2",
                                                        max_instances=8)).result()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "factor.txt").write_text("10")
    model = ml_client.models.create_or_update(Model(name="summer", path=tmp_path / "model",
                                                    type=AssetTypes.CUSTOM_MODEL))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCORE_PY)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(5):
        pd.DataFrame({"x": [i, 1]}).to_csv(data / f"part-{i}.csv", index=False)
    (tmp_path / "flaky").mkdir()
    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="summer-batch")).result()
    return {"model": model, "code": tmp_path / "code", "data": data, "flaky": tmp_path / "flaky"}


def deployment(workspace, name, **settings):
    environment_variables = settings.pop("environment_variables", None)
    return ModelBatchDeployment(
        name=name, endpoint_name="summer-batch", model=workspace["model"], environment=ENVIRONMENT,
        code_configuration=CodeConfiguration(code=str(workspace["code"]), scoring_script="score.py"),
        compute="batch-cluster",
        settings=ModelBatchDeploymentSettings(mini_batch_size=2, environment_variables=environment_variables,
                                              **settings))


def test_model_deployments_score_folders_with_thresholds_retries_and_the_default_deployment(
        ml_client, workspace, tmp_path):
    batch_deployments = ml_client.batch_deployments
    first = batch_deployments.begin_create_or_update(deployment(
        workspace, "scorer", max_concurrency_per_instance=2, instance_count=1,
        retry_settings=BatchRetrySettings(max_retries=2, timeout=60))).result()
    assert first.provisioning_state == "Succeeded" and first.compute.endswith("/computes/batch-cluster")
    # The first deployment of an endpoint becomes its default; the service fills in the settings.
    assert ml_client.batch_endpoints.get("summer-batch").defaults.deployment_name == "scorer"
    scorer = batch_deployments.get("scorer", endpoint_name="summer-batch")
    assert (scorer.mini_batch_size, scorer.error_threshold, scorer.output_file_name, scorer.instance_count) == (
        2, -1, "predictions.csv", 1)
    batch_deployments.begin_create_or_update(deployment(
        workspace, "summary", output_action=BatchDeploymentOutputAction.SUMMARY_ONLY)).result()
    batch_deployments.begin_create_or_update(deployment(
        workspace, "tolerant", error_threshold=1, retry_settings=BatchRetrySettings(max_retries=1, timeout=60),
        environment_variables={"FAIL_ON": "part-4"})).result()
    batch_deployments.begin_create_or_update(deployment(
        workspace, "strict", error_threshold=0, retry_settings=BatchRetrySettings(max_retries=1, timeout=60),
        environment_variables={"FAIL_ON": "part-4"})).result()
    batch_deployments.begin_create_or_update(deployment(
        workspace, "flaky", output_file_name="scores.csv", retry_settings=BatchRetrySettings(max_retries=3, timeout=60),
        environment_variables={"FLAKY_MARKS": str(workspace["flaky"])})).result()
    assert {d.name for d in batch_deployments.list("summer-batch")} == {"scorer", "summary", "tolerant", "strict",
                                                                        "flaky"}

    data = Input(type=AssetTypes.URI_FOLDER, path=str(workspace["data"]))
    jobs = {"scorer": ml_client.batch_endpoints.invoke(endpoint_name="summer-batch", input=data)}
    for name in ("summary", "tolerant", "strict", "flaky"):
        jobs[name] = ml_client.batch_endpoints.invoke(endpoint_name="summer-batch", deployment_name=name, input=data)
    assert all(isinstance(job, BatchJob) for job in jobs.values())
    statuses = wait(ml_client, [job.name for job in jobs.values()])

    # The default deployment scored the five files in three mini batches of at most two files.
    scored = ml_client.jobs.get(jobs["scorer"].name)
    assert statuses[scored.name] == "Completed" and scored.type == "pipeline"
    assert scored.experiment_name == "summer-batch"
    child = scoring_child(ml_client, scored.name)
    assert child.display_name == "batchscoring" and child.status == "Completed"
    rows = predictions(ml_client, scored.name, tmp_path)
    assert sorted(rows) == sorted(f"part-{i}.csv {float((i + 1) * 10)}" for i in range(5))
    # A batch job is a pipeline job to jobs.download: its score output under named-outputs/, its
    # logs under artifacts/ (how-to-use-batch-model-deployments reads named-outputs/score/).
    target = tmp_path / "download-all"
    ml_client.jobs.download(scored.name, download_path=target, all=True)
    assert (target / "named-outputs" / "score" / "predictions.csv").read_text().splitlines() == rows
    # The scoring step itself is an ordinary job: its output sits under named-outputs/.
    ml_client.jobs.download(child.name, output_name="score", download_path=tmp_path / "step")
    assert (tmp_path / "step" / "named-outputs" / "score" / "predictions.csv").read_text().splitlines() == rows
    logs = tmp_path / "logs"
    ml_client.jobs.download(child.name, download_path=logs)
    overview = (logs / "artifacts" / "logs" / "job_progress_overview.txt").read_text()
    assert "3 mini batches created" in overview and "3 of 3 mini batches succeeded" in overview
    stdout = list((logs / "artifacts" / "logs" / "user" / "stdout").rglob("*.stdout.txt"))
    assert stdout and sum(p.read_text().count("init called") for p in stdout) == len(stdout)

    # summary_only: the job completes and writes no predictions file.
    assert statuses[jobs["summary"].name] == "Completed"
    assert predictions(ml_client, jobs["summary"].name, tmp_path) is None

    # The mini batch [part-4.csv] fails on every try: one failed file is within a threshold of 1 ...
    assert statuses[jobs["tolerant"].name] == "Completed"
    tolerant_rows = predictions(ml_client, jobs["tolerant"].name, tmp_path)
    assert len(tolerant_rows) == 4 and not any(r.startswith("part-4") for r in tolerant_rows)
    # ... and over a threshold of 0: that job fails, and says why.
    strict = ml_client.jobs.get(jobs["strict"].name)
    assert statuses[strict.name] == "Failed"
    with pytest.raises(Exception, match="error threshold"):
        ml_client.jobs.stream(strict.name)

    # Each mini batch failed once and succeeded when tried again.
    assert statuses[jobs["flaky"].name] == "Completed"
    assert len(predictions(ml_client, jobs["flaky"].name, tmp_path, "scores.csv")) == 5
    flaky_log = tmp_path / "flaky-logs"
    ml_client.jobs.download(scoring_child(ml_client, jobs["flaky"].name).name, download_path=flaky_log)
    assert (flaky_log / "artifacts" / "logs" / "user" / "error.txt").read_text().count("a passing failure") == 3

    # The jobs are listed by the endpoint, by each deployment and among the workspace's jobs.
    assert {j.name for j in ml_client.batch_endpoints.list_jobs("summer-batch")} == {j.name for j in jobs.values()}
    assert [j.name for j in batch_deployments.list_jobs("summer-batch", name="strict")] == [jobs["strict"].name]
    assert {j.name for j in jobs.values()} <= {j.name for j in ml_client.jobs.list()}

    # A new default deployment takes the endpoint's invocations; a deployment it lacks cannot be the default.
    endpoint = ml_client.batch_endpoints.get("summer-batch")
    endpoint.defaults.deployment_name = "summary"
    ml_client.batch_endpoints.begin_create_or_update(endpoint).result()
    assert ml_client.batch_endpoints.get("summer-batch").defaults.deployment_name == "summary"
    endpoint.defaults.deployment_name = "nonexistent"
    with pytest.raises(HttpResponseError):
        ml_client.batch_endpoints.begin_create_or_update(endpoint)


def test_an_mlflow_model_without_a_script_and_a_pipeline_component_deployment(ml_client, workspace, tmp_path):
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    train = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    regression = LinearRegression().fit(train, 2 * train["x"] + 1)
    mlflow.sklearn.save_model(regression, tmp_path / "mlflow-model",
                              signature=infer_signature(train, regression.predict(train)),
                              pip_requirements=sklearn_pins())
    # As if saved by an older scikit-learn: the job's log says so before it scores.
    mlmodel = tmp_path / "mlflow-model" / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace(f"sklearn_version: {sklearn.__version__}", "sklearn_version: 1.0.2"))
    model = ml_client.models.create_or_update(Model(name="doubler", path=tmp_path / "mlflow-model",
                                                    type=AssetTypes.MLFLOW_MODEL))
    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="doubler-batch")).result()
    ml_client.batch_deployments.begin_create_or_update(ModelBatchDeployment(
        name="no-code", endpoint_name="doubler-batch", model=model, compute="batch-cluster",
        settings=ModelBatchDeploymentSettings(mini_batch_size=2))).result()

    # A pipeline component: one command step that counts the lines of the input file.
    count = command(command="wc -l < ${{inputs.data}} > ${{outputs.counted}}/count.txt",
                    environment="azureml:AzureML-sklearn-1.5@latest",
                    inputs={"data": Input(type=AssetTypes.URI_FILE)}, outputs={"counted": Output(type="uri_folder")})

    @dsl.pipeline(description="counts lines")
    def counting(data: Input(type=AssetTypes.URI_FILE)):
        step = count(data=data)
        return {"counted": step.outputs.counted}

    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="counting-batch")).result()
    created = ml_client.batch_deployments.begin_create_or_update(PipelineComponentBatchDeployment(
        name="counter", endpoint_name="counting-batch", component=counting,
        settings={"default_compute": "batch-cluster", "continue_on_step_failure": False})).result()
    assert isinstance(created, PipelineComponentBatchDeployment) and created.component.endswith("/versions/1")

    mlflow_job = ml_client.batch_endpoints.invoke(
        endpoint_name="doubler-batch", input=Input(type=AssetTypes.URI_FOLDER, path=str(workspace["data"])))
    pipeline_job = ml_client.batch_endpoints.invoke(
        endpoint_name="counting-batch",
        inputs={"data": Input(type=AssetTypes.URI_FILE, path=str(workspace["data"] / "part-0.csv"))})
    statuses = wait(ml_client, [mlflow_job.name, pipeline_job.name])
    assert statuses == {mlflow_job.name: "Completed", pipeline_job.name: "Completed"}

    # One row per input row: its index in its file, the model's prediction, the file's name.
    # The files hold integers; the signature says double: read with the signature's types.
    lines = predictions(ml_client, mlflow_job.name, tmp_path)
    table = pd.DataFrame([line.split(",") for line in lines], columns=["row", "prediction", "file"])
    assert len(table) == 10 and set(table["file"]) == {f"part-{i}.csv" for i in range(5)}
    first_file = table[table["file"] == "part-3.csv"].sort_values("row")
    assert first_file["row"].tolist() == ["0", "1"]
    assert [round(float(p), 6) for p in first_file["prediction"]] == [7.0, 3.0]
    step_logs = tmp_path / "mlflow-step-logs"
    ml_client.jobs.download(scoring_child(ml_client, mlflow_job.name).name, download_path=step_logs)
    log = (step_logs / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "pins package versions" in log and f"scikit-learn 1.0.2 (installed here: {sklearn.__version__})" in log

    # The pipeline component ran as a pipeline job of its steps, listed by its endpoint.
    job = ml_client.jobs.get(pipeline_job.name)
    assert isinstance(job, PipelineJob) and job.experiment_name == "counting-batch"
    [step] = list(ml_client.jobs.list(parent_job_name=job.name))
    # A pipeline component's job is tagged a pipeline job: its outputs download as any pipeline's.
    ml_client.jobs.download(job.name, output_name="counted", download_path=tmp_path / "pipeline-counted")
    assert (tmp_path / "pipeline-counted" / "named-outputs" / "counted" / "count.txt").read_text().strip() == "3"
    ml_client.jobs.download(step.name, output_name="counted", download_path=tmp_path / "counted")
    assert (tmp_path / "counted" / "named-outputs" / "counted" / "count.txt").read_text().strip() == "3"
    assert [j.name for j in ml_client.batch_endpoints.list_jobs("counting-batch")] == [pipeline_job.name]


def test_refusals(ml_client, workspace, tmp_path):
    endpoints, deployments = ml_client.batch_endpoints, ml_client.batch_deployments
    with pytest.raises(ResourceNotFoundError):
        endpoints.get("nowhere")
    # Batch deployments run on an existing cluster: no compute, or a compute the workspace lacks, is refused.
    with pytest.raises(HttpResponseError, match="compute is required"):
        deployments.begin_create_or_update(ModelBatchDeployment(
            name="no-compute", endpoint_name="summer-batch", model=workspace["model"], environment=ENVIRONMENT,
            code_configuration=CodeConfiguration(code=str(workspace["code"]), scoring_script="score.py")))
    with pytest.raises(HttpResponseError, match="was not found"):
        deployments.begin_create_or_update(ModelBatchDeployment(
            name="lost", endpoint_name="summer-batch", model=workspace["model"], environment=ENVIRONMENT,
            code_configuration=CodeConfiguration(code=str(workspace["code"]), scoring_script="score.py"),
            compute="missing-cluster"))
    # Curated environments are not supported in batch deployments ("Deploy models for scoring in
    # batch endpoints"), by name or by registry URI.
    for curated in ("azureml:AzureML-sklearn-1.5@latest",
                    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"):
        with pytest.raises(HttpResponseError, match="curated environments are not supported") as refused:
            deployments.begin_create_or_update(ModelBatchDeployment(
                name="curated", endpoint_name="summer-batch", model=workspace["model"], environment=curated,
                code_configuration=CodeConfiguration(code=str(workspace["code"]), scoring_script="score.py"),
                compute="batch-cluster"))
        assert refused.value.status_code == 400
    # A model that is not an MLflow model needs a scoring script.
    with pytest.raises(HttpResponseError, match="no scoring script"):
        deployments.begin_create_or_update(ModelBatchDeployment(
            name="scriptless", endpoint_name="summer-batch", model=workspace["model"], compute="batch-cluster"))
    with pytest.raises(ResourceNotFoundError):
        deployments.begin_create_or_update(ModelBatchDeployment(
            name="orphan", endpoint_name="no-such-endpoint", model=workspace["model"], compute="batch-cluster"))
    data = Input(type=AssetTypes.URI_FOLDER, path=str(workspace["data"]))
    # An endpoint without deployments has no default deployment, and no deployment to name.
    with pytest.raises(HttpResponseError, match="no default deployment"):
        endpoints.invoke(endpoint_name="summer-batch", input=data)
    with pytest.raises(ValidationException, match="No deployment exists"):
        endpoints.invoke(endpoint_name="summer-batch", deployment_name="ghost", input=data)
    deployments.begin_create_or_update(deployment(workspace, "real")).result()
    with pytest.raises(ValidationException, match="ghost not found"):
        endpoints.invoke(endpoint_name="summer-batch", deployment_name="ghost", input=data)
    with pytest.raises(ValidationException):
        endpoints.invoke(endpoint_name="summer-batch", input=Input(type=AssetTypes.MLTABLE, path=str(tmp_path)))
    # Deleting the endpoint deletes its deployments.
    endpoints.begin_delete("summer-batch").result()
    with pytest.raises(ResourceNotFoundError):
        deployments.get("real", endpoint_name="summer-batch")
    assert [e.name for e in endpoints.list()] == []


HELLO_PIPELINE = textwrap.dedent("""
    $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
    name: hello_batch
    display_name: Hello Batch component
    version: 2
    type: pipeline
    jobs:
      main_job:
        type: command
        component:
          is_deterministic: false
          code: src
          environment: azureml:AzureML-sklearn-1.5@latest
          command: >-
            python hello.py
""")


def test_a_pipeline_component_from_yaml_registers_versions_and_is_deployed(ml_client, workspace, tmp_path):
    from azure.ai.ml import load_component

    (tmp_path / "hello" / "src").mkdir(parents=True)
    (tmp_path / "hello" / "src" / "hello.py").write_text('print("hello world!")\n')
    (tmp_path / "hello" / "hello.yml").write_text(HELLO_PIPELINE)
    hello_batch = load_component(source=str(tmp_path / "hello" / "hello.yml"))
    registered = ml_client.components.create_or_update(hello_batch)
    assert (registered.type, registered.name, registered.version) == ("pipeline", "hello_batch", "2")
    assert ml_client.components.get("hello_batch", version="2").jobs["main_job"].type == "command"
    assert ml_client.components.create_or_update(load_component(source=str(tmp_path / "hello" / "hello.yml"))
                                                 ).version == "2"  # the same definition again: unchanged
    changed = load_component(source=str(tmp_path / "hello" / "hello.yml"))
    changed.jobs["main_job"].component.command = "python hello.py --loud"
    with pytest.raises(HttpResponseError, match="cannot be changed") as refused:
        ml_client.components.create_or_update(changed)
    assert refused.value.status_code == 400

    # Deployed as the hello-batch example does: the loaded component, its registered version used.
    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="hello-batch")).result()
    deployment = ml_client.batch_deployments.begin_create_or_update(PipelineComponentBatchDeployment(
        name="hello-batch-dpl", endpoint_name="hello-batch", component=hello_batch,
        settings={"continue_on_step_failure": False, "default_compute": "batch-cluster"})).result()
    assert deployment.component.endswith("/components/hello_batch/versions/2")
    job = ml_client.batch_endpoints.invoke(endpoint_name="hello-batch")
    assert wait(ml_client, [job.name]) == {job.name: "Completed"}
    [step] = list(ml_client.jobs.list(parent_job_name=job.name))
    ml_client.jobs.download(step.name, download_path=tmp_path / "hello-logs")
    assert "hello world!" in (tmp_path / "hello-logs" / "artifacts" / "user_logs" / "std_log.txt").read_text()


def test_invoke_writes_where_its_outputs_say(ml_client, workspace, tmp_path):
    # how-to-access-data-batch-endpoints-jobs, "Configure the output location": a model
    # deployment's one output is `score`; a pipeline component deployment's are its own.
    from labkit.sim.core.fs import local_path

    ml_client.batch_deployments.begin_create_or_update(deployment(workspace, "scorer")).result()
    count = command(command="ls ${{inputs.data}} | wc -l > ${{outputs.counted}}/count.txt",
                    environment="azureml:AzureML-sklearn-1.5@latest",
                    inputs={"data": Input(type=AssetTypes.URI_FOLDER)}, outputs={"counted": Output(type="uri_folder")})

    @dsl.pipeline(description="counts files")
    def counting(data: Input(type=AssetTypes.URI_FOLDER)):
        return {"counted": count(data=data).outputs.counted}

    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="counting-batch")).result()
    ml_client.batch_deployments.begin_create_or_update(PipelineComponentBatchDeployment(
        name="counter", endpoint_name="counting-batch", component=counting,
        settings={"default_compute": "batch-cluster"})).result()
    folder = Input(type=AssetTypes.URI_FOLDER, path=str(workspace["data"]))

    scored = ml_client.batch_endpoints.invoke(endpoint_name="summer-batch", input=folder, outputs={
        "score": Output(type=AssetTypes.URI_FOLDER, path="azureml://datastores/workspaceblobstore/paths/scores/")})
    counted = ml_client.batch_endpoints.invoke(endpoint_name="counting-batch", inputs={"data": folder}, outputs={
        "counted": Output(type=AssetTypes.URI_FOLDER, path="azureml://datastores/workspaceblobstore/paths/counts/")})
    assert wait(ml_client, [scored.name, counted.name]) == {scored.name: "Completed", counted.name: "Completed"}

    on_datastore = Path(local_path(ml_client._sim_workspace.long_uri("workspaceblobstore", "scores/")))
    assert len((on_datastore / "predictions.csv").read_text().splitlines()) == 5
    on_datastore = Path(local_path(ml_client._sim_workspace.long_uri("workspaceblobstore", "counts/")))
    assert (on_datastore / "count.txt").read_text().strip() == "5"

    with pytest.raises(HttpResponseError) as refused:
        ml_client.batch_endpoints.invoke(endpoint_name="summer-batch", input=folder, outputs={
            "predictions": Output(type=AssetTypes.URI_FOLDER, path="azureml://datastores/workspaceblobstore/paths/p/")})
    assert refused.value.status_code == 400 and "'score'" in str(refused.value)

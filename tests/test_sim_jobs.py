"""Command jobs on the simulated workspace, submitted and followed as on Azure."""
from __future__ import annotations

import os
import signal
import textwrap
import time

import pytest
from azure.ai.ml import Input, Output, command, load_job
from azure.ai.ml.entities import AmlCompute, ComputeInstance, Data
from azure.ai.ml.exceptions import JobException, ValidationException
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from helpers import wait_until, workspace_tracking, write_files
from labkit.sim.jobs import job_state

ENV = "AzureML-sklearn-1.5@latest"


@pytest.fixture
def src(tmp_path):
    return write_files(tmp_path / "src", {
        "train.py": """
            import argparse, os
            import mlflow
            import pandas as pd

            parser = argparse.ArgumentParser()
            parser.add_argument("--data")
            parser.add_argument("--rate", type=float)
            parser.add_argument("--out")
            args = parser.parse_args()
            frame = pd.read_csv(args.data)
            with mlflow.start_run():
                mlflow.log_param("rate", args.rate)
                mlflow.log_metric("rows", len(frame))
            os.makedirs("outputs", exist_ok=True)
            with open("outputs/summary.txt", "w") as handle:
                handle.write(f"{len(frame)} rows")
            with open(os.path.join(args.out, "result.csv"), "w") as handle:
                handle.write("rows\\n%d\\n" % len(frame))
            print("input env", os.environ["AZURE_ML_INPUT_data"] == args.data)
            print("done training")
        """,
        "fail.py": "raise RuntimeError('the model exploded')\n",
        "sleep.py": "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n",
    })


@pytest.fixture
def data_asset(ml_client, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6\n")
    return ml_client.data.create_or_update(Data(name="rows", version="1", path=str(path), type="uri_file"))


def training_job(src, **overrides):
    spec = dict(code=str(src), command="python train.py --data ${{inputs.data}} --rate ${{inputs.rate}} "
                                       "--out ${{outputs.result}}",
                inputs={"data": Input(type="uri_file", path="azureml:rows:1"), "rate": 0.1},
                outputs={"result": Output(type="uri_folder")}, environment=ENV, experiment_name="jobs-test")
    spec.update(overrides)
    return command(**spec)


def test_a_command_job_runs_logs_to_mlflow_and_keeps_its_outputs(ml_client, src, data_asset, tmp_path, capsys):
    import mlflow

    submitted = ml_client.jobs.create_or_update(training_job(src))
    assert submitted.status in ("NotStarted", "Queued", "Running")
    ml_client.jobs.stream(submitted.name)
    streamed = capsys.readouterr().out
    assert f"RunId: {submitted.name}" in streamed and "Streaming user_logs/std_log.txt" in streamed
    assert "done training" in streamed and "input env True" in streamed
    assert "Execution Summary" in streamed
    job = ml_client.jobs.get(submitted.name)
    assert job.status == "Completed"
    assert job.studio_url.startswith("file://") and job.experiment_name == "jobs-test"

    with workspace_tracking(ml_client):
        run = mlflow.get_run(job.name)  # the job's MLflow run has the job's name as its id
        assert run.data.metrics["rows"] == 3 and run.data.params["rate"] == "0.1"
        assert run.info.status == "FINISHED"

    ml_client.jobs.download(job.name, download_path=tmp_path / "dl", all=True)
    assert (tmp_path / "dl" / "named-outputs" / "result" / "result.csv").read_text() == "rows\n3\n"
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "summary.txt").read_text() == "3 rows"
    assert "done training" in (tmp_path / "dl" / "artifacts" / "user_logs" / "std_log.txt").read_text()
    # The SDK's other cases: logs and artifacts only; one named output only; an output the job
    # lacks is skipped without an error (the SDK logs it at debug level).
    ml_client.jobs.download(job.name, download_path=tmp_path / "logs-only")
    assert [p.name for p in (tmp_path / "logs-only").iterdir()] == ["artifacts"]
    ml_client.jobs.download(job.name, download_path=tmp_path / "one", output_name="result")
    assert sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*")) == [
        "named-outputs", "named-outputs/result", "named-outputs/result/result.csv"]
    ml_client.jobs.download(job.name, download_path=tmp_path / "none", output_name="no_such_output")
    assert not (tmp_path / "none").exists()


def test_a_failing_script_ends_failed_and_stream_raises(ml_client, src, capsys):
    job = ml_client.jobs.create_or_update(command(code=str(src), command="python fail.py", environment=ENV))
    with pytest.raises(JobException, match="the model exploded"):
        ml_client.jobs.stream(job.name)
    assert "RuntimeError: the model exploded" in capsys.readouterr().out
    assert ml_client.jobs.get(job.name).status == "Failed"


def test_job_from_yaml(ml_client, src, data_asset, tmp_path, finished_job):
    spec = tmp_path / "job.yml"
    spec.write_text(textwrap.dedent(f"""
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        code: {src}
        command: python train.py --data ${{{{inputs.data}}}} --rate ${{{{inputs.rate}}}} --out ${{{{outputs.result}}}}
        inputs:
          data:
            type: uri_file
            path: azureml:rows@latest
          rate: 0.5
        outputs:
          result:
            type: uri_folder
        environment: azureml:{ENV}
        experiment_name: yaml-jobs
    """))
    job = ml_client.jobs.create_or_update(load_job(spec))
    assert finished_job(ml_client, job.name).status == "Completed"


def test_local_inputs_are_uploaded(ml_client, src, tmp_path, finished_job):
    local = tmp_path / "local.csv"
    local.write_text("a\n1\n2\n")
    job = ml_client.jobs.create_or_update(training_job(src, inputs={"data": Input(type="uri_file", path=str(local)),
                                                                    "rate": 1}))
    assert job.inputs["data"].path.startswith("azureml://")
    assert finished_job(ml_client, job.name).status == "Completed"


def test_cluster_max_instances_bounds_concurrency(ml_client, src, finished_job):
    ml_client.begin_create_or_update(AmlCompute(name="one-node", size="Standard_DS3_v2", max_instances=1)).result()
    first = ml_client.jobs.create_or_update(command(code=str(src), command="python sleep.py", environment=ENV,
                                                    compute="one-node"))
    second = ml_client.jobs.create_or_update(command(code=str(src), command="python sleep.py", environment=ENV,
                                                     compute="one-node"))
    wait_until(lambda: ml_client.jobs.get(first.name).status == "Running", timeout=120, interval=0.2)
    assert ml_client.jobs.get(first.name).status == "Running"
    # While the first holds the only node, the second waits (its worker may still be starting).
    wait_until(lambda: ml_client.jobs.get(second.name).status != "NotStarted", timeout=120, interval=0.2)
    for _ in range(10):
        assert ml_client.jobs.get(second.name).status == "Queued"
        assert ml_client.jobs.get(first.name).status == "Running"
        time.sleep(0.2)
    ml_client.jobs.begin_cancel(first.name).result()
    ml_client.jobs.begin_cancel(second.name).result()
    assert finished_job(ml_client, first.name).status == "Canceled"
    assert finished_job(ml_client, second.name).status == "Canceled"


def test_a_job_whose_process_dies_is_reported_failed(ml_client, src, finished_job):
    job = ml_client.jobs.create_or_update(command(code=str(src), command="python sleep.py", environment=ENV))
    wait_until(lambda: ml_client.jobs.get(job.name).status == "Running", timeout=60, interval=0.2)
    pid = job_state.worker_pid(ml_client._sim_workspace, job.name)
    os.killpg(pid, signal.SIGKILL)
    finished = finished_job(ml_client, job.name)
    assert finished.status == "Failed"
    assert "ended without reporting" in job_state.error_of(ml_client._sim_workspace, job.name)


def test_refusals(ml_client, src, data_asset, finished_job):
    with pytest.raises(HttpResponseError, match="Compute 'nowhere' was not found"):
        ml_client.jobs.create_or_update(training_job(src, compute="nowhere"))
    ml_client.begin_create_or_update(ComputeInstance(name="ci-stopped", size="Standard_DS3_v2")).result()
    ml_client.compute.begin_stop("ci-stopped").result()
    with pytest.raises(HttpResponseError, match="start it"):
        ml_client.jobs.create_or_update(training_job(src, compute="ci-stopped"))
    with pytest.raises(ResourceNotFoundError):
        ml_client.jobs.create_or_update(training_job(src, inputs={"data": Input(type="uri_file",
                                                                                 path="azureml:absent:1"), "rate": 1}))
    with pytest.raises(ResourceNotFoundError):
        ml_client.jobs.create_or_update(training_job(src, environment="azureml:no-such-env:1"))
    job = ml_client.jobs.create_or_update(training_job(src, name="named-once"))
    with pytest.raises(ResourceExistsError):
        ml_client.jobs.create_or_update(training_job(src, name="named-once"))
    finished_job(ml_client, job.name)
    assert [j.name for j in ml_client.jobs.list()] == ["named-once"]


def test_download_before_the_end_is_refused_and_archive_hides(ml_client, src, finished_job):
    job = ml_client.jobs.create_or_update(command(code=str(src), command="python sleep.py", environment=ENV))
    with pytest.raises(JobException, match="Download is allowed only"):
        ml_client.jobs.download(job.name)
    ml_client.jobs.begin_cancel(job.name).result()
    assert finished_job(ml_client, job.name).status == "Canceled"
    ml_client.jobs.archive(job.name)
    assert job.name not in [j.name for j in ml_client.jobs.list()]
    ml_client.jobs.restore(job.name)
    assert job.name in [j.name for j in ml_client.jobs.list()]


def test_a_cancel_is_not_an_error_and_waits_for_a_submission_to_end():
    """A worker's cancel arrives as a signal, between any two statements: a library that wraps
    every Exception must not turn it into a failure (a trial canceled inside MLflow's database
    session ended Failed), and a child job being stored gets its worker before the cancel is
    raised (a trial stored with no worker stayed CancelRequested for ever)."""
    import subprocess
    import sys

    script = textwrap.dedent("""
        import os, signal
        from labkit.sim.jobs import job_state
        signal.signal(signal.SIGTERM, job_state.on_cancel)
        try:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                print("not interrupted")
            except Exception:
                print("wrapped as an error")
        except job_state.Canceled:
            print("canceled")
        signal.signal(signal.SIGTERM, job_state.on_cancel)
        try:
            with job_state.cancel_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                print("submission finished")
        except job_state.Canceled:
            print("canceled after it")
        os.kill(os.getpid(), signal.SIGTERM)  # a cancel is raised once: the clean-up runs on
        print("clean-up finished")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[:-1] == ["canceled", "submission finished", "canceled after it",
                                               "clean-up finished"], result.stderr


def test_missing_packages_are_reported_in_the_log(ml_client, src, tmp_path, finished_job):
    from azure.ai.ml.entities import Environment

    conda = tmp_path / "conda.yml"
    conda.write_text("name: x\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - pandas\n"
                     "    - surely-not-installed-package==1.0\n")
    env = Environment(name="odd-env", version="1", image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
                      conda_file=str(conda))
    job = ml_client.jobs.create_or_update(command(code=str(src), command="echo ran", environment=env))
    assert finished_job(ml_client, job.name).status == "Completed"
    log = (job_state.job_folder(ml_client._sim_workspace, job.name) / "user_logs" / "std_log.txt").read_text()
    assert "surely-not-installed-package==1.0" in log and "pandas" not in log.split("installed")[1].split("\n")[0]
    assert "ran" in log


def test_invalid_job_is_refused_by_the_sdk_validation(ml_client, src):
    with pytest.raises(ValidationException):
        ml_client.jobs.create_or_update(command(code=str(src), command="python train.py ${{inputs.missing}}",
                                                environment=ENV))


# -- environments named by registry URI ---------------------------------------------------------
REGISTRY_ENV = "azureml://registries/azureml/environments/sklearn-1.5"


def test_a_registry_environment_by_label_runs_and_reads_back_as_its_version(ml_client, src, finished_job):
    job = ml_client.jobs.create_or_update(command(
        code=str(src), command="python -c \"import sklearn; print('sklearn', sklearn.__version__)\"",
        environment=f"{REGISTRY_ENV}/labels/latest"))
    assert job.environment.startswith(f"{REGISTRY_ENV}/versions/")
    assert finished_job(ml_client, job.name).status == "Completed"
    pinned = ml_client.jobs.create_or_update(command(
        code=str(src), command="echo pinned", environment=f"{REGISTRY_ENV}/versions/3"))
    assert ml_client.jobs.get(pinned.name).environment == f"{REGISTRY_ENV}/versions/3"
    assert finished_job(ml_client, pinned.name).status == "Completed"


@pytest.mark.parametrize("environment", [
    "azureml://registries/azureml/environments/sklearn-0.1/labels/latest",
    f"{REGISTRY_ENV}/versions/100000",
    "azureml://registries/my-team-registry/environments/sklearn-1.5/labels/latest",
])
def test_a_registry_environment_that_does_not_exist_is_refused_and_no_job_is_stored(ml_client, environment):
    with pytest.raises(ResourceNotFoundError) as refused:
        ml_client.jobs.create_or_update(command(command="echo never", environment=environment))
    assert refused.value.status_code == 404
    assert list(ml_client.jobs.list()) == []


# -- a job the SDK could not read back is never stored --------------------------------------------
def test_an_input_without_a_path_is_refused_and_the_workspace_keeps_working(ml_client, src, tmp_path, finished_job):
    data = tmp_path / "patients.csv"
    data.write_text("age\n30\n41\n")
    good = ml_client.jobs.create_or_update(command(code=str(src), command="echo fine", environment=ENV))
    typo = command(code=str(src), command="python train.py --data ${{inputs.data}}", environment=ENV,
                   inputs={"data": Input(type="uri_folder", folder=str(tmp_path))})  # "folder=" for "path="
    with pytest.raises(HttpResponseError, match="'data' of type uri_folder has no path") as refused:
        ml_client.jobs.create_or_update(typo)
    assert refused.value.status_code == 400
    assert [job.name for job in ml_client.jobs.list()] == [good.name]
    assert finished_job(ml_client, good.name).status == "Completed"


def test_listing_skips_a_record_that_cannot_be_read_back_and_names_it(ml_client, src, caplog):
    good = ml_client.jobs.create_or_update(command(code=str(src), command="echo fine", environment=ENV))
    # A record as an older simulation could have stored it: an input with no uri.
    store = ml_client._sim_workspace.store
    row = store.get(job_state.KIND, good.name)
    row.payload["properties"]["inputs"] = {"data": {"jobInputType": "uri_folder"}}
    with store.transaction() as db:
        store.put(db, job_state.KIND, "corrupt_job", "", type(row.rest_object())(dict(row.payload, name="corrupt_job")))
    other = ml_client.jobs.create_or_update(command(code=str(src), command="echo also fine", environment=ENV))
    with caplog.at_level("WARNING", logger="labkit.sim"):
        names = [job.name for job in ml_client.jobs.list()]
    assert sorted(names) == sorted([good.name, other.name])
    assert "corrupt_job" in caplog.text


# -- jobs.validate, as the SDK documents it (pipeline jobs) ---------------------------------------
def test_validate_checks_little_on_a_command_job_and_submission_catches_an_undeclared_input(ml_client, src):
    job = command(code=str(src), command="python train.py ${{inputs.missing}}", environment=ENV)
    assert ml_client.jobs.validate(job).passed
    with pytest.raises(ValidationException, match="missing"):
        ml_client.jobs.create_or_update(job)


def test_validate_looks_up_a_pipeline_s_compute(ml_client, src):
    from azure.ai.ml import dsl

    step = command(code=str(src), command="echo step", environment=ENV)

    def pipeline_on(compute):
        @dsl.pipeline()
        def one_step():
            node = step()
            node.compute = compute
        return one_step()

    result = ml_client.jobs.validate(pipeline_on("no-such-cluster"))
    assert not result.passed
    assert "no-such-cluster" in str(result.error_messages)
    ml_client.compute.begin_create_or_update(AmlCompute(name="cpu-cluster", size="Standard_DS3_v2")).result()
    assert ml_client.jobs.validate(pipeline_on("cpu-cluster")).passed


@pytest.mark.parametrize("reference", ["azureml:{name}:1", "azureml:{name}@latest", "{id}"])
def test_a_registered_model_is_a_job_input(ml_client, tmp_path, finished_job, reference):
    # Job inputs of type mlflow_model / custom_model name a model version (the REST API's
    # JobInputType); the job reads the version's files, as a scoring or evaluation step does.
    from azure.ai.ml.entities import Model

    folder = write_files(tmp_path / "model",
                         {"MLmodel": "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"})
    model = ml_client.models.create_or_update(Model(name="input-model", path=str(folder), type="mlflow_model"))
    path = reference.format(name=model.name, id=model.id)
    job = ml_client.jobs.create_or_update(command(
        command="test -f ${{inputs.model}}/MLmodel", environment=ENV,
        inputs={"model": Input(type="mlflow_model", path=path)}))
    finished = finished_job(ml_client, job.name)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, job.name)

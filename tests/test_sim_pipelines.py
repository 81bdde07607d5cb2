"""Pipeline jobs on the simulated workspace: steps run as child jobs, data flows, steps are reused."""
from __future__ import annotations

import json
import textwrap
import time

import pytest
from azure.ai.ml import Input, Output, command, dsl, load_component, load_job

from helpers import write_files
from labkit.sim.jobs import job_state

ENV = "azureml:AzureML-sklearn-1.5@latest"
STEPS = ("prep", "train", "evaluate")


def children(ml_client, name) -> dict:
    return {child.display_name: child for child in ml_client.jobs.list(parent_job_name=name)}


@pytest.fixture
def src(tmp_path):
    return write_files(tmp_path / "src", {
        "prep.py": """
            import argparse, os
            parser = argparse.ArgumentParser()
            parser.add_argument("--raw")
            parser.add_argument("--clean")
            args = parser.parse_args()
            rows = [line for line in open(args.raw).read().splitlines()[1:] if line and ",," not in line + ","]
            with open(os.path.join(args.clean, "rows.csv"), "w") as handle:
                handle.write("\\n".join(rows))
            print("kept", len(rows), "rows")
        """,
        "train.py": """
            import argparse, json, os
            parser = argparse.ArgumentParser()
            parser.add_argument("--data")
            parser.add_argument("--rate", type=float)
            parser.add_argument("--model")
            args = parser.parse_args()
            values = [float(line.split(",")[1]) for line in open(os.path.join(args.data, "rows.csv"))]
            with open(os.path.join(args.model, "model.json"), "w") as handle:
                json.dump({"weight": args.rate * sum(values), "rows": len(values)}, handle)
        """,
        "evaluate.py": """
            import argparse, json, os
            parser = argparse.ArgumentParser()
            parser.add_argument("--model")
            parser.add_argument("--report")
            args = parser.parse_args()
            model = json.load(open(os.path.join(args.model, "model.json")))
            with open(os.path.join(args.report, "report.json"), "w") as handle:
                json.dump({"score": model["weight"] / model["rows"]}, handle)
        """,
        # slow.py SECONDS [MEETING]: with a meeting folder, it first waits there for fail.py (and
        # fail.py for it): both can only get past that point if the pipeline runs them at once.
        "meet.py": """
            import pathlib, sys, time

            def meet(folder, me, other):
                folder = pathlib.Path(folder)
                (folder / me).touch()
                deadline = time.time() + 120
                while not (folder / other).exists():
                    if time.time() > deadline:
                        sys.exit(f"{other} never ran at the same time as {me}")
                    time.sleep(0.1)
        """,
        "slow.py": """
            import sys, time
            from meet import meet
            if len(sys.argv) > 2:
                meet(sys.argv[2], "slow", "failing")
            time.sleep(float(sys.argv[1]))
            print("slept")
        """,
        "fail.py": """
            import sys
            from meet import meet
            meet(sys.argv[1], "failing", "slow")
            raise SystemExit("this step fails")
        """,
    })


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("id,value\n1,2\n2,\n3,4\n4,6\n")  # one incomplete row
    return path


def python_components(src):
    prep = command(name="prep", display_name="Prepare", code=str(src),
                   command="python prep.py --raw ${{inputs.raw}} --clean ${{outputs.clean}}",
                   inputs={"raw": Input(type="uri_file")}, outputs={"clean": Output(type="uri_folder")},
                   environment=ENV)
    train = command(name="train", code=str(src),
                    command="python train.py --data ${{inputs.data}} --rate ${{inputs.rate}} --model ${{outputs.model}}",
                    inputs={"data": Input(type="uri_folder"), "rate": Input(type="number", default=0.1)},
                    outputs={"model": Output(type="uri_folder")}, environment=ENV)
    evaluate = command(name="evaluate", code=str(src),
                       command="python evaluate.py --model ${{inputs.model}} --report ${{outputs.report}}",
                       inputs={"model": Input(type="uri_folder")}, outputs={"report": Output(type="uri_folder")},
                       environment=ENV)
    return prep, train, evaluate


def report_of(ml_client, name, tmp_path) -> dict:
    target = tmp_path / f"download-{name}"
    ml_client.jobs.download(name, download_path=target, output_name="report")
    return json.loads((target / "named-outputs" / "report" / "report.json").read_text())


def test_a_python_pipeline_runs_its_steps_in_order_and_reuses_unchanged_steps(ml_client, src, raw, tmp_path,
                                                                               finished_job):
    prep, train, evaluate = python_components(src)

    @dsl.pipeline(default_compute="serverless", experiment_name="pipelines-test")
    def training(raw_data, rate):
        prepared = prep(raw=raw_data)
        trained = train(data=prepared.outputs.clean, rate=rate)
        evaluated = evaluate(model=trained.outputs.model)
        return {"report": evaluated.outputs.report}

    def start(rate, force_rerun=False):
        job = training(raw_data=Input(type="uri_file", path=str(raw)), rate=rate)
        job.settings.force_rerun = force_rerun
        return ml_client.jobs.create_or_update(job).name

    def submit(rate, force_rerun=False):
        return finished_job(ml_client, start(rate, force_rerun))

    first = submit(0.5)
    assert first.status == "Completed" and first.type == "pipeline"
    assert report_of(ml_client, first.name, tmp_path) == {"score": 0.5 * 12 / 3}  # the incomplete row dropped
    steps = children(ml_client, first.name)
    assert set(steps) == {"prepared", "trained", "evaluated"}
    assert all(step.status == "Completed" and step.experiment_name == "pipelines-test" for step in steps.values())
    assert all(step.properties.get("azureml.isreused") is None for step in steps.values())
    runs = {name: job_state.runtime(ml_client._sim_workspace, step.name) for name, step in steps.items()}
    # In dependency order: each step starts after the one it reads from has ended.
    assert runs["prepared"]["end_time"] <= runs["trained"]["start_time"]
    assert runs["trained"]["end_time"] <= runs["evaluated"]["start_time"]
    assert first.name not in {job.name for job in ml_client.jobs.list(parent_job_name=first.name)}
    assert {job.name for job in ml_client.jobs.list()} == {first.name}  # children are listed under their parent

    again = submit(0.5)
    assert again.status == "Completed"
    reused = children(ml_client, again.name)
    for step_name, step in reused.items():
        assert step.properties["azureml.isreused"] == "true"
        assert step.properties["azureml.reusedrunid"] == steps[step_name].name
        assert "pid" not in job_state.runtime(ml_client._sim_workspace, step.name)  # no process ran
    assert report_of(ml_client, again.name, tmp_path) == {"score": 2.0}

    # Two more at once: a changed train input (prep is reused, train and evaluate run again),
    # and force_rerun (every step runs again).
    changed_name, forced_name = start(0.9), start(0.5, force_rerun=True)
    changed, forced = finished_job(ml_client, changed_name), finished_job(ml_client, forced_name)
    rerun = children(ml_client, changed.name)
    assert rerun["prepared"].properties["azureml.reusedrunid"] == steps["prepared"].name
    assert "azureml.isreused" not in rerun["trained"].properties
    assert "azureml.isreused" not in rerun["evaluated"].properties
    assert report_of(ml_client, changed.name, tmp_path) == {"score": pytest.approx(0.9 * 12 / 3)}
    assert forced.status == "Completed"
    assert all("azureml.isreused" not in step.properties for step in children(ml_client, forced.name).values())
    assert report_of(ml_client, forced.name, tmp_path) == {"score": 2.0}


def test_a_yaml_pipeline_with_yaml_components_and_a_registered_component(ml_client, src, raw, tmp_path, finished_job):
    (tmp_path / "prep.yml").write_text(textwrap.dedent(f"""
        $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
        name: prep_data
        type: command
        inputs:
          raw: {{type: uri_file}}
        outputs:
          clean: {{type: uri_folder}}
        code: ./src
        environment: {ENV}
        command: python prep.py --raw ${{{{inputs.raw}}}} --clean ${{{{outputs.clean}}}}
    """))
    (tmp_path / "train.yml").write_text(textwrap.dedent(f"""
        $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
        name: train_model
        version: "1"
        type: command
        inputs:
          data: {{type: uri_folder}}
          rate: {{type: number, default: 0.1}}
        outputs:
          model: {{type: uri_folder}}
        code: ./src
        environment: {ENV}
        command: python train.py --data ${{{{inputs.data}}}} --rate ${{{{inputs.rate}}}} --model ${{{{outputs.model}}}}
    """))
    (tmp_path / "evaluate.yml").write_text(textwrap.dedent(f"""
        $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
        name: evaluate_model
        type: command
        inputs:
          model: {{type: uri_folder}}
        outputs:
          report: {{type: uri_folder}}
        code: ./src
        environment: {ENV}
        command: python evaluate.py --model ${{{{inputs.model}}}} --report ${{{{outputs.report}}}}
    """))
    registered = ml_client.components.create_or_update(load_component(tmp_path / "train.yml"))
    assert registered.version == "1"
    (tmp_path / "pipeline.yml").write_text(textwrap.dedent(f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: yaml-pipelines
        settings:
          default_compute: serverless
          default_datastore: azureml:workspaceblobstore
        inputs:
          raw_data: {{type: uri_file, path: {raw}}}
          rate: 0.25
        outputs:
          report: {{type: uri_folder}}
        jobs:
          prep:
            type: command
            component: ./prep.yml
            inputs:
              raw: ${{{{parent.inputs.raw_data}}}}
          train:
            type: command
            component: azureml:train_model:1
            inputs:
              data: ${{{{parent.jobs.prep.outputs.clean}}}}
              rate: ${{{{parent.inputs.rate}}}}
          evaluate:
            type: command
            component: ./evaluate.yml
            inputs:
              model: ${{{{parent.jobs.train.outputs.model}}}}
            outputs:
              report: ${{{{parent.outputs.report}}}}
    """))
    job = ml_client.jobs.create_or_update(load_job(tmp_path / "pipeline.yml"))
    assert job.inputs["raw_data"].path.startswith("azureml://")  # the local file was uploaded
    finished = finished_job(ml_client, job.name)
    assert finished.status == "Completed"
    assert report_of(ml_client, job.name, tmp_path) == {"score": 1.0}
    steps = children(ml_client, job.name)
    assert set(steps) == set(STEPS)
    assert finished.jobs["train"].component.endswith("/components/train_model/versions/1")
    assert "/components/azureml_anonymous/versions/" in finished.jobs["prep"].component
    assert [c.name for c in ml_client.components.list()] == ["train_model"]  # anonymous ones are not listed


def test_failed_steps_fail_the_pipeline_independent_steps_overlap_and_cancel_reaches_the_steps(ml_client, src,
                                                                                                 tmp_path, finished_job):
    slow = command(name="slow", code=str(src), command="python slow.py ${{inputs.seconds}} $[[${{inputs.meeting}}]]",
                   inputs={"seconds": Input(type="number"), "meeting": Input(type="string", optional=True)},
                   outputs={"done": Output(type="uri_folder")}, environment=ENV)
    broken = command(name="broken", code=str(src), command="python fail.py ${{inputs.meeting}} ${{outputs.out}}",
                     inputs={"meeting": Input(type="string")}, outputs={"out": Output(type="uri_folder")},
                     environment=ENV)
    after = command(name="after", code=str(src), command="python slow.py 0 && ls ${{inputs.data}}",
                    inputs={"data": Input(type="uri_folder")}, environment=ENV)

    @dsl.pipeline(default_compute="serverless")
    def fragile(seconds, meeting):
        slow(seconds=seconds, meeting=meeting)
        failing = broken(meeting=meeting)
        after(data=failing.outputs.out)

    @dsl.pipeline(default_compute="serverless")
    def long_running():
        slow(seconds=120)

    # Three pipelines at once (they are independent): by default the other steps go on when one
    # fails (continue_on_step_failure defaults to True on the service); with it False, the first
    # failure cancels the steps still running; canceling a pipeline cancels its running steps.
    meetings = [tmp_path / "meeting-1", tmp_path / "meeting-2"]
    for folder in meetings:
        folder.mkdir()
    going_on = ml_client.jobs.create_or_update(fragile(seconds=1, meeting=str(meetings[0]))).name
    stopping = fragile(seconds=120, meeting=str(meetings[1]))
    stopping.settings.continue_on_step_failure = False
    stopping = ml_client.jobs.create_or_update(stopping).name
    canceled = ml_client.jobs.create_or_update(long_running()).name

    deadline = time.time() + 120
    while time.time() < deadline:
        running = [c for c in ml_client.jobs.list(parent_job_name=canceled) if c.status == "Running"]
        if running:
            break
        time.sleep(0.3)
    assert running, "the step never started"
    ml_client.jobs.begin_cancel(canceled).result()
    assert finished_job(ml_client, canceled).status == "Canceled"
    assert finished_job(ml_client, running[0].name).status == "Canceled"

    job = finished_job(ml_client, going_on)
    assert job.status == "Failed"
    steps = children(ml_client, job.name)
    assert {name: step.status for name, step in steps.items()} == {"slow": "Completed", "failing": "Failed"}
    slow_run = job_state.runtime(ml_client._sim_workspace, steps["slow"].name)
    failing_run = job_state.runtime(ml_client._sim_workspace, steps["failing"].name)
    # The two independent steps ran at the same time (they waited for each other to get past their
    # meeting point); the step reading the failed one never ran.
    assert slow_run["start_time"] < failing_run["end_time"] and failing_run["start_time"] < slow_run["end_time"]
    assert "failing" in job_state.error_of(ml_client._sim_workspace, job.name)

    job = finished_job(ml_client, stopping)
    assert job.status == "Failed"
    assert {name: step.status for name, step in children(ml_client, job.name).items()} == {
        "slow": "Canceled", "failing": "Failed"}


def test_steps_with_a_registry_environment_run(ml_client, src, raw, finished_job):
    # The form most public examples use today.
    registry_environment = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    prep = command(code=str(src), command="python prep.py --raw ${{inputs.raw}} --clean ${{outputs.clean}}",
                   inputs={"raw": Input(type="uri_file")}, outputs={"clean": Output(type="uri_folder")},
                   environment=registry_environment)
    train = command(code=str(src),
                    command="python train.py --data ${{inputs.data}} --rate 0.1 --model ${{outputs.model}}",
                    inputs={"data": Input(type="uri_folder")}, outputs={"model": Output(type="uri_folder")},
                    environment=registry_environment)

    @dsl.pipeline(description="registry environment", default_compute="serverless")
    def prepare_and_train(raw_data):
        cleaned = prep(raw=raw_data)
        train(data=cleaned.outputs.clean)

    job = ml_client.jobs.create_or_update(prepare_and_train(raw_data=Input(type="uri_file", path=str(raw))))
    assert finished_job(ml_client, job.name).status == "Completed"
    steps = children(ml_client, job.name)
    assert {step.status for step in steps.values()} == {"Completed"}
    assert all(step.environment.startswith("azureml://registries/azureml/environments/sklearn-1.5/versions/")
               for step in steps.values())

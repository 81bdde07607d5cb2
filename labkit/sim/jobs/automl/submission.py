"""Submitting an AutoML job: what the service checks and resolves before the job starts.

``submit`` runs in the notebook's process, as ``ml_client.jobs.create_or_update`` of a
``ClassificationJob``, ``RegressionJob`` or ``ForecastingJob`` (``jobs.operations`` names it by
module path). It serializes the job with the SDK, refuses what the service refuses with a 400
(an unknown primary metric or algorithm, every algorithm blocked, a forecasting job without a
time column, data that is not MLTable), resolves the compute and the inputs, fills in the
default primary metric and starts the parent's worker, which runs ``search.run``.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.sim.core import references
from labkit.sim.core.base import bad_request
from labkit.sim.jobs.automl.algorithms import _canonical, service_names
from labkit.sim.jobs.automl.metrics import PRIMARY_METRICS


def _task_details(payload: dict) -> dict:
    return payload["properties"]["taskDetails"]


def _refuse_bad_configuration(job_operations, details: dict, base_path: Path) -> None:
    """What the service checks when an AutoML job is submitted (400 Bad Request)."""
    task = details.get("taskType")
    if task not in PRIMARY_METRICS:
        raise bad_request(f"AutoML task type '{task}' is not part of the simulated workspace (tabular "
                          "classification, regression and forecasting are).")
    metric = details.get("primaryMetric")
    if metric and metric not in PRIMARY_METRICS[task]:
        raise bad_request(f"Primary metric '{metric}' is not supported for {task.lower()} tasks. Supported: "
                          f"{', '.join(PRIMARY_METRICS[task])}.")
    if not details.get("targetColumnName"):
        raise bad_request("target_column_name is required for AutoML tabular tasks.")
    if details.get("validationData") and details.get("nCrossValidations"):
        raise bad_request("Specify either validation_data or n_cross_validations, not both.")
    if details.get("validationData") and details.get("validationDataSize"):
        raise bad_request("Specify either validation_data or validation_data_size, not both.")
    training = details.get("trainingSettings") or {}
    known = set(service_names(task))
    for key in ("allowedTrainingAlgorithms", "blockedTrainingAlgorithms"):
        unknown = [name for name in training.get(key) or [] if _canonical(task, name) is None]
        if unknown:
            raise bad_request(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
                              f"{task.lower()} algorithm{'s' if len(unknown) > 1 else ''}. Supported: "
                              f"{', '.join(sorted(known))}.")
    allowed = training.get("allowedTrainingAlgorithms") or sorted(known)
    blocked = {_canonical(task, name) for name in training.get("blockedTrainingAlgorithms") or []}
    if all(_canonical(task, name) in blocked for name in allowed):
        raise bad_request("Every training algorithm is blocked: allowed_training_algorithms minus "
                          "blocked_training_algorithms leaves nothing to train.")
    if task == "Forecasting":
        settings = details.get("forecastingSettings") or {}
        if not settings.get("timeColumnName"):
            raise bad_request("Forecasting tasks need a time column: set time_column_name with "
                              "set_forecast_settings(time_column_name=...).")
    for key in ("trainingData", "validationData", "testData"):
        if details.get(key):
            _check_mltable(job_operations, key, details[key], base_path)


def _check_mltable(job_operations, key: str, value: dict, base_path: Path) -> None:
    """AutoML reads tabular data through MLTable only: an ``mltable`` data asset, or a folder
    holding an ``MLTable`` file."""
    uri = value.get("uri") or ""
    label = {"trainingData": "training_data", "validationData": "validation_data", "testData": "test_data"}[key]
    if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
        body = uri.removeprefix("azureml:")
        if body.startswith("/subscriptions/"):
            match = references.ARM_VERSION.search(body)
            name, version = match["name"], match["version"]
            row = job_operations._store.get("data", name, version)
        elif "@" in body:
            name, _ = body.split("@", 1)
            row = job_operations._store.latest("data", name)
        else:
            name, _, version = body.partition(":")
            row = job_operations._store.get("data", name, version) if version else job_operations._store.latest(
                "data", name)
        if row is not None and row.payload["properties"].get("dataType") != "mltable":
            raise bad_request(f"{label}: data asset '{name}' is of type "
                              f"{row.payload['properties'].get('dataType')}; AutoML needs an mltable data asset "
                              "(a folder with an MLTable file).")
        return
    if uri.startswith(("azureml://", "http://", "https://", "wasbs://", "abfss://")):
        return
    local = Path(uri) if Path(uri).is_absolute() else (base_path / uri).resolve()
    if not (local.is_dir() and (local / "MLTable").is_file()):
        raise bad_request(f"{label}: {local} is not an MLTable folder; AutoML reads tabular data only "
                          "through MLTable (a folder holding an MLTable file and the data it names).")


def submit(job_operations, automl_job) -> Any:
    """Accept an AutoML job as the service does and start its worker."""
    import os

    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    from labkit.sim.jobs.job_state import DEFAULT_EXPERIMENT

    base_path = Path(getattr(automl_job, "base_path", None) or os.getcwd())
    rest = to_rest_job_object(automl_job)
    payload = rest.as_dict()
    props = payload["properties"]
    details = _task_details(payload)
    _refuse_bad_configuration(job_operations, details, base_path)
    name = payload["name"]
    props["experimentName"] = props.get("experimentName") or DEFAULT_EXPERIMENT
    props["computeId"] = job_operations._resolve_compute(props.get("computeId"), automl_job)
    for key in ("trainingData", "validationData", "testData"):
        if details.get(key):
            job_operations._resolve_input(key, details[key], base_path)
    details["primaryMetric"] = details.get("primaryMetric") or next(iter(PRIMARY_METRICS[details["taskType"]]))
    props["services"] = job_operations._services(name)
    props.setdefault("properties", {})
    props["outputs"] = props.get("outputs") or {}
    return job_operations._store_and_start(type(rest), payload)

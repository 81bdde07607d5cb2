"""Creating a model monitor and firing it: ``MonitorSchedule`` through ``ml_client.schedules``.

What the service does, and the simulation with it:

- ``schedules.begin_create_or_update(MonitorSchedule(...))`` resolves what the SDK resolves
  before it calls the service (``monitor_payload``, called by ``schedules.operations``): the
  monitoring target (``"<endpoint>:<deployment>"`` or its ARM id; the deployment must exist),
  and, for a signal without production or reference data, the data assets of the deployment's
  data collector (``model_inputs`` for data drift and data quality, ``model_outputs`` for
  prediction drift, the reference being the same data over the window before the production
  window); a monitor with no signals gets the three default signals when the deployment collects
  both; data asset references and local paths become asset ids and uploads. Data drift,
  prediction drift and data quality signals are simulated; a feature attribution drift signal
  needs the service's model-based feature importance, and custom, model performance and
  generative signals run the service's own components, so they are refused
  (``NotImplementedError``) rather than imitated.
- Each firing (the simulated clock's ``advance``, or ``schedules.trigger``) submits a monitor job
  (``submit``): a pipeline job (on Azure, a pipeline of serverless Spark steps) named after the
  schedule, with display name ``<monitor>-YYYYMMDDThhmmssZ`` and the tag
  ``azureml.scheduleTrigger.scheduleName``, listed by ``ml_client.jobs.list()``. Its worker runs
  ``monitor_job.run``, named in ``job_runner.JOB_TYPE_RUNNERS``.

May import: as ``labkit.sim.monitoring``.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from labkit.sim.core import references

RUNNER = "Monitor"
SETTINGS_PROPERTY = "labkit.sim.monitor"


# == creating a monitor schedule (schedules.begin_create_or_update) ===================================
def monitor_payload(ops, schedule) -> dict:
    """The REST payload of a ``MonitorSchedule`` as the service stores it, after the SDK's resolution."""
    from azure.ai.ml.constants._monitoring import MonitorDatasetContext, MonitorSignalType
    from azure.ai.ml.entities import BaselineDataRange, ProductionData, ReferenceData
    from azure.ai.ml.entities._inputs_outputs import Input
    from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ScheduleException

    definition = schedule.create_monitor
    target = definition.monitoring_target
    inputs = outputs = None  # the deployment's collected data assets, "name:version"
    if target is not None and target.endpoint_deployment_id:
        endpoint, deployment = _target_names(ops, target.endpoint_deployment_id)
        target.endpoint_deployment_id = (f"{ops._workspace.child_id('onlineEndpoints', endpoint)}"
                                         f"/deployments/{deployment}")
        inputs, outputs = _collected_assets(ops, endpoint, deployment)
    elif target is not None and target.model_id:
        target.model_id = _model_id(ops, target.model_id)

    def fail(message: str):
        raise ScheduleException(message=message, no_personal_data_message=message, target=ErrorTarget.SCHEDULE,
                                error_category=ErrorCategory.USER_ERROR)

    if not definition.monitoring_signals:
        if not (inputs and outputs):
            fail("An ARM id for a deployment with data collector enabled for model inputs and outputs must be "
                 "given if monitoring_signals is None")
        schedule._create_default_monitor_definition()
    data_ops = ops._jobs()._group("_data")
    for signal_name, signal in definition.monitoring_signals.items():
        kind = getattr(signal, "type", None)
        if kind == MonitorSignalType.FEATURE_ATTRIBUTION_DRIFT:
            raise NotImplementedError(
                f"Signal '{signal_name}': feature attribution drift is not part of the simulated workspace. The "
                "service computes it from a model-based feature importance of the reference data (its own "
                "explainer), which the simulation cannot reproduce honestly; use data drift, prediction drift and "
                "data quality signals, or run this signal on Azure.")
        if kind not in (MonitorSignalType.DATA_DRIFT, MonitorSignalType.DATA_QUALITY,
                        MonitorSignalType.PREDICTION_DRIFT):
            raise NotImplementedError(
                f"Signal '{signal_name}' ({type(signal).__name__}) is not part of the simulated workspace: it runs "
                "the service's own components. The simulation monitors data drift, prediction drift and data "
                "quality.")
        collected = outputs if kind == MonitorSignalType.PREDICTION_DRIFT else inputs
        context = (MonitorDatasetContext.MODEL_OUTPUTS if kind == MonitorSignalType.PREDICTION_DRIFT
                   else MonitorDatasetContext.MODEL_INPUTS)
        if not signal.production_data or not signal.reference_data:
            if not collected:
                fail(f"A target and baseline dataset must be provided for signal with name {signal_name} and type "
                     f"{kind} if the monitoring_target endpoint_deployment_id is empty or refers to a deployment for "
                     f"which data collection for model {'outputs' if context.endswith('outputs') else 'inputs'} is "
                     "not enabled.")
            name, version = collected.rsplit(":", 1)
            data_type = data_ops.get(name, version).type
            if not signal.production_data:
                signal.production_data = ProductionData(
                    input_data=Input(path=collected, type=data_type), data_context=context,
                    data_window=BaselineDataRange(lookback_window_size="default", lookback_window_offset="P0D"))
            if not signal.reference_data:
                signal.reference_data = ReferenceData(
                    input_data=Input(path=collected, type=data_type), data_context=context,
                    data_window=BaselineDataRange(lookback_window_size="default", lookback_window_offset="default"))
        for data in (signal.production_data, signal.reference_data):
            data.input_data.path = _resolve_input(ops, data.input_data, schedule)
    payload = schedule._to_rest_object().as_dict()
    for signal in payload["properties"]["action"]["monitorDefinition"]["signals"].values():
        outputs_signal = signal.get("signalType") == "PredictionDrift"
        # The SDK reads dataContext back unconditionally; the service fills it in when none was given.
        signal["productionData"].setdefault("dataContext", "model_outputs" if outputs_signal else "model_inputs")
        signal["referenceData"].setdefault("dataContext", "training")
    return payload


def _target_names(ops, reference: str) -> tuple[str, str]:
    body = reference.removeprefix("azureml:")
    match = re.search(r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<deployment>[^/]+)$", body, re.IGNORECASE)
    if match:
        return match["endpoint"], match["deployment"]
    if body.count(":") != 1:
        from labkit.sim.core.base import bad_request

        raise bad_request(f"Monitoring target '{reference}' is neither '<endpoint>:<deployment>' nor a deployment's "
                          "ARM id.")
    endpoint, deployment = body.split(":")
    return endpoint, deployment


def _collected_assets(ops, endpoint: str, deployment: str) -> tuple[Optional[str], Optional[str]]:
    from labkit.sim.endpoints.online_deployments import OnlineDeploymentOperations

    group = OnlineDeploymentOperations(ops._workspace, root=ops._root, scope=ops._scope)
    found = group.get(deployment, endpoint)  # 404 if the deployment does not exist
    collector = found.data_collector
    assets = []
    for name in ("model_inputs", "model_outputs"):
        collection = (collector.collections or {}).get(name) if collector else None
        if collection is None or str(collection.enabled).lower() != "true" or not collection.data:
            assets.append(None)
            continue
        match = references.ARM_VERSION.search(str(collection.data))
        assets.append(f"{match['name']}:{match['version']}" if match else str(collection.data))
    return assets[0], assets[1]


def _model_id(ops, reference: str) -> str:
    from labkit.sim.endpoints.online_deployments import OnlineDeploymentOperations

    group = OnlineDeploymentOperations(ops._workspace, root=ops._root, scope=ops._scope)
    return group._model_id(reference if ":" in reference.removeprefix("azureml:") or "/" in reference
                           else f"{reference}@latest")


def _resolve_input(ops, data_input, schedule) -> str:
    """What the SDK does to a monitor's input: an asset reference becomes its id, a local path is
    uploaded; a reference to a missing asset is refused."""
    value = {"uri": str(data_input.path), "jobInputType": str(data_input.type or "uri_folder")}
    if re.match(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$", value["uri"]) and not value["uri"].startswith("azureml:"):
        value["uri"] = f"azureml:{value['uri']}"
    base = Path(getattr(schedule, "_base_path", None) or os.getcwd())
    ops._jobs()._resolve_input("monitor_input", value, base)
    return value["uri"]


# == firing (schedules._fire) =====================================================================
def submit(ops, name: str, moment: datetime) -> str:
    """Submit the monitor job of schedule ``name`` triggered at ``moment``; return the job's name."""
    from azure.ai.ml.entities import PipelineJob
    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    from labkit.sim.jobs.job_runner import RUNNER_PROPERTY
    from labkit.sim.jobs.job_state import SCHEDULE_TAG

    row = ops._row(name)
    definition = row.payload["properties"]["action"]["monitorDefinition"]
    jobs = ops._jobs()
    stamp = moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    job_name = f"{name}-{stamp.lower()}-{uuid.uuid4().hex[:6]}"
    rest = to_rest_job_object(PipelineJob(name=job_name, experiment_name=name, display_name=f"{name}-{stamp}",
                                          jobs={}, tags={SCHEDULE_TAG: name}))
    payload = rest.as_dict()
    props = payload["properties"]
    props["experimentName"] = name
    props["tags"] = {**(props.get("tags") or {}), SCHEDULE_TAG: name}
    settings = {"schedule": name, "trigger_time": moment.astimezone(timezone.utc).isoformat(),
                "definition": definition}
    props["properties"] = {RUNNER_PROPERTY: RUNNER, SETTINGS_PROPERTY: json.dumps(settings)}
    props["services"] = jobs._services(job_name)
    jobs._store_and_start(type(rest), payload)
    return job_name

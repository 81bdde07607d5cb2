"""Model monitoring: ``MonitorSchedule`` through ``ml_client.schedules``, run as monitor jobs.

What the service does, and the simulation with it:

- ``schedules.begin_create_or_update(MonitorSchedule(...))`` resolves what the SDK resolves
  before it calls the service: the monitoring target (``"<endpoint>:<deployment>"`` or its ARM id;
  the deployment must exist), and, for a signal without production or reference data, the data
  assets of the deployment's data collector (``model_inputs`` for data drift and data quality,
  ``model_outputs`` for prediction drift, the reference being the same data over the window
  before the production window); a monitor with no signals gets the three default signals when the
  deployment collects both; data asset references and local paths become asset ids and uploads.
  Data drift, prediction drift and data quality signals are simulated; a feature attribution drift
  signal needs the service's model-based feature importance, and custom, model performance and
  generative signals run the service's own components, so they are refused (``NotImplementedError``)
  rather than imitated.
- Each firing (the simulated clock's ``advance``, or ``schedules.trigger``) submits a monitor job:
  a pipeline job (on Azure, a pipeline of serverless Spark steps) named after the schedule, with
  display name ``<monitor>-YYYYMMDDThhmmssZ`` and the tag ``azureml.scheduleTrigger.scheduleName``,
  listed by ``ml_client.jobs.list()``. Its worker (``run``) reads the data, computes each signal's
  metrics (``labkit.sim.monitoring.drift_metrics``), compares them with the thresholds, writes
  ``outputs/monitoring_results.csv`` and ``outputs/monitoring_results.json`` to the job's artifacts,
  tags the job ``azureml_modelmonitor_threshold_breached`` when a threshold is breached, and
  completes. Missing or empty data fail the job with a message naming the input and the window.
- Windows: production data is the trailing window ``[t - offset - size, t - offset)`` before the
  trigger time ``t`` (``lookback_window_size``, ``lookback_window_offset``; defaults from the
  trigger's frequency, as the SDK computes them); reference data is a trailing window likewise, a
  fixed asset (all of it), or static dates ``[window_start, window_end]`` (whole days). Only data
  with collection times (the data collector's files) can be cut to a window; a plain table is used
  whole.
- Features: all features (the columns both inputs share, as the service compares them), a named
  list, or the top N by importance. The top N needs a ``target_column`` in the reference data's
  ``data_column_names``; the service ranks features by a model-based feature importance, the
  simulation by mutual information with the target (scikit-learn), so the ranking can differ.
- Thresholds: one metric per data type as the SDK's threshold objects give it (defaults from the
  SDK when a type has none: normalized Wasserstein distance 0.1 for numerical drift,
  Jensen-Shannon distance 0.1 for categorical drift, rate 0 for every data quality metric).
- Alerts: a signal with ``alert_enabled=True`` (the signal's notification mode) whose metrics breach
  a threshold records one notification to the monitor's ``AlertNotification(emails=...)`` in the
  workspace's outbox, ``<workspace>/outbox/*.json`` (read it with ``outbox(ml_client)``); nothing is
  sent. No breach, no notification.

The SDK has no API for monitoring results (on Azure they are on the studio's monitoring page).
``results(ml_client, monitor_name)`` and the plotting functions here are the simulation's stand-in
for that page; they are not part of ``azure-ai-ml`` and do not work against Azure.
"""
from __future__ import annotations

import json
import math
import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pandas as pd

from labkit.sim.core import references
from labkit.sim.monitoring import drift_metrics
from labkit.sim.jobs import job_state

RUNNER = "Monitor"
SETTINGS_PROPERTY = "labkit.sim.monitor"
BREACH_TAG = "azureml_modelmonitor_threshold_breached"
BREACH_WORDING = "has failed due to one or more features violating metric thresholds"
RESULTS_CSV = "monitoring_results.csv"
RESULTS_JSON = "monitoring_results.json"
OUTBOX = "outbox"
SIMULATED_SIGNALS = {"DataDrift", "PredictionDrift", "DataQuality"}
# The SDK's default thresholds (azure.ai.ml.entities._monitoring.thresholds), used for a data type
# the signal gives no threshold for.
DEFAULT_DRIFT = {"Numerical": [("NormalizedWassersteinDistance", 0.1)],
                 "Categorical": [("JensenShannonDistance", 0.1)]}
DEFAULT_QUALITY = {kind: [(m, 0.0) for m in drift_metrics.DATA_QUALITY_METRICS] for kind in ("Numerical", "Categorical")}
# Columns the data collector adds to each row; never features.
COLLECTOR_COLUMNS = ("collection_time", "correlationid")
RESULT_COLUMNS = ["monitor", "job", "trigger_time", "signal", "signal_type", "feature", "data_type", "metric",
                  "value", "statistic", "threshold", "breached", "production_rows", "reference_rows",
                  "window_start", "window_end"]


class MonitorInputError(Exception):
    """The monitor's data is missing, empty or unusable: the monitor job fails with this message."""


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


# == the monitor job (job_runner -> run) ============================================================
def run(workspace, name: str) -> None:
    """Run one monitor job in its worker: compute, compare, write results, raise alerts."""
    from labkit.sim.core.fs import local_path
    from labkit.sim.core.store import utc_now

    job_state.set_status(workspace, name, "Running", only_from=("NotStarted", "Queued"))
    job_state.write_runtime(workspace, name, start_time=utc_now())
    props = workspace.store.get(job_state.KIND, name).payload["properties"]
    settings = json.loads(props["properties"][SETTINGS_PROPERTY])
    folder = job_state.job_folder(workspace, name)
    (folder / "user_logs").mkdir(parents=True, exist_ok=True)
    log_path = folder / "user_logs" / "std_log.txt"
    artifacts = Path(local_path(props["outputs"]["default"]["uri"]))
    with open(log_path, "a", buffering=1) as log:
        log.write(f"[simulated workspace] Monitor '{settings['schedule']}', triggered at {settings['trigger_time']}\n")
        try:
            frame, distributions = evaluate(workspace, settings["definition"],
                                            datetime.fromisoformat(settings["trigger_time"]), log)
        except MonitorInputError as problem:
            log.write(f"[simulated workspace] The monitor could not run: {problem}\n")
            _copy_log(log_path, artifacts)
            job_state.finish(workspace, name, "Failed", json.dumps({"code": "UserError", "message": str(problem)},
                                                                   indent=4))
            return
        frame.insert(0, "trigger_time", settings["trigger_time"])
        frame.insert(0, "job", name)
        frame.insert(0, "monitor", settings["schedule"])
        frame = frame.reindex(columns=RESULT_COLUMNS)
        outputs = artifacts / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        frame.to_csv(outputs / RESULTS_CSV, index=False)
        (outputs / RESULTS_JSON).write_text(json.dumps(
            {"monitor": settings["schedule"], "job": name, "trigger_time": settings["trigger_time"],
             "metrics": json.loads(frame.to_json(orient="records")), "distributions": distributions}, indent=1))
        breached = frame[frame["breached"]]
        for signal, rows in breached.groupby("signal", sort=True):
            log.write(f"[simulated workspace] Signal '{signal}': {len(rows)} metric(s) breach their threshold.\n")
        notified = _alert(workspace, settings, name, breached)
        for message in notified:
            log.write(f"[simulated workspace] Alert recorded in the outbox: {message}\n")
        if not breached.empty:
            # The service's metric-evaluation step tags its run with this sentence per signal; the
            # documented Event Grid filter matches on it ("String contains: has failed due to one or
            # more features violating metric thresholds", how-to-monitor-model-performance). The run
            # itself completes.
            message = " ".join(f"The signal '{signal}' {BREACH_WORDING}."
                               for signal in sorted(breached["signal"].unique()))
            job_state.update_properties(workspace, name, lambda p: p.setdefault("tags", {}).update(
                {BREACH_TAG: message}))
        log.write(f"[simulated workspace] {len(frame)} metric value(s) written to outputs/{RESULTS_CSV}\n")
    _copy_log(log_path, artifacts)
    job_state.finish(workspace, name, "Completed")


def _copy_log(log_path: Path, artifacts: Path) -> None:
    import shutil

    (artifacts / "user_logs").mkdir(parents=True, exist_ok=True)
    shutil.copy2(log_path, artifacts / "user_logs" / "std_log.txt")


def evaluate(workspace, definition: dict, trigger_time: datetime, log=None) -> tuple[pd.DataFrame, dict]:
    """Every signal's metrics for a trigger at ``trigger_time``: (rows, distributions for plots)."""
    rows, distributions = [], {}
    for signal_name in sorted(definition.get("signals") or {}):
        signal = definition["signals"][signal_name]
        kind = signal.get("signalType")
        if kind not in SIMULATED_SIGNALS:
            raise MonitorInputError(f"Signal '{signal_name}' of type {kind} is not simulated.")
        production, window = _load(workspace, signal["productionData"], trigger_time, f"{signal_name} production data")
        reference, _ = _load(workspace, signal["referenceData"], trigger_time, f"{signal_name} reference data",
                             before=window)
        if log:
            log.write(f"[simulated workspace] Signal '{signal_name}' ({kind}): {len(production)} production row(s) in "
                      f"[{window[0] or '-'}, {window[1] or '-'}), {len(reference)} reference row(s)\n")
        signal_rows, signal_distributions = _signal_rows(signal_name, signal, production, reference)
        for row in signal_rows:
            row.update(window_start=window[0], window_end=window[1])
        rows.extend(signal_rows)
        distributions[signal_name] = signal_distributions
    frame = pd.DataFrame(rows, columns=[c for c in RESULT_COLUMNS if c not in ("monitor", "job", "trigger_time")])
    frame["breached"] = frame["breached"].astype(bool)
    return frame, distributions


# -- reading the inputs ------------------------------------------------------------------------------
def _duration(text: Optional[str]) -> timedelta:
    import isodate

    value = isodate.parse_duration(text or "P0D")
    return value if isinstance(value, timedelta) else value.totimedelta(start=datetime(2000, 1, 1))


def _load(workspace, spec: dict, trigger_time: datetime, what: str,
          before: Optional[tuple] = None) -> tuple[pd.DataFrame, tuple[Optional[str], Optional[str]]]:
    """The rows of a monitor input in its window, and the window (ISO strings, or None)."""
    kind = spec.get("inputDataType")
    start = end = None
    if kind == "Trailing":
        end = trigger_time - _duration(spec.get("windowOffset"))
        start = end - _duration(spec.get("windowSize"))
    elif kind == "Static":
        start = pd.Timestamp(spec["windowStart"]).to_pydatetime()
        end = pd.Timestamp(spec["windowEnd"]).to_pydatetime() + timedelta(days=1)
    frame = _read(workspace, spec.get("uri") or "", what)
    if "collection_time" in frame.columns and start is not None:
        times = frame["collection_time"]
        frame = frame[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]
    window = (start.isoformat() if start else None, end.isoformat() if end else None)
    if frame.empty:
        where = f" in the window [{window[0]}, {window[1]})" if start else ""
        raise MonitorInputError(f"The {what} ({spec.get('uri')}) has no rows{where}. On Azure the monitor run fails "
                                "the same way when there is no data to compare: send requests to the deployment, or "
                                "widen the lookback window.")
    frame = frame.drop(columns=[c for c in COLLECTOR_COLUMNS if c in frame.columns]).reset_index(drop=True)
    return frame, window


def _read(workspace, uri: str, what: str) -> pd.DataFrame:
    from labkit.sim.endpoints.data_collection import events_to_frame, read_events
    from labkit.sim.core.fs import local_path

    try:
        if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
            uri = references.data_asset_uri(workspace, uri)
        path = Path(local_path(uri)) if uri.startswith("azureml://") else Path(uri)
    except Exception as problem:
        raise MonitorInputError(f"The {what} ({uri}) was not found: {problem}") from problem
    if not path.exists():
        raise MonitorInputError(f"The {what} was not found: {uri} ({path} does not exist).")
    if path.is_file():
        return _read_file(path, what)
    if (path / "MLTable").is_file():
        import mltable

        return mltable.load(str(path)).to_pandas_dataframe()
    if any(path.rglob("*.jsonl")):
        return events_to_frame(read_events(path))
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".csv", ".parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([_read_file(p, what) for p in files], ignore_index=True)


def _read_file(path: Path, what: str) -> pd.DataFrame:
    from labkit.sim.endpoints.data_collection import events_to_frame

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pqt"):
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as lines:
            return events_to_frame([json.loads(line) for line in lines if line.strip()])
    raise MonitorInputError(f"The {what} is a {suffix or 'extensionless'} file; the monitor reads CSV, Parquet, "
                            "MLTable folders and the data collector's JSON lines.")


# -- one signal ----------------------------------------------------------------------------------------
def _thresholds(signal: dict, defaults: dict) -> dict[str, list[tuple[str, float]]]:
    given: dict[str, list[tuple[str, float]]] = {}
    for item in signal.get("metricThresholds") or []:
        metric = str(item.get("metric") or "")
        if not metric:
            continue
        metric = metric[0].upper() + metric[1:]
        value = (item.get("threshold") or {}).get("value")
        given.setdefault(item.get("dataType") or "Numerical", []).append((metric, value))
    return {kind: given.get(kind) or defaults[kind] for kind in ("Numerical", "Categorical")}


def _features(signal_name: str, signal: dict, production: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    # Same name, same feature: a column whose values turned into text stays comparable (that is
    # what the data type error rate measures).
    common = [c for c in reference.columns if c in production.columns]
    if not common:
        raise MonitorInputError(f"Signal '{signal_name}': found no common columns between the production and the "
                                "reference data. Common columns must have the same names (case-sensitive) and similar "
                                "data types.")
    if signal.get("signalType") == "PredictionDrift":
        return common
    features = signal.get("features") or {"filterType": "AllFeatures"}
    kind = features.get("filterType")
    if kind == "FeatureSubset":
        wanted = list(features.get("features") or [])
        missing = [f for f in wanted if f not in common]
        if missing:
            raise MonitorInputError(f"Signal '{signal_name}': feature(s) {missing} are not in both the production and "
                                    f"the reference data (common columns: {common}).")
        return wanted
    if kind == "TopNByAttribution":
        target = ((signal.get("referenceData") or {}).get("columns") or {}).get("target_column")
        if not target or target not in reference.columns:
            raise MonitorInputError(
                f"Signal '{signal_name}': selecting the top {features.get('top')} features needs the reference data's "
                "target column: give ReferenceData(..., data_column_names={'target_column': '<label column>'}).")
        return _top_features(reference, [c for c in common if c != target], target, int(features.get("top") or 10))
    return [c for c in common if c != ((signal.get("referenceData") or {}).get("columns") or {}).get("target_column")]


def _top_features(reference: pd.DataFrame, candidates: list[str], target: str, top: int) -> list[str]:
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    frame = reference[candidates + [target]].dropna()
    encoded = pd.DataFrame({c: (frame[c] if pd.api.types.is_numeric_dtype(frame[c])
                                else frame[c].astype("category").cat.codes) for c in candidates})
    discrete = [not pd.api.types.is_float_dtype(frame[c]) for c in candidates]
    y = frame[target]
    if pd.api.types.is_float_dtype(y) and y.nunique() > 20:
        scores = mutual_info_regression(encoded, y, discrete_features=discrete, random_state=0)
    else:
        scores = mutual_info_classif(encoded, y.astype(str), discrete_features=discrete, random_state=0)
    ranked = sorted(zip(candidates, scores), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:top]]


def _signal_rows(signal_name: str, signal: dict, production: pd.DataFrame,
                 reference: pd.DataFrame) -> tuple[list[dict], dict]:
    kind = signal["signalType"]
    if kind == "PredictionDrift":
        reference = _align_predictions(signal, production, reference)
    features = _features(signal_name, signal, production, reference)
    overrides = {k: v for k, v in (signal.get("featureDataTypeOverride") or {}).items()}
    quality = kind == "DataQuality"
    thresholds = _thresholds(signal, DEFAULT_QUALITY if quality else DEFAULT_DRIFT)
    rows, distributions = [], {}
    for feature in features:
        data_type = drift_metrics.feature_type(reference[feature], overrides.get(feature))
        ref_values, prod_values = reference[feature], production[feature]
        distributions[feature] = _distribution(data_type, ref_values, prod_values)
        for metric, threshold in thresholds[data_type]:
            statistic = math.nan
            try:
                if quality:
                    value = drift_metrics.data_quality_metric(metric, data_type, ref_values, prod_values)
                else:
                    value, statistic = drift_metrics.drift_metric(metric, data_type, ref_values, prod_values)
            except ValueError as problem:
                raise MonitorInputError(f"Signal '{signal_name}', feature '{feature}': {problem}") from problem
            rows.append({"signal": signal_name, "signal_type": kind, "feature": feature, "data_type": data_type,
                         "metric": metric, "value": value, "statistic": statistic,
                         "threshold": math.nan if threshold is None else float(threshold),
                         "breached": drift_metrics.breaches(metric, value, threshold),
                         "production_rows": len(production), "reference_rows": len(reference)})
    return rows, distributions


def _align_predictions(signal: dict, production: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Name the reference's prediction (or target) column as the production's, when both are known."""
    ref_columns = (signal.get("referenceData") or {}).get("columns") or {}
    prod_columns = (signal.get("productionData") or {}).get("columns") or {}
    ref_name = ref_columns.get("prediction") or ref_columns.get("target_column")
    prod_name = prod_columns.get("prediction") or (production.columns[0] if len(production.columns) == 1 else None)
    if ref_name and prod_name and ref_name in reference.columns and ref_name != prod_name:
        return reference.rename(columns={ref_name: prod_name})[[prod_name]]
    return reference


def _distribution(data_type: str, reference: pd.Series, production: pd.Series) -> dict:
    try:
        if data_type == "Numerical":
            edges, ref, prod = drift_metrics.histograms(reference, production)
            return {"data_type": data_type, "edges": edges.tolist(), "reference": ref.tolist(),
                    "production": prod.tolist()}
        categories, ref, prod = drift_metrics.category_counts(reference, production)
        return {"data_type": data_type, "categories": categories, "reference": ref.tolist(),
                "production": prod.tolist()}
    except ValueError:
        return {"data_type": data_type}


# -- alerts ---------------------------------------------------------------------------------------------
def _alert(workspace, settings: dict, job: str, breached: pd.DataFrame) -> list[str]:
    definition = settings["definition"]
    emails = (((definition.get("alertNotificationSetting") or {}).get("emailNotificationSetting") or {})
              .get("emails") or [])
    if breached.empty or not emails:
        return []
    box = workspace.folder / OUTBOX
    box.mkdir(parents=True, exist_ok=True)
    monitor = settings["schedule"]
    stamp = datetime.fromisoformat(settings["trigger_time"]).strftime("%Y%m%dT%H%M%SZ")
    written = []
    for signal, rows in breached.groupby("signal", sort=True):
        if (definition["signals"][signal].get("mode") or "Disabled") != "Enabled":
            continue  # the signal's alerts are off (alert_enabled=False)
        lines = [f"- {r.feature} ({r.data_type}): {r.metric} = {r.value:.6g}, threshold {r.threshold:g}"
                 for r in rows.itertuples()]
        message = {
            "to": list(emails),
            "subject": f"Azure Machine Learning model monitor '{monitor}': signal '{signal}' breached its thresholds",
            "body": (f"The signal '{signal}' of monitor '{monitor}' found one or more features violating metric "
                     f"thresholds in the run {job} (triggered {settings['trigger_time']}):\n" + "\n".join(lines)
                     + "\n\n(Recorded by the simulated workspace; no email was sent.)"),
            "monitor": monitor, "signal": signal, "job": job, "time": settings["trigger_time"],
            "breaches": json.loads(rows[["feature", "data_type", "metric", "value", "threshold"]].to_json(
                orient="records")),
        }
        path = box / f"{stamp}-{job}-{signal}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(message, indent=2))
        os.replace(tmp, path)
        written.append(f"{path.name} to {', '.join(emails)}")
    return written


# == what a lab reads (the simulation's stand-in for the studio's monitoring page) ======================
def _workspace_of(ml_client):
    workspace = getattr(ml_client.schedules, "_workspace", None)
    if workspace is None:
        raise TypeError("results(), outbox() and the plots read the simulated workspace: pass a client from "
                        "labkit.connect() or labkit.sim. On Azure, the monitor's results are on the studio's "
                        "Monitoring page.")
    return workspace


def _runs(ml_client, monitor_name: str) -> list[tuple[str, Path]]:
    """(job name, results folder) of every completed run of the monitor, oldest first."""
    workspace = _workspace_of(ml_client)
    ml_client.schedules.get(monitor_name)  # 404 for an unknown monitor
    state_file = workspace.folder / "schedules" / f"{monitor_name}.json"
    try:
        fired = json.loads(state_file.read_text()).get("fired", [])
    except (FileNotFoundError, json.JSONDecodeError):
        fired = []
    runs = []
    for firing in fired:
        try:
            folder = Path(references.local_output_path(workspace, firing["job"], "default")) / "outputs"
        except Exception:
            continue
        if (folder / RESULTS_CSV).is_file():
            runs.append((firing["job"], folder))
    return runs


def results(ml_client, monitor_name: str, *, latest: bool = False) -> pd.DataFrame:
    """The metrics every run of a monitor computed: one row per run, signal, feature and metric.

    Columns: ``monitor``, ``job``, ``trigger_time``, ``signal``, ``signal_type``, ``feature``,
    ``data_type``, ``metric``, ``value`` (a p-value for the two tests), ``statistic`` (the tests'
    statistic), ``threshold``, ``breached``, ``production_rows``, ``reference_rows``,
    ``window_start``, ``window_end``. ``latest=True`` keeps only the most recent run.

    This is the simulated workspace's stand-in for the monitoring page of Azure ML studio: the
    SDK has no API for monitoring results, so this function is not part of ``azure-ai-ml`` and
    does not work against Azure. Each run's file is also in its job's outputs
    (``ml_client.jobs.download(job)`` -> ``artifacts/outputs/monitoring_results.csv``).
    """
    runs = _runs(ml_client, monitor_name)
    if latest:
        runs = runs[-1:]
    frames = [pd.read_csv(folder / RESULTS_CSV) for _, folder in runs]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["breached"] = frame["breached"].astype(bool)
    return frame


def outbox(ml_client) -> pd.DataFrame:
    """The alert notifications the simulated workspace recorded (nothing was sent), oldest first:
    ``time``, ``to``, ``subject``, ``body``, ``monitor``, ``signal``, ``job``, ``breaches``.
    Simulation only: on Azure the notifications arrive by email."""
    box = _workspace_of(ml_client).folder / OUTBOX
    messages = [json.loads(p.read_text()) for p in sorted(box.glob("*.json"))] if box.is_dir() else []
    columns = ["time", "to", "subject", "body", "monitor", "signal", "job", "breaches"]
    frame = pd.DataFrame(messages, columns=columns)
    return frame.sort_values(["time", "monitor", "signal"], ignore_index=True) if not frame.empty else frame


def plot_metrics(ml_client, monitor_name: str, signal: Optional[str] = None, job: Optional[str] = None):
    """A matplotlib figure of the latest run's (or ``job``'s) metrics: one panel per signal, a bar per
    feature and metric, the threshold as a line, breaching bars in red. Simulation only (the
    studio's monitoring page draws these on Azure)."""
    import matplotlib.pyplot as plt

    frame = results(ml_client, monitor_name)
    if job:
        frame = frame[frame["job"] == job]
    elif not frame.empty:
        frame = frame[frame["job"] == frame["job"].iloc[-1]]
    if signal:
        frame = frame[frame["signal"] == signal]
    signals = list(dict.fromkeys(frame["signal"])) or ["(no runs yet)"]
    figure, axes = plt.subplots(len(signals), 1, figsize=(8, 2.6 * len(signals)), squeeze=False)
    for axis, name in zip(axes[:, 0], signals):
        rows = frame[frame["signal"] == name]
        labels = [f"{r.feature}\n{r.metric}" for r in rows.itertuples()]
        colours = ["tab:red" if b else "tab:blue" for b in rows["breached"]]
        axis.bar(range(len(rows)), rows["value"].fillna(0), color=colours)
        for position, threshold in enumerate(rows["threshold"]):
            if not pd.isna(threshold):
                axis.hlines(threshold, position - 0.4, position + 0.4, colors="black", linestyles="dashed")
        axis.set_xticks(range(len(rows)), labels, fontsize=7)
        axis.set_title(f"{monitor_name} / {name}" + (f" ({rows['signal_type'].iloc[0]})" if len(rows) else ""))
        axis.set_ylabel("value")
    figure.tight_layout()
    return figure


def plot_distribution(ml_client, monitor_name: str, signal: str, feature: str, job: Optional[str] = None):
    """A matplotlib figure comparing a feature's reference and production distributions in the latest
    run (or ``job``): the shared histogram bins, or the categories. Simulation only."""
    import matplotlib.pyplot as plt

    runs = _runs(ml_client, monitor_name)
    if job:
        runs = [r for r in runs if r[0] == job]
    if not runs:
        raise ValueError(f"Monitor '{monitor_name}' has no completed run{' ' + job if job else ''} yet.")
    data = json.loads((runs[-1][1] / RESULTS_JSON).read_text())
    found = (data.get("distributions") or {}).get(signal, {}).get(feature)
    if not found or "reference" not in found:
        raise ValueError(f"No distribution of feature '{feature}' in signal '{signal}' of run {runs[-1][0]}.")
    ref = pd.Series(found["reference"], dtype=float)
    prod = pd.Series(found["production"], dtype=float)
    ref_share, prod_share = ref / max(ref.sum(), 1), prod / max(prod.sum(), 1)
    figure, axis = plt.subplots(figsize=(7, 3))
    if found["data_type"] == "Numerical":
        edges = found["edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        width = (edges[1] - edges[0]) * 0.4 if len(edges) > 1 else 0.4
        axis.bar([c - width / 2 for c in centres], ref_share, width=width, label="reference")
        axis.bar([c + width / 2 for c in centres], prod_share, width=width, label="production")
    else:
        positions = range(len(found["categories"]))
        axis.bar([p - 0.2 for p in positions], ref_share, width=0.4, label="reference")
        axis.bar([p + 0.2 for p in positions], prod_share, width=0.4, label="production")
        axis.set_xticks(list(positions), found["categories"])
    axis.set_title(f"{feature}: reference vs production ({signal})")
    axis.set_ylabel("share of rows")
    axis.legend()
    figure.tight_layout()
    return figure

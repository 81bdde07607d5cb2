"""The monitor job: one firing of a model monitor, computing its signals as the service does.

What the service does, and the simulation with it:

- The monitor job's worker (``run``) reads the data, computes each signal's metrics
  (``labkit.sim.monitoring.drift_metrics``), compares them with the thresholds, writes
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

May import: as ``labkit.sim.monitoring``.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import pandas as pd

from labkit.sim.core import references
from labkit.sim.jobs import job_state
from labkit.sim.monitoring import drift_metrics
from labkit.sim.monitoring.monitors import SETTINGS_PROPERTY

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

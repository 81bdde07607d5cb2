"""Automated ML jobs (``automl.classification`` / ``regression`` / ``forecasting``) that really search.

Stands for the service's AutoML parent job once it runs. Its worker (``run``, named in
``job_runner.JOB_TYPE_RUNNERS``) reads the data and prepares it (``data``), then searches with
FLAML over the algorithms the job allows (``algorithms``), honouring ``set_limits`` as the service
does (timeout, trial timeout, max trials, exit score, early termination after 20 trials without
improvement). Every trial FLAML evaluates becomes a child job (``<parent>_<n>``, listed by
``ml_client.jobs.list(parent_job_name=...)``) with its hyperparameters and the service's metrics
(``metrics``) in its own MLflow run; ensembles follow as the last children (``ensembles``); the
best child gets the model and the files Azure's AutoML writes beside it, and the parent names it
(``best_model``). Submission is ``submission``. A job left with nothing to try, or whose data do
not fit its settings, fails saying so.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from labkit.sim.jobs import job_state
from labkit.sim.jobs.automl.algorithms import ALGORITHMS, SEED, _flaml_learners, algorithms_to_try
from labkit.sim.jobs.automl.best_model import _finish_parent, _final_pipeline, _save_model
from labkit.sim.jobs.automl.data import (
    Plan,
    _featurizer,
    _Folds,
    _forecast_split,
    _load_table,
    _Log,
    _tabular_split,
)
from labkit.sim.jobs.automl.ensembles import _ensembles
from labkit.sim.jobs.automl.metrics import (
    PRIMARY_METRICS,
    better,
    classification_metrics,
    forecasting_metrics,
    regression_metrics,
    score_to_loss,
)
from labkit.sim.jobs.automl.runtime import featurization

# The service: "terminate if there is no score improvement in the last 20 iterations".
EARLY_TERMINATION_ITERATIONS = 20
# The service's default timeout for an AutoML job when set_limits gives none: six days.
DEFAULT_TIMEOUT_MINUTES = 6 * 24 * 60
DEFAULT_MAX_TRIALS = 1000


def _minutes(duration: Optional[str], default: float) -> float:
    if not duration:
        return default
    from isodate import parse_duration

    return parse_duration(duration).total_seconds() / 60.0


class _Search:
    """One AutoML parent job's search: data, validation, FLAML, children, best model."""

    def __init__(self, workspace, name: str):
        self.workspace = workspace
        self.name = name
        row = workspace.store.get(job_state.KIND, name)
        self.props = row.payload["properties"]
        details = self.props["taskDetails"]
        task = details["taskType"]
        self.plan = Plan(task=task, target=details["targetColumnName"],
                         metric=PRIMARY_METRICS[task][details["primaryMetric"]],
                         limits=details.get("limitSettings") or {}, training=details.get("trainingSettings") or {},
                         featurization=details.get("featurizationSettings") or {},
                         forecasting=details.get("forecastingSettings") or {}, details=details)
        self.log = _Log(job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt")
        self.children: list[dict] = []
        self.best: Optional[dict] = None
        self.started = time.time()

    # -- children ------------------------------------------------------------------------------------
    def record_child(self, algorithm: str, config: dict, metrics: dict, failed: Optional[str] = None,
                     preprocessor: str = "MinMaxScaler", learner: Optional[str] = None) -> dict:
        """A child job and its MLflow run for one evaluated pipeline (trial or ensemble); its
        parameters are the estimator's own (``learner``, FLAML's name for it, stays in here)."""
        from mlflow.tracking import MlflowClient

        from azure.ai.ml._restclient.arm_ml_service.models import JobBase

        from labkit.sim.jobs.job_runner import ARTIFACT_STORE
        from labkit.sim.core.storage import datastore_folder
        from labkit.sim.core.store import utc_now
        from labkit.sim.core.tracking import create_run_with_id

        iteration = len(self.children)
        child = f"{self.name}_{iteration}"
        status = "Failed" if failed else "Completed"
        score = metrics.get(self.plan.metric)
        tags = {"mlflow.parentRunId": self.name, "run_algorithm": algorithm, "run_preprocessor": preprocessor,
                "iteration": str(iteration), "azureml.runsource": "automl"}
        run = create_run_with_id(self.workspace.mlflow_tracking_uri, child, self.props["experimentName"], child,
                                 tags=tags)
        client = MlflowClient(tracking_uri=self.workspace.mlflow_tracking_uri)
        for key, value in sorted(config.items()):
            client.log_param(child, key, str(value)[:500])
        for key, value in sorted(metrics.items()):
            if value is not None and np.isfinite(value):
                client.log_metric(child, key, float(value))
        client.set_terminated(child, status="FAILED" if failed else "FINISHED")
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        relative = artifacts.relative_to(datastore_folder(self.workspace, ARTIFACT_STORE)).as_posix()
        payload = {"name": child, "properties": {
            "jobType": "Command", "status": status, "displayName": child,
            "command": f"(AutoML trial {iteration} of {self.name}: {preprocessor}, {algorithm})",
            "environmentId": "azureml:AzureML-AutoML@latest",
            "experimentName": self.props["experimentName"], "computeId": self.props.get("computeId"),
            "tags": {key: value for key, value in tags.items() if not key.startswith("mlflow.")},
            "properties": {"azureml.parentrunid": self.name, "run_algorithm": algorithm,
                           "run_preprocessor": preprocessor, "iteration": str(iteration),
                           "score": "" if score is None else repr(float(score)),
                           "primary_metric": self.plan.metric, "runTemplate": "automl_child",
                           "azureml.runsource": "automl"},
            "outputs": {"default": {"jobOutputType": "uri_folder", "mode": "ReadWriteMount",
                                    "uri": self.workspace.long_uri(ARTIFACT_STORE, relative)}},
            "services": {"Tracking": {"jobServiceType": "Tracking",
                                      "endpoint": self.workspace.mlflow_tracking_uri}},
        }}
        store = self.workspace.store
        with store.transaction() as db:
            store.put(db, job_state.KIND, child, "", JobBase(payload))
        folder = job_state.job_folder(self.workspace, child)
        folder.mkdir(parents=True, exist_ok=True)
        now = utc_now()
        job_state.write_runtime(self.workspace, child, start_time=now, end_time=now)
        if failed:
            (folder / "error.json").write_text(json.dumps({"message": failed}, indent=2))
        entry = {"name": child, "algorithm": algorithm, "learner": learner, "config": config, "metrics": metrics,
                 "score": score, "failed": failed, "artifacts": artifacts}
        self.children.append(entry)
        self.log(f"[{time.time() - self.started:6.1f}s] {child}: {algorithm:<22} {self.plan.metric}="
                 f"{'-' if score is None else f'{score:.4f}'}{'  FAILED: ' + failed if failed else ''}")
        if not failed and score is not None and np.isfinite(score) and (
                self.best is None or better(self.plan.metric, score, self.best["score"])):
            self.best = entry
        return entry

    # -- evaluation ----------------------------------------------------------------------------------------
    def metrics_of(self, estimator, X_val, y_val) -> dict:
        if self.plan.is_classification:
            proba = estimator.predict_proba(X_val)
            return classification_metrics(self.classes[np.asarray(y_val)], proba, self.classes)
        predictions = estimator.predict(X_val)
        if self.plan.task == "Forecasting":
            return forecasting_metrics(y_val, predictions, self.series_of(X_val), self.series_ranges)
        return regression_metrics(y_val, predictions, self.y_min, self.y_max)

    def series_of(self, X) -> np.ndarray:
        """Each featurized row's time series, read back from its one-hot series columns."""
        names = np.asarray(self.series_names)
        if len(names) == 1:
            return np.repeat(names, len(X))
        return names[np.argmax(np.asarray(X)[:, self.series_positions], axis=1)]


def _flaml_metric(search: _Search):
    """FLAML's custom-metric hook: the service's metrics of one fold, the primary one as the loss."""
    def metric(X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None,
               *args, **kwargs):
        scores = search.metrics_of(estimator, X_val, y_val)
        return score_to_loss(search.plan.metric, scores[search.plan.metric]), scores

    return metric


def run(workspace, name: str) -> None:
    """The parent job's worker: search, record the children, save the best model."""
    from labkit.sim.jobs.job_runner import wait_for_a_node

    wait_for_a_node(workspace, name)
    search = _Search(workspace, name)
    try:
        _run_search(search)
    except _UserError as error:
        search.log(f"[simulated workspace] The AutoML job failed: {error}")
        job_state.finish(workspace, name, "Failed", json.dumps({"code": "UserError", "message": str(error)},
                                                               indent=4))


def _run_search(search: _Search) -> None:  # noqa: C901  (one linear story, easier to follow whole)
    import pandas as pd
    from flaml import AutoML

    from labkit.sim.jobs.job_runner import Canceled

    plan, log, workspace, name = search.plan, search.log, search.workspace, search.name
    details = plan.details
    log(f"[simulated workspace] AutoML {plan.task.lower()} job {name}: primary metric {plan.metric}, "
        "searched with FLAML on this machine.")
    frame = _load_table(workspace, details["trainingData"])
    validation_frame = _load_table(workspace, details["validationData"]) if details.get("validationData") else None
    test_frame = _load_table(workspace, details["testData"]) if details.get("testData") else None
    for label, table in (("training_data", frame), ("validation_data", validation_frame), ("test_data", test_frame)):
        if table is not None and plan.target not in table.columns:
            raise _UserError(f"Target column '{plan.target}' is not in {label}. Its columns: "
                             f"{', '.join(map(str, table.columns))}.")
    weight = details.get("weightColumnName")
    frame = frame[frame[plan.target].notna()].reset_index(drop=True)
    if plan.task == "Forecasting":
        fs = plan.forecasting
        for column in [fs["timeColumnName"], *(fs.get("timeSeriesIdColumnNames") or [])]:
            if column not in frame.columns:
                raise _UserError(f"Column '{column}' named in the forecast settings is not in training_data.")
        frame = frame.sort_values(fs["timeColumnName"], kind="stable").reset_index(drop=True)
    if test_frame is None and details.get("testDataSize") and plan.task != "Forecasting":
        from sklearn.model_selection import train_test_split

        frame, test_frame = train_test_split(frame, test_size=float(details["testDataSize"]), random_state=SEED)
        frame, test_frame = frame.reset_index(drop=True), test_frame.reset_index(drop=True)

    X_all = frame.drop(columns=[plan.target] + ([weight] if weight else []))
    y_raw = frame[plan.target]
    if plan.is_classification:
        search.classes = np.unique(y_raw.to_numpy())
        if len(search.classes) < 2:
            raise _UserError("The target column has a single class; classification needs at least two.")
        y_all = np.searchsorted(search.classes, y_raw.to_numpy())
    else:
        y_all = pd.to_numeric(y_raw, errors="raise").to_numpy(dtype=float)
        search.y_min, search.y_max = float(np.min(y_all)), float(np.max(y_all))

    featurizer, search.featurization = _featurizer(plan, frame, log)
    algorithms, skipped = algorithms_to_try(plan.task, plan.training)
    if skipped:
        log(f"[simulated workspace] Not available in the simulation, skipped: {', '.join(skipped)} "
            "(no statistical or deep forecasting models here; see labkit/sim/jobs/automl/algorithms.py).")
    if not algorithms:
        raise _UserError(f"None of the algorithms this job allows can run in the simulated workspace "
                         f"({', '.join(skipped)}). Allow at least one of: {', '.join(ALGORITHMS[plan.task])}.")
    if plan.task == "Forecasting":
        keys = featurization.series_keys(frame, plan.forecasting.get("timeSeriesIdColumnNames")).to_numpy()
        search.series_ranges = {key: (float(np.min(y_all[keys == key])), float(np.max(y_all[keys == key])))
                                for key in np.unique(keys)}
    split = (_forecast_split(plan, frame, validation_frame) if plan.task == "Forecasting"
             else _tabular_split(plan, X_all, y_all, None if validation_frame is None else (
                 validation_frame.drop(columns=[plan.target] + ([weight] if weight else [])),
                 np.searchsorted(search.classes, validation_frame[plan.target].to_numpy()) if plan.is_classification
                 else validation_frame[plan.target].to_numpy(dtype=float))))

    # Featurize once (fit on the training rows), then hand FLAML numbers. For forecasting, every lag
    # of a row in the horizon after an origin is at or before that origin (see ForecastFeaturizer),
    # so one featurization of all the rows serves every rolling-origin fold without leaking the future.
    if plan.task == "Forecasting":
        X_fit, y_fit = featurizer.fit_transform(X_all, y_all), y_all
        # The series' one-hot columns come first (see forecast_featurizer); one series has none.
        first = featurizer.named_steps["columns"].transformers[0]
        search.series_names = list(first[1].categories[0]) if first[0] == "series" else ["__single__"]
        search.series_positions = list(range(len(search.series_names))) if first[0] == "series" else []
        if split["kind"] == "holdout":
            vf = split["validation_frame"]
            fit_args = {"X_val": featurizer.transform(vf.drop(columns=[plan.target])),
                        "y_val": vf[plan.target].to_numpy(dtype=float), "eval_method": "holdout"}
        else:
            fit_args = {"eval_method": "cv", "split_type": _Folds(split["folds"])}
    else:
        if split["kind"] == "holdout":
            X_fit = featurizer.fit_transform(split["X_train"], split["y_train"])
            y_fit = np.asarray(split["y_train"])
            fit_args = {"X_val": featurizer.transform(split["X_val"]), "y_val": np.asarray(split["y_val"]),
                        "eval_method": "holdout"}
        else:
            X_fit = featurizer.fit_transform(X_all, y_all)
            y_fit = y_all
            fit_args = {"eval_method": "cv", "split_type": _Folds(split["folds"])}
    X_fit = np.asarray(X_fit, dtype=float)
    if "X_val" in fit_args:
        fit_args["X_val"] = np.asarray(fit_args["X_val"], dtype=float)
    described = (f"{len(split['folds'])}-fold {'rolling-origin ' if plan.task == 'Forecasting' else ''}"
                 "cross-validation" if split["kind"] == "cv" else f"a validation set of {len(fit_args['y_val'])} rows")
    log(f"Data: {len(frame)} training rows, {X_fit.shape[1]} features after featurization; "
        f"validation: {described}.")

    # Limits: the service's names -> FLAML's.
    limits = plan.limits
    timeout_s = _minutes(limits.get("timeout"), DEFAULT_TIMEOUT_MINUTES) * 60.0
    trial_timeout_s = _minutes(limits.get("trialTimeout"), 0) * 60.0 or None
    max_trials = int(limits.get("maxTrials") or DEFAULT_MAX_TRIALS)
    exit_score = limits.get("exitScore")
    early = limits.get("enableEarlyTermination")
    early = True if early is None else bool(early)  # the service's default: on
    ensembles = []
    if plan.training.get("enableVoteEnsemble", True) is not False:
        ensembles.append("VotingEnsemble")
    if plan.training.get("enableStackEnsemble", True) is not False and plan.task != "Forecasting":
        ensembles.append("StackEnsemble")
    if int(limits.get("maxConcurrentTrials") or 1) > 1:
        log(f"max_concurrent_trials={limits['maxConcurrentTrials']}: FLAML runs trials concurrently only on Ray "
            "or Spark, which the simulation does not use; trials run one after another.")
    # FLAML tries its learners first in the order given: the usually strongest and cheapest first.
    order = ["LightGBM", "XGBoostClassifier", "XGBoostRegressor", "RandomForest", "ExtremeRandomTrees",
             "LogisticRegression", "ElasticNet", "GradientBoosting", "DecisionTree", "LassoLars", "KNN", "SGD",
             "LinearSVM", "BernoulliNaiveBayes", "MultinomialNaiveBayes", "SVM"]
    algorithms = sorted(algorithms, key=lambda a: order.index(a) if a in order else len(order))
    learner_names = {learner: service for service in algorithms for learner in ALGORITHMS[plan.task][service]}
    trial_budget = max(1, max_trials - len(ensembles)) if max_trials > 2 else max_trials
    elapsed = time.time() - search.started
    reserve = min(0.15 * timeout_s, 60.0)  # ensembles and the final model, inside the job's timeout
    time_budget = max(5.0, timeout_s - elapsed - reserve)

    state = {"since_improvement": 0, "stop": None}
    flaml_task = "classification" if plan.is_classification else "regression"

    class _AutoML(AutoML):
        """FLAML's AutoML, reporting each trial as a child job and stopping as the service does."""

        def _log_trial(self, search_state, estimator):  # called by FLAML after every trial
            super()._log_trial(search_state, estimator)
            scores = search_state.metric_for_logging if isinstance(search_state.metric_for_logging, dict) else {}
            params = _hyperparameters(self, estimator, search_state.config)
            loss = search_state.val_loss
            failed = None if loss is not None and np.isfinite(loss) and scores else "the trial produced no score"
            previous_best = search.best["score"] if search.best else None
            search.record_child(learner_names.get(estimator, estimator), params, scores, failed, learner=estimator)
            improved = search.best is not None and search.best["score"] != previous_best
            state["since_improvement"] = 0 if improved else state["since_improvement"] + 1
            if job_state.status_of(workspace, name) == "CancelRequested":
                raise Canceled()
            if exit_score is not None and search.best is not None and not better(
                    plan.metric, float(exit_score), search.best["score"]):
                state["stop"] = f"exit_score {exit_score} reached"
            elif early and state["since_improvement"] >= EARLY_TERMINATION_ITERATIONS:
                state["stop"] = f"early termination: no improvement in the last {EARLY_TERMINATION_ITERATIONS} trials"
            if state["stop"]:
                self._state.time_budget = 0  # FLAML's loop ends when its time budget is spent

    automl = _AutoML()
    for learner, cls in _flaml_learners().items():
        automl.add_learner(learner, cls)
    log(f"Search: up to {trial_budget} trials in {time_budget:.0f}s over {', '.join(algorithms)}.")
    try:
        automl.fit(X_train=X_fit, y_train=y_fit, task=flaml_task, metric=_flaml_metric(search),
                   estimator_list=list(learner_names), time_budget=time_budget, max_iter=trial_budget,
                   train_time_limit=trial_timeout_s, n_jobs=1, seed=SEED, verbose=0, log_type="all",
                   retrain_full=False, model_history=True, mlflow_logging=False, skip_transform=True,
                   early_stop=early, keep_search_state=True, **fit_args)
    except Canceled:
        raise
    if state["stop"]:
        log(f"Search stopped: {state['stop']}.")
    if search.best is None:
        raise _UserError("No trial completed within the limits; raise timeout_minutes or max_trials.")

    # Ensembles: the best model of each learner, combined (the service's last iterations).
    if ensembles and len(search.children) < max_trials:
        deadline = search.started + timeout_s
        _ensembles(search, automl, ensembles, X_fit, y_fit, fit_args, max_trials, learner_names, deadline)

    best = search.best
    log(f"Best: {best['name']} ({best['algorithm']}) {plan.metric}={best['score']:.4f}.")
    pipeline = _final_pipeline(search, automl, featurizer, best, X_all, y_all, frame)
    _save_model(search, pipeline, best, X_all)
    if test_frame is not None:
        X_test = test_frame.drop(columns=[plan.target] + ([weight] if weight and weight in test_frame else []))
        if plan.is_classification:
            scores = classification_metrics(test_frame[plan.target].to_numpy(), pipeline.predict_proba(X_test),
                                            search.classes)
        elif plan.task == "Forecasting":
            keys = featurization.series_keys(test_frame, plan.forecasting.get("timeSeriesIdColumnNames")).to_numpy()
            scores = forecasting_metrics(test_frame[plan.target], pipeline.predict(X_test), keys,
                                         search.series_ranges)
        else:
            scores = regression_metrics(test_frame[plan.target], pipeline.predict(X_test), search.y_min, search.y_max)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
        for key, value in scores.items():
            if np.isfinite(value):
                client.log_metric(best["name"], f"test_{key}", value)
        log(f"Test data: {plan.metric}={scores.get(plan.metric, float('nan')):.4f} (logged on {best['name']} "
            "as test_<metric>).")
    _finish_parent(search)


def _hyperparameters(automl, learner: str, config: Optional[dict]) -> dict:
    """A trial's hyperparameters as its estimator's constructor takes them: FLAML's learner turns
    its search variables (such as ``log_max_bin``) into the library's parameters."""
    config = {key: value for key, value in (config or {}).items() if key != "FLAML_sample_size"}
    try:
        params = automl._state.learner_classes[learner](task=automl._state.task, **config).params
    except Exception:  # a configuration the learner refuses: the trial failed; keep what it tried
        params = config
    return {key: value for key, value in params.items() if key not in ("n_jobs", "task")}


class _UserError(Exception):
    """A problem with the job's data or settings that the service reports when the job runs."""

"""Simulated AutoML against a plain baseline and against FLAML used directly, one time budget each.

    .venv/bin/python benchmarks/bench_automl.py [--budget-minutes 1]

On the book's classification data (diabetes) and forecasting data (retail demand): the best
primary metric each approach reaches, its score on held-out rows, and the wall time; plus the
wall time of a lab-sized AutoML run. Prints a table and writes ``_build/benchmarks/automl.json``.
Not a test: the numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from labkit.sim.jobs.automl import best_model as automl_best_model, metrics as automl_metrics  # noqa: E402

MLTABLE = "paths:\n  - file: ./data.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n" \
          "      header: all_files_same_headers\n"
HORIZON = 14
SEED = 7


def _table(folder: Path, frame: pd.DataFrame) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "data.csv", index=False)
    (folder / "MLTable").write_text(MLTABLE)
    return str(folder)


def _wait(ml_client, name: str) -> float:
    start = time.time()
    while ml_client.jobs.get(name).status not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.5)
    return time.time() - start


def _best_model(ml_client, job_name: str):
    import mlflow

    best = ml_client.jobs.get(job_name).tags[automl_best_model.BEST_CHILD_TAG]
    mlflow.set_tracking_uri(ml_client.workspaces.get().mlflow_tracking_uri)
    try:
        score = mlflow.get_run(best).data.metrics
        model = mlflow.sklearn.load_model(f"runs:/{best}/outputs/mlflow-model")
    finally:
        mlflow.set_tracking_uri(None)
    return best, score, model


def classification(ml_client, work: Path, budget_min: float) -> list[dict]:
    from azure.ai.ml import Input, automl
    from flaml import AutoML
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = pd.read_csv(REPO / "data" / "diabetes.csv").drop(columns=["patient_id"])
    train, test = train_test_split(data, train_size=3000, test_size=3000, random_state=SEED,
                                   stratify=data["diabetic"])
    X, y = train.drop(columns=["diabetic"]), train["diabetic"].to_numpy()
    X_test, y_test = test.drop(columns=["diabetic"]), test["diabetic"].to_numpy()
    rows = []

    def auc(proba) -> float:
        return automl_metrics.classification_metrics(y_test, proba, np.array([0, 1]))["AUC_weighted"]

    start = time.time()
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = cross_val_score(baseline, X, y, cv=3, scoring="roc_auc").mean()
    baseline.fit(X, y)
    rows.append({"data": "diabetes (classification)", "approach": "scikit-learn logistic regression",
                 "metric": "AUC_weighted", "validation": cv, "held_out": auc(baseline.predict_proba(X_test)),
                 "wall_s": time.time() - start, "trials": 1})

    start = time.time()
    direct = AutoML()
    direct.fit(X_train=X.to_numpy(float), y_train=y, task="classification", metric="roc_auc",
               time_budget=budget_min * 60, eval_method="cv", n_splits=3, seed=SEED, verbose=0,
               mlflow_logging=False)
    rows.append({"data": "diabetes (classification)", "approach": "FLAML directly", "metric": "AUC_weighted",
                 "validation": 1 - direct.best_loss, "held_out": auc(direct.predict_proba(X_test.to_numpy(float))),
                 "wall_s": time.time() - start, "trials": len(direct.config_history) or None})

    job = automl.classification(training_data=Input(type="mltable", path=_table(work / "diabetes", train)),
                                target_column_name="diabetic", primary_metric="AUC_weighted",
                                n_cross_validations=3, experiment_name="bench-automl")
    job.set_limits(timeout_minutes=budget_min)
    start = time.time()
    name = ml_client.jobs.create_or_update(job).name
    _wait(ml_client, name)
    wall = time.time() - start
    best, metrics, model = _best_model(ml_client, name)
    rows.append({"data": "diabetes (classification)", "approach": "simulated AutoML job", "metric": "AUC_weighted",
                 "validation": metrics["AUC_weighted"], "held_out": auc(model.predict_proba(X_test)),
                 "wall_s": wall, "trials": len(list(ml_client.jobs.list(parent_job_name=name)))})
    return rows


def forecasting(ml_client, work: Path, budget_min: float) -> list[dict]:
    from azure.ai.ml import Input, automl
    from flaml import AutoML

    from labkit.sim.jobs.automl.runtime.featurization import forecast_featurizer

    data = pd.read_csv(REPO / "data" / "retail_demand.csv", parse_dates=["date"])
    cutoff = data["date"].max() - pd.Timedelta(days=HORIZON)
    train, test = data[data["date"] <= cutoff].copy(), data[data["date"] > cutoff].copy()
    keys_test = (test["store_id"] + "|" + test["product"]).to_numpy()
    ranges = {key: (float(g.min()), float(g.max()))
              for key, g in train.groupby(train["store_id"] + "|" + train["product"])["units_sold"]}

    def nrmse(predictions) -> float:
        return automl_metrics.forecasting_metrics(test["units_sold"], predictions, keys_test, ranges)[
            "normalized_root_mean_squared_error"]

    rows = []
    start = time.time()
    # Seasonal naive: each day of the horizon repeats the same weekday of the last training week.
    last_week = train[train["date"] > cutoff - pd.Timedelta(days=7)]
    lookup = last_week.set_index([last_week["date"].dt.dayofweek, "store_id", "product"])["units_sold"]
    naive = lookup.reindex(pd.MultiIndex.from_arrays([test["date"].dt.dayofweek, test["store_id"],
                                                      test["product"]])).to_numpy(float)
    rows.append({"data": "retail demand (forecasting, 14 days)", "approach": "seasonal naive (last week)",
                 "metric": "normalized_root_mean_squared_error", "validation": None, "held_out": nrmse(naive),
                 "wall_s": time.time() - start, "trials": 1})

    start = time.time()
    # The simulation's own forecasting features (imputed and scaled, as its pipeline feeds them).
    features = forecast_featurizer(train, train["units_sold"], "date", ["store_id", "product"], horizon=HORIZON,
                                   lags=(1, 7), window=7, exclude=("units_sold",))
    X_train = features.fit_transform(train.drop(columns=["units_sold"]), train["units_sold"])
    X_test = features.transform(test.drop(columns=["units_sold"]))
    direct = AutoML()
    direct.fit(X_train=X_train, y_train=train["units_sold"].to_numpy(float), task="regression", metric="rmse",
               time_budget=budget_min * 60, eval_method="holdout", split_type="time", seed=SEED, verbose=0,
               mlflow_logging=False)
    rows.append({"data": "retail demand (forecasting, 14 days)", "approach": "FLAML directly (same features)",
                 "metric": "normalized_root_mean_squared_error", "validation": None,
                 "held_out": nrmse(direct.predict(X_test)), "wall_s": time.time() - start,
                 "trials": len(direct.config_history) or None})

    job = automl.forecasting(training_data=Input(type="mltable", path=_table(work / "retail", train)),
                             target_column_name="units_sold", primary_metric="normalized_root_mean_squared_error",
                             n_cross_validations=3, experiment_name="bench-automl")
    job.set_forecast_settings(time_column_name="date", forecast_horizon=HORIZON, frequency="D",
                              time_series_id_column_names=["store_id", "product"], target_lags=[1, 7],
                              target_rolling_window_size=7)
    job.set_limits(timeout_minutes=budget_min)
    start = time.time()
    name = ml_client.jobs.create_or_update(job).name
    _wait(ml_client, name)
    wall = time.time() - start
    best, metrics, model = _best_model(ml_client, name)
    future = test.drop(columns=["units_sold"]).copy()
    future["on_promotion"] = future["on_promotion"].astype(bool)
    future["is_holiday"] = future["is_holiday"].astype(bool)
    rows.append({"data": "retail demand (forecasting, 14 days)", "approach": "simulated AutoML job",
                 "metric": "normalized_root_mean_squared_error",
                 "validation": metrics["normalized_root_mean_squared_error"], "held_out": nrmse(model.predict(future)),
                 "wall_s": wall, "trials": len(list(ml_client.jobs.list(parent_job_name=name)))})
    return rows


def lab_sized_run(ml_client, work: Path) -> dict:
    """What lab L2.4 runs: 1,000 rows, six trials, a one-minute limit."""
    from azure.ai.ml import Input, automl

    data = pd.read_csv(REPO / "data" / "diabetes.csv").head(1000)
    job = automl.classification(training_data=Input(type="mltable", path=_table(work / "lab", data)),
                                target_column_name="diabetic", primary_metric="AUC_weighted",
                                n_cross_validations=3, experiment_name="bench-automl-lab")
    job.set_limits(timeout_minutes=1, max_trials=6)
    start = time.time()
    name = ml_client.jobs.create_or_update(job).name
    _wait(ml_client, name)
    return {"rows": 1000, "max_trials": 6, "timeout_minutes": 1, "wall_s": time.time() - start,
            "status": ml_client.jobs.get(name).status,
            "children": len(list(ml_client.jobs.list(parent_job_name=name)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    from labkit import sim

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ml_client = sim.connect(root=work / "workspaces")
        try:
            rows = classification(ml_client, work, args.budget_minutes)
            rows += forecasting(ml_client, work, args.budget_minutes)
            lab = lab_sized_run(ml_client, work)
        finally:
            sim.deactivate()
    print(f"\nAutoML, one budget of {args.budget_minutes:g} min each ({os.cpu_count()} CPUs, "
          f"{platform.python_version()})\n")
    print(f"{'data':<38} {'approach':<34} {'metric':<36} {'validation':>10} {'held out':>9} {'trials':>7} "
          f"{'wall s':>7}")
    for r in rows:
        validation = "-" if r["validation"] is None else f"{r['validation']:.4f}"
        print(f"{r['data']:<38} {r['approach']:<34} {r['metric']:<36} {validation:>10} {r['held_out']:>9.4f} "
              f"{r['trials'] or '-':>7} {r['wall_s']:>7.1f}")
    print(f"\nLab-sized run ({lab['rows']} rows, max_trials {lab['max_trials']}, timeout {lab['timeout_minutes']} min): "
          f"{lab['status']}, {lab['children']} children, {lab['wall_s']:.1f} s from submission to the end")
    out = REPO / "_build" / "benchmarks" / "automl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget_minutes": args.budget_minutes, "cpus": os.cpu_count(),
                               "python": platform.python_version(), "rows": rows, "lab_sized_run": lab},
                              indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

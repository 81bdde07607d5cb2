"""Train the retail demand forecaster: one model for every store and product (capstone, lab C1.1).

    python train.py --data FOLDER [--algorithm LightGBM] [--loss poisson] [--n-estimators 400]
        [--log-every 25] [--learning-rate 0.05] [--num-leaves 15] [--min-child-samples 100]
        [--max-features 0.6] [--min-samples-leaf 10] [--train-end YYYY-MM-DD]
        [--validation-days 14] [--seed 7] [--model-output outputs/model]

Arguments

  --data               a folder of CSV files (read recursively) with the columns of the course's
                       retail_demand.csv: date, store_id, product, units_sold, price, on_promotion,
                       is_holiday. The lab's `retail-sales-lake` uri_folder asset holds one per store.
  --algorithm          the model family, by AutoML's names: LightGBM, RandomForest or
                       ExtremeRandomTrees (default LightGBM).
  --loss               squared_error or poisson (default poisson): LightGBM's objective ("regression"
                       or "poisson"), the forests' split criterion.
  --n-estimators       boosting rounds (LightGBM) or trees (the forests); default 400.
  --log-every          trees per logged interval (default 25); each interval is one value of the
                       primary metric, which is what a sweep's early-termination policy counts.
  --learning-rate, --num-leaves, --min-child-samples
                       LightGBM only (defaults 0.05, 15, 100).
  --max-features, --min-samples-leaf
                       the forests only: share of the features tried at each split, and the
                       smallest leaf (defaults 0.6, 10).
  --train-end          ignore rows after this date (default: use them all), to retrain "as of" a day.
  --validation-days    the last N days of the data are held out to validate (default 14, the
                       forecast horizon of the capstone).
  --seed               seed of the model (default 7).
  --model-output       where the MLflow model is saved (default outputs/model; Azure ML uploads
                       ./outputs with the job's artifacts, so the model can be registered from
                       azureml://jobs/<job>/outputs/artifacts/paths/outputs/model/).

What it does. It reads the sales, holds out the last `--validation-days` days, and grows the
model `--log-every` trees at a time; after each block it logs the validation
`normalized_root_mean_squared_error` (the capstone's primary metric, defined as AutoML defines
it: RMSE divided by each series' range in the training rows, averaged over the store x product
series). At the end it logs the final validation metrics (`validation_*`), refits the same
configuration on every row up to the end of the data, so the saved model has seen the latest
weeks, and saves it as an MLflow model with a signature (and deliberately no input example) and
`validation_by_store.json` (each store's validation error) beside its MLmodel file.

The model. Input: a table with the columns `date` (text, YYYY-MM-DD), `store_id`, `product`
(text), `price` (float), `on_promotion`, `is_holiday` (0 or 1): everything known ahead for a day
of sale, so it forecasts any future day without recent sales. Output: the forecast of
`units_sold` for each row (a float). It is a scikit-learn pipeline of standard parts only
(calendar features from pandas, one-hot series identity, the estimator), pickled with
cloudpickle, so it loads where scikit-learn, pandas and LightGBM are installed, without this file.

Every MLflow call happens inside one `with mlflow.start_run():`; in an Azure ML job that block
continues the job's own run, so the script runs unchanged in a job, a sweep trial, a pipeline
step or on a laptop (where it logs to ./mlruns).
"""
from __future__ import annotations

import argparse
import json
import operator
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "units_sold"
TIME = "date"
SERIES = ["store_id", "product"]
KNOWN_AHEAD = ["price", "on_promotion", "is_holiday"]
INPUT_COLUMNS = [TIME, *SERIES, *KNOWN_AHEAD]
CALENDAR_PARTS = ("dayofweek", "dayofyear", "month", "year")
PRIMARY_METRIC = "normalized_root_mean_squared_error"
FAMILIES = ("LightGBM", "RandomForest", "ExtremeRandomTrees")
# What the saved model needs to load, pinned to the versions installed where it was trained.
# Named here, MLflow need not infer them (which loads the model again in a new process).
MODEL_PACKAGES = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy", "lightgbm")


def whole_number(text: str) -> int:
    """An integer argument; a sweep may send a whole number written as a float ("31.0")."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of sales CSV files")
    parser.add_argument("--algorithm", choices=FAMILIES, default="LightGBM")
    parser.add_argument("--loss", choices=("squared_error", "poisson"), default="poisson")
    parser.add_argument("--n-estimators", type=whole_number, default=400)
    parser.add_argument("--log-every", type=whole_number, default=25)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--num-leaves", type=whole_number, default=15)
    parser.add_argument("--min-child-samples", type=whole_number, default=100)
    parser.add_argument("--max-features", type=float, default=0.6)
    parser.add_argument("--min-samples-leaf", type=whole_number, default=10)
    parser.add_argument("--train-end", default=None, help="ignore rows after this date (YYYY-MM-DD)")
    parser.add_argument("--validation-days", type=whole_number, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-output", default=str(Path("outputs") / "model"))
    return parser.parse_args(argv)


# -- data --------------------------------------------------------------------------------------
def read_sales(folder: str, train_end: str | None = None) -> pd.DataFrame:
    """Every CSV under ``folder``, in one table sorted by date and series."""
    files = sorted(Path(folder).rglob("*.csv"))
    if not files:
        raise SystemExit(f"no CSV files under {folder}")
    sales = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing = set(INPUT_COLUMNS + [TARGET]) - set(sales.columns)
    if missing:
        raise SystemExit(f"the sales files lack the columns {sorted(missing)}")
    if train_end:
        sales = sales[sales[TIME] <= train_end]
    return sales.sort_values([TIME, *SERIES], kind="stable").reset_index(drop=True)


def split_validation(sales: pd.DataFrame, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows before the last ``days`` days, the last ``days`` days)."""
    dates = pd.to_datetime(sales[TIME])
    start = dates.max() - pd.Timedelta(days=days - 1)
    return sales[dates < start], sales[dates >= start]


def series_keys(frame: pd.DataFrame) -> np.ndarray:
    return frame[SERIES].astype(str).agg("|".join, axis=1).to_numpy()


def series_ranges(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Each series' (smallest, largest) target in ``frame``: what the normalized errors divide by."""
    grouped = frame.assign(_key=series_keys(frame)).groupby("_key")[TARGET]
    return {key: (float(low), float(high)) for key, low, high in zip(grouped.min().index, grouped.min(), grouped.max())}


# -- metrics -----------------------------------------------------------------------------------
def forecast_metrics(actual, forecast, keys, ranges) -> dict[str, float]:
    """Forecast errors as AutoML reports them ("Evaluate automated machine learning experiment
    results"): the normalized errors are macro averages (each series' error divided by that
    series' range in the training data, then averaged over the series); MAE, RMSE and MAPE are
    taken over all rows. MAPE skips rows whose actual value is 0 (a closed store)."""
    actual, forecast, keys = np.asarray(actual, float), np.asarray(forecast, float), np.asarray(keys)
    error = forecast - actual
    nrmse, nmae = [], []
    for key in np.unique(keys):
        rows = keys == key
        low, high = ranges.get(key, (actual[rows].min(), actual[rows].max()))
        spread = (high - low) or 1.0
        nrmse.append(np.sqrt(np.mean(error[rows] ** 2)) / spread)
        nmae.append(np.mean(np.abs(error[rows])) / spread)
    sold = actual > 0
    return {
        "normalized_root_mean_squared_error": float(np.mean(nrmse)),
        "normalized_mean_absolute_error": float(np.mean(nmae)),
        "root_mean_squared_error": float(np.sqrt(np.mean(error ** 2))),
        "mean_absolute_error": float(np.mean(np.abs(error))),
        "mean_absolute_percentage_error": float(np.mean(np.abs(error[sold]) / actual[sold]) * 100),
        "bias_percent": float(error.sum() / actual.sum() * 100),
    }


def errors_by_store(frame: pd.DataFrame, forecast) -> dict:
    """Each store's validation error: rows, mean units, MAE, and MAPE, WAPE and bias in percent."""
    report = {}
    for store, rows in frame.assign(_forecast=np.asarray(forecast, float)).groupby("store_id"):
        actual, predicted = rows[TARGET].to_numpy(float), rows["_forecast"].to_numpy()
        sold = actual > 0
        report[store] = {
            "rows": int(len(rows)),
            "mean_units": round(float(actual.mean()), 2),
            "mae": round(float(np.mean(np.abs(predicted - actual))), 3),
            "mape": round(float(np.mean(np.abs(predicted[sold] - actual[sold]) / actual[sold]) * 100), 3),
            "wape": round(float(np.abs(predicted - actual).sum() / actual.sum() * 100), 3),
            "bias_percent": round(float((predicted - actual).sum() / actual.sum() * 100), 3),
        }
    return report


# -- the model ---------------------------------------------------------------------------------
def feature_pipeline():
    """Raw columns -> numbers, from standard parts only (so the pickle needs no code of ours):
    calendar parts of the date, the series' identity one-hot, the known-ahead columns as given."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    parts = [(part, make_pipeline(FunctionTransformer(operator.attrgetter(f"dt.{part}")),
                                  FunctionTransformer(np.expand_dims, kw_args={"axis": 1})))
             for part in CALENDAR_PARTS]
    calendar = make_pipeline(FunctionTransformer(pd.to_datetime), FeatureUnion(parts))
    return ColumnTransformer([
        ("calendar", calendar, TIME),
        ("series", OneHotEncoder(handle_unknown="ignore", sparse_output=False), SERIES),
        ("known_ahead", "passthrough", KNOWN_AHEAD),
    ], sparse_threshold=0.0)


def estimator(args, n_estimators: int):
    if args.algorithm == "LightGBM":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            objective="poisson" if args.loss == "poisson" else "regression",
            n_estimators=n_estimators, learning_rate=args.learning_rate, num_leaves=args.num_leaves,
            min_child_samples=args.min_child_samples, random_state=args.seed, n_jobs=1, verbose=-1)
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    family = RandomForestRegressor if args.algorithm == "RandomForest" else ExtraTreesRegressor
    return family(n_estimators=n_estimators, criterion=args.loss, max_features=args.max_features,
                  min_samples_leaf=args.min_samples_leaf, random_state=args.seed, n_jobs=1)


def grow(args, X_train, y_train, X_val, on_interval):
    """Fit the estimator on featurized rows, calling ``on_interval(trees, validation forecast)``
    every ``--log-every`` trees, so a sweep's policy can stop a weak trial part way."""
    every = max(1, args.log_every)
    if args.algorithm == "LightGBM":
        model = estimator(args, args.n_estimators)

        def after_iteration(env):  # a LightGBM callback: env.iteration counts from 0
            done = env.iteration + 1
            if done % every == 0 or done == env.end_iteration:
                on_interval(done, env.model.predict(X_val, num_iteration=done))

        return model.fit(X_train, y_train, callbacks=[after_iteration])
    # warm_start keeps the trees already grown, so each fit() below adds one block of trees.
    model = estimator(args, 0).set_params(warm_start=True)
    while model.n_estimators < args.n_estimators:
        model.n_estimators = min(model.n_estimators + every, args.n_estimators)
        model.fit(X_train, y_train)
        on_interval(model.n_estimators, model.predict(X_val))
    return model


def pins() -> list[str]:
    found = []
    for package in MODEL_PACKAGES:
        for name in (package, f"{package}-skinny") if package == "mlflow" else (package,):
            try:
                found.append(f"{name}=={metadata.version(name)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def main(argv=None):
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.pipeline import Pipeline

    args = parse_args(argv)
    sales = read_sales(args.data, args.train_end)
    train, validation = split_validation(sales, args.validation_days)
    ranges = series_ranges(train)
    keys = series_keys(validation)
    print(f"rows: {len(sales)} ({sales[TIME].min()} to {sales[TIME].max()}); validation: "
          f"{validation[TIME].min()} to {validation[TIME].max()}, {len(validation)} rows", flush=True)

    features = feature_pipeline().fit(train[INPUT_COLUMNS])
    X_train, X_val = features.transform(train[INPUT_COLUMNS]), features.transform(validation[INPUT_COLUMNS])
    y_train, y_val = train[TARGET].to_numpy(float), validation[TARGET].to_numpy(float)
    family_params = ({"learning_rate": args.learning_rate, "num_leaves": args.num_leaves,
                      "min_child_samples": args.min_child_samples} if args.algorithm == "LightGBM"
                     else {"max_features": args.max_features, "min_samples_leaf": args.min_samples_leaf})

    with mlflow.start_run():
        mlflow.log_params({"algorithm": args.algorithm, "loss": args.loss, "n_estimators": args.n_estimators,
                           **family_params, "seed": args.seed, "rows": len(sales),
                           "data_end": sales[TIME].max(), "validation_days": args.validation_days})

        def log_interval(trees, forecast):
            score = forecast_metrics(y_val, forecast, keys, ranges)[PRIMARY_METRIC]
            # One value per block of trees: the intervals an early-termination policy counts.
            mlflow.log_metric(PRIMARY_METRIC, score, step=trees)
            print(f"trees: {trees:4d}  {PRIMARY_METRIC}: {score:.5f}", flush=True)

        model = grow(args, X_train, y_train, X_val, log_interval)
        forecast = model.predict(X_val)
        final = forecast_metrics(y_val, forecast, keys, ranges)
        mlflow.log_metrics({f"validation_{name}": value for name, value in final.items()})
        print("  ".join(f"{name}: {value:.4f}" for name, value in final.items()), flush=True)

        # The same configuration, refitted on every row: the latest weeks matter most to a forecast.
        pipeline = Pipeline([("features", feature_pipeline()), ("model", estimator(args, args.n_estimators))])
        pipeline.fit(sales[INPUT_COLUMNS], sales[TARGET].to_numpy(float))

        output = Path(args.model_output)
        shutil.rmtree(output, ignore_errors=True)  # a second run on a laptop
        example = sales[INPUT_COLUMNS].tail(3).reset_index(drop=True)
        # Pickled with cloudpickle rather than MLflow's newer skops format, which refuses the
        # estimators' types unless they are listed as trusted and which older MLflow cannot read.
        # No input example: a no-code deployment reads it back with pandas, which would turn the
        # column named `date` into datetimes that the signature (text) refuses; the signature says enough.
        mlflow.sklearn.save_model(
            pipeline, str(output), signature=infer_signature(example, pipeline.predict(example)),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=pins())
        report = {"validation_window": [validation[TIME].min(), validation[TIME].max()],
                  "metric_definitions": "mae in units; mape, wape and bias_percent in percent of units sold",
                  "overall": {name: round(value, 5) for name, value in final.items()},
                  "by_store": errors_by_store(validation, forecast)}
        (output / "validation_by_store.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"saved the model to {output}", flush=True)


if __name__ == "__main__":
    main()

"""Train the retail demand forecaster of capstone lab C1.2 on the sales in the data lake.

The model forecasts the units one store sells of one product on one day from what is known
about that day in advance. A request row has the columns of ``FEATURES``: the day (``date``,
text ``YYYY-MM-DD``), the store, the product, the shelf price, whether the product is on
promotion and whether the day is a holiday: the same input as the model lab C1.1 registers,
so either model serves this lab's requests. Inside, the model turns the date into calendar
parts (day of the week, month, year) and uses no lagged sales, so a store manager's request
needs no history and the nightly job needs only the coming days' price and promotion plan.

Reads every CSV file under ``--sales`` (a folder, one file per store, as the lake holds them;
or one CSV file), keeps the days up to ``--cutoff``, fits on all but the last ``--test-days``
of those and tests on the rest, and writes two outputs: the model that was tested, as an
MLflow model (so it deploys with no scoring script), and ``metrics.json`` with the held-out
errors, overall and per store. In a job, the metrics also go to the job's MLflow run. The lab
imports ``FEATURES``, ``features`` and ``wape``.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "units_sold"
SERIES = ["store_id", "product"]
KNOWN_AHEAD = ["price", "on_promotion", "is_holiday"]
FEATURES = ["date", *SERIES, *KNOWN_AHEAD]  # the columns of a request, in this order


def read_sales(path) -> pd.DataFrame:
    """The sales in a CSV file, or in every CSV file under a folder, as one table."""
    path = Path(path)
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"No CSV file under {path}")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def features(days: pd.DataFrame) -> pd.DataFrame:
    """The request columns of rows with a ``date``, with the types a request carries."""
    return pd.DataFrame({
        "date": pd.to_datetime(days["date"]).dt.strftime("%Y-%m-%d"),
        "store_id": days["store_id"].astype(str),
        "product": days["product"].astype(str),
        "price": days["price"].astype("float64"),
        "on_promotion": days["on_promotion"].astype("int64"),
        "is_holiday": days["is_holiday"].astype("int64"),
    }).reset_index(drop=True)


def calendar_parts(dates: pd.DataFrame) -> np.ndarray:
    """Day of the week (Monday 0), month and year of a one-column table of dates."""
    when = pd.to_datetime(dates.iloc[:, 0])
    return np.column_stack([when.dt.dayofweek, when.dt.month, when.dt.year]).astype("float64")


def new_model(seed: int = 0):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    prepare = ColumnTransformer([
        ("calendar", FunctionTransformer(calendar_parts), ["date"]),
        ("series", OneHotEncoder(handle_unknown="ignore", sparse_output=False), SERIES),
        ("known_ahead", "passthrough", KNOWN_AHEAD),
    ])
    # Demand is a product of factors (store size x product x weekday x season x promotion x
    # growth): a Poisson loss fits the log of the expected count, so the factors add up.
    boosted = HistGradientBoostingRegressor(loss="poisson", max_iter=100, learning_rate=0.15, max_leaf_nodes=15,
                                            early_stopping=False, random_state=seed)
    return Pipeline([("prepare", prepare), ("boost", boosted)])


def wape(actual, forecast) -> float:
    """Weighted absolute percentage error: total absolute error over total units sold."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    return float(np.abs(actual - forecast).sum() / max(actual.sum(), 1.0))


def train(sales: pd.DataFrame, cutoff: str, test_days: int = 28):
    """The model, its held-out metrics, and sample inputs for the signature.

    The model is fitted on the days up to ``cutoff`` except the last ``test_days``, and tested on
    those: the version that is registered is exactly the one that was measured.
    """
    sales = sales.assign(date=pd.to_datetime(sales["date"]))
    sales = sales[sales["date"] <= pd.Timestamp(cutoff)].sort_values(["date", *SERIES], ignore_index=True)
    test_start = sales["date"].max() - pd.Timedelta(days=test_days - 1)
    fit, test = sales[sales["date"] < test_start], sales[sales["date"] >= test_start]

    model = new_model().fit(features(fit), fit[TARGET].to_numpy(float))
    forecast = model.predict(features(test))
    actual = test[TARGET].to_numpy(float)
    stores = test["store_id"].to_numpy()
    metrics = {
        "trained_until": (test_start - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
        "rows": int(len(fit)),
        "test_from": test_start.strftime("%Y-%m-%d"),
        "test_to": sales["date"].max().strftime("%Y-%m-%d"),
        "test_mae": round(float(np.abs(actual - forecast).mean()), 3),
        "test_wape": round(wape(actual, forecast), 4),
        "test_wape_by_store": {store: round(wape(actual[stores == store], forecast[stores == store]), 4)
                               for store in sorted(set(stores))},
    }
    return model, metrics, features(test.head(50))


def save(model, metrics: dict, sample: pd.DataFrame, model_dir, metrics_dir) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    # The signature names the request's columns and types; a no-code deployment enforces it.
    # cloudpickle, not skops: the calendar step is a function of this script, which skops
    # would refuse to load, and the file must load where only the pinned packages are.
    mlflow.sklearn.save_model(
        model, str(model_dir), signature=infer_signature(sample, model.predict(sample)),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True))
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    (Path(metrics_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", required=True, help="a folder of daily sales CSV files (or one CSV file)")
    parser.add_argument("--cutoff", required=True, help="the last day to learn from, YYYY-MM-DD")
    parser.add_argument("--test-days", type=int, default=28, help="days held out at the end for testing")
    parser.add_argument("--model", required=True, help="output folder for the MLflow model")
    parser.add_argument("--metrics", required=True, help="output folder for metrics.json")
    args = parser.parse_args()

    model, metrics, sample = train(read_sales(args.sales), args.cutoff, args.test_days)
    print(json.dumps(metrics))
    if os.environ.get("MLFLOW_RUN_ID"):  # in a job: the metrics go to the job's own run
        import mlflow

        mlflow.log_metrics({"test_mae": metrics["test_mae"], "test_wape": metrics["test_wape"]})
        mlflow.log_params({"cutoff": args.cutoff, "test_days": args.test_days, "rows": metrics["rows"]})
    save(model, metrics, sample, args.model, args.metrics)

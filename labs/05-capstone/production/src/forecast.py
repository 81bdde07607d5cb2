"""The nightly forecast of capstone lab C1.2: score the coming days' plan with the registered model.

``--price-plan`` is a folder of CSV files (one per store, as the chain's planning system exports
them) with one row per store, product and day: ``date``, ``store_id``, ``product``, ``price``,
``on_promotion``, ``is_holiday``. ``--model`` is the MLflow model folder the step is given.
``--forecasts`` receives ``forecasts.csv``: the plan's rows, sorted, with ``forecast_units``, the
file the ordering system reads. The model is loaded with MLflow's generic ``pyfunc`` loader,
so the step does not care which library trained it.
"""
import argparse
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from train import features

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="folder of the MLflow model")
    parser.add_argument("--price-plan", required=True, help="folder of CSV files: the days to forecast")
    parser.add_argument("--forecasts", required=True, help="output folder for forecasts.csv")
    args = parser.parse_args()

    files = sorted(Path(args.price_plan).glob("*.csv"))
    if not files:
        raise SystemExit(f"No CSV file in the price plan folder {args.price_plan}")
    plan = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    plan = plan.sort_values(["date", "store_id", "product"], ignore_index=True)

    model = mlflow.pyfunc.load_model(args.model)
    plan["forecast_units"] = pd.Series(model.predict(features(plan))).clip(lower=0).round(1).to_numpy()

    out = Path(args.forecasts)
    out.mkdir(parents=True, exist_ok=True)
    plan.to_csv(out / "forecasts.csv", index=False)
    print(f"{len(plan)} forecasts from {len(files)} plan files, "
          f"{plan['date'].min()} to {plan['date'].max()}: {plan['forecast_units'].sum():.0f} units in all")

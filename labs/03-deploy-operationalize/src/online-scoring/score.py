"""Scoring script of the custom diabetes model (lab L3.2), run by the Azure ML inference server.

``init()`` runs once when an instance starts: it loads the model from AZUREML_MODEL_DIR, where
the deployment puts the registered model's files (a folder model under its folder name).
``run()`` runs for every request. It accepts the same body as a no-code MLflow deployment,
``{"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}``, so callers do not
notice which kind of deployment answers, and it answers bad requests with a 400 that says
what is wrong instead of a bare 500.
"""
import json
import logging
import os
from pathlib import Path

import joblib
import pandas as pd
from azureml_inference_server_http.api.aml_response import AMLResponse

FEATURES = [
    "pregnancies", "plasma_glucose_mg_dl", "diastolic_bp_mm_hg", "triceps_skinfold_mm",
    "serum_insulin_uu_ml", "bmi", "diabetes_pedigree", "age_years",
]
MODEL_FILE = Path("diabetes-pickle") / "model.pkl"  # the registered folder's name, then the file
model = None


def init():
    global model
    path = Path(os.environ["AZUREML_MODEL_DIR"]) / MODEL_FILE
    model = joblib.load(path)
    logging.info("Loaded the diabetes model from %s", path)


def bad_request(message):
    logging.warning("Refused a request: %s", message)
    return AMLResponse({"error": message, "expected_columns": FEATURES}, 400, json_str=True)


def run(raw_data):
    try:
        body = json.loads(raw_data)
    except json.JSONDecodeError as error:
        return bad_request(f"The body is not valid JSON ({error}).")
    table = body.get("input_data") if isinstance(body, dict) else None
    if not isinstance(table, dict) or not {"columns", "data"} <= set(table):
        return bad_request('Send {"input_data": {"columns": [...], "data": [[...], ...]}}.')
    missing = [name for name in FEATURES if name not in table["columns"]]
    if missing:
        return bad_request(f"Missing columns: {', '.join(missing)}.")
    try:
        frame = pd.DataFrame(table["data"], columns=table["columns"], index=table.get("index"))
        features = frame[FEATURES].astype("float64")
    except (ValueError, TypeError) as error:
        return bad_request(f"The data cannot be read as numbers in those columns ({error}).")
    predictions = model.predict(features).tolist()
    logging.info("Scored %d rows", len(predictions))
    return predictions

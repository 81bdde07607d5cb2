"""Online scoring script of lab 3.4: screens patients and logs what it saw for model monitoring.

The request body is ``{"input_data": {"columns": [...], "data": [[...], ...]}}``; the answer
is a list of 0/1 predictions, one per row. Model monitoring compares the logged inputs and
outputs with a baseline, so the script logs them in the collections the deployment's data
collector declares, ``model_inputs`` and ``model_outputs``.
"""
import json
import os
from pathlib import Path

import joblib
import pandas as pd

try:
    # On Azure the deployment's environment installs azureml-ai-monitoring for this.
    from azureml.ai.monitoring import Collector
except ImportError:
    # Not installed (as in the simulated workspace, whose front door logs both collections
    # of every deployment itself): score without logging.
    Collector = None

model = None
inputs_collector = outputs_collector = None


def init():
    global model, inputs_collector, outputs_collector
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model" / "model.joblib")
    if Collector is not None:
        inputs_collector = Collector(name="model_inputs")
        outputs_collector = Collector(name="model_outputs")


def run(raw_data):
    body = json.loads(raw_data)["input_data"]
    patients = pd.DataFrame(body["data"], columns=body["columns"])
    features = patients[list(model.feature_names_in_)].astype("float64")
    predictions = model.predict(features).tolist()
    if inputs_collector is not None:
        # Log every column the caller sent (the clinic too), and link outputs to inputs.
        context = inputs_collector.collect(patients)
        outputs_collector.collect(pd.DataFrame({"prediction": predictions}), context)
    return predictions

"""The scoring script of a no-code MLflow deployment (the simulation's own, loaded by the inference server).

On Azure, deploying an ``mlflow_model`` without a scoring script or environment makes the
service supply both. Requests carry the model's input under ``input_data`` (and, for models
that take them, inference ``params``), in the formats Azure ML documents for online endpoints:

- a pandas DataFrame in the *split* orientation: ``{"columns": [...], "index": [...], "data": [[...]]}``
  (``index`` optional);
- a tensor as a JSON list (``[[1, 2], [3, 4]]``), or named tensors as a dict of lists.

The *records* orientation and CSV bodies, which ``mlflow models serve`` also accepts, are not
accepted by Azure ML online endpoints, so they are refused here too. The model is loaded with
``mlflow.pyfunc.load_model`` from ``AZUREML_MODEL_DIR/<model folder>``, which applies the model
signature's schema as MLflow does; predictions come back as JSON lists (records for a DataFrame).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

model = None
SPLIT_KEYS = {"columns", "index", "data"}


def _model_folder() -> Path:
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (candidate / "MLmodel").is_file():
            return candidate
    raise FileNotFoundError(f"No MLmodel file under {root}")


def init():
    global model
    import mlflow.pyfunc

    folder = _model_folder()
    model = mlflow.pyfunc.load_model(str(folder))
    print(f"Loaded MLflow model from {folder} (flavors: {', '.join(model.metadata.flavors)})")


def parse(input_data):
    import numpy as np
    import pandas as pd

    if isinstance(input_data, dict) and "data" in input_data and set(input_data) <= SPLIT_KEYS:
        return pd.DataFrame(input_data["data"], columns=input_data.get("columns"), index=input_data.get("index"))
    if isinstance(input_data, dict):
        return {name: np.asarray(values) for name, values in input_data.items()}
    if isinstance(input_data, list):
        return np.asarray(input_data)
    raise ValueError("input_data must be a DataFrame in the split orientation (columns, index, data), "
                     "a list (tensor) or a dict of lists (named tensors).")


def jsonable(predictions):
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return json.loads(predictions.to_json(orient="records"))
    if isinstance(predictions, pd.Series):
        return json.loads(predictions.to_json(orient="values"))
    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, dict):
        return {k: jsonable(v) for k, v in predictions.items()}
    return predictions


def run(raw_data):
    request = json.loads(raw_data)
    if not isinstance(request, dict) or "input_data" not in request:
        raise ValueError("The request must be a JSON object with the model input under the key 'input_data'.")
    params = request.get("params")
    model_input = parse(request["input_data"])
    predictions = model.predict(model_input, params=params) if params else model.predict(model_input)
    return jsonable(predictions)

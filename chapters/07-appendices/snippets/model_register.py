# SDK v2: models.create_or_update replaces Model.register and run.register_model.
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model

model = ml_client.models.create_or_update(Model(
    name="diabetes-classifier",
    path="model/model.pkl",          # or "azureml://jobs/<job-name>/outputs/artifacts/paths/model/"
    type=AssetTypes.CUSTOM_MODEL,    # AssetTypes.MLFLOW_MODEL for a folder with an MLmodel file
    tags={"algorithm": "logistic-regression"},
))
print(model.name, model.version)

# SDK v2: inside the training script, MLflow replaces Run.get_context() and run.log(...).
# In an Azure ML job MLflow already points at the workspace; nothing else is configured.
import mlflow

with mlflow.start_run():
    mlflow.log_param("alpha", 0.5)                 # was run.tag(...) or a logged value
    mlflow.log_metric("accuracy", 0.91)            # was run.log("accuracy", 0.91)
    for epoch, loss in enumerate([0.9, 0.6, 0.4]):
        mlflow.log_metric("loss", loss, step=epoch)  # was run.log_list("loss", [...])
    mlflow.log_dict({"features": ["bmi", "age_years"]}, "features.json")  # was run.upload_file

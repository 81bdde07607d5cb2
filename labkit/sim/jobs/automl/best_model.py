"""The best child's model and the parent's record of it, as Azure's AutoML leaves them.

Stands for what the service does once the search ends: the best child's pipeline (featurization
and estimator, refitted on all the training data) written to that child's ``outputs/`` as Azure
writes it (``model.pkl``, the conda file, the scoring files, ``generated_code/`` and the MLflow
model ``mlflow-model/``, laid out by ``runtime/outputs.py``), and the parent job named after it
(the MLflow tag and job tag ``automl_best_child_run_id``, its ``best_model`` output, the
properties the studio shows) before it completes. The ``search`` these functions take is
``search._Search``, the job's search.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labkit.sim.jobs import job_state
from labkit.sim.jobs.automl.ensembles import _estimator_of
from labkit.sim.jobs.automl.runtime import outputs

BEST_CHILD_TAG = "automl_best_child_run_id"
MODEL_FOLDER = "outputs/mlflow-model"
# The curated environment Azure's AutoML trains in, and its image's short name.
AUTOML_ENVIRONMENT = "AzureML-ai-ml-automl"
AUTOML_IMAGE = "ai-ml-automl"


def _final_pipeline(search, automl, featurizer, best: dict, X_all, y_all, frame):
    """Featurization + the best estimator, refitted on all the training data, in the data's labels."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    plan = search.plan
    ensembles = getattr(search, "ensemble_models", {})
    if best["name"] in ensembles:
        estimator = clone(ensembles[best["name"]])
    else:
        # The model FLAML kept for the best trial of this learner (the best child's configuration).
        estimator = clone(_estimator_of(automl, best["learner"]))
    steps = list(featurizer.steps) if hasattr(featurizer, "steps") else [("featurize", featurizer)]
    if plan.is_classification:
        y_fit = search.classes[y_all]
        standard = np.issubdtype(search.classes.dtype, np.integer) and np.array_equal(
            search.classes, np.arange(len(search.classes)))
        if not standard and type(estimator).__module__.startswith("xgboost"):
            # XGBoost learns only the labels 0..k-1; scikit-learn's VotingClassifier encodes the
            # data's labels for its members and answers in them, so one member wraps it.
            from sklearn.ensemble import VotingClassifier

            estimator = VotingClassifier([(best["algorithm"], estimator)], voting="soft")
    else:
        y_fit = y_all
    pipeline = Pipeline([(n, clone(s)) for n, s in steps] + [("model", estimator)])
    return pipeline.fit(X_all, y_fit)


def _automl_image() -> str:
    """The image Azure's AutoML trains in, as its MLmodel metadata names it (``azureml.base_image``)."""
    from labkit.sim.assets.curated import find_curated

    environment = find_curated(AUTOML_ENVIRONMENT)
    return environment.image if environment else f"mcr.microsoft.com/azureml/curated/{AUTOML_IMAGE}:latest"


def _save_model(search, pipeline, best: dict, X_all) -> None:
    """The best child's ``outputs/``: the model, its environment, scoring files, generated
    training code and the MLflow model, as Azure's AutoML writes them (``runtime/outputs.py``)."""
    plan = search.plan
    weight = plan.details.get("weightColumnName")
    outputs.write_best_child_outputs(
        Path(best["artifacts"]) / "outputs", pipeline, X_all, child=best["name"], algorithm=best["algorithm"],
        task=plan.task, spec=search.featurization, target=plan.target,
        dropped=[plan.target] + ([weight] if weight else []), base_image=_automl_image(), log=search.log)
    search.log(f"Saved the best model: {best['name']} artifacts outputs/ (model.pkl, scoring files, "
               f"generated_code/, {MODEL_FOLDER}/).")


def _finish_parent(search) -> None:
    from mlflow.tracking import MlflowClient

    from labkit.sim.jobs.job_runner import ARTIFACT_STORE
    from labkit.sim.core.storage import datastore_folder

    workspace, name, best = search.workspace, search.name, search.best
    client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    client.set_tag(name, BEST_CHILD_TAG, best["name"])
    client.set_tag(name, "azureml.runsource", "automl")
    relative = (Path(best["artifacts"]) / MODEL_FOLDER).relative_to(
        datastore_folder(workspace, ARTIFACT_STORE)).as_posix()

    def change(props: dict) -> None:
        props.setdefault("tags", {})
        props["tags"] = {**(props["tags"] or {}), BEST_CHILD_TAG: best["name"]}
        props.setdefault("properties", {})
        props["properties"] = {**(props["properties"] or {}), "primary_metric": search.plan.metric,
                               "num_iterations": str(len(search.children)), "training_type": "TrainFull",
                               "runTemplate": "AutoML", "azureml.runsource": "automl",
                               BEST_CHILD_TAG: best["name"], "score": repr(float(best["score"]))}
        props.setdefault("outputs", {})
        props["outputs"]["best_model"] = {"jobOutputType": "mlflow_model", "mode": "ReadWriteMount",
                                          "uri": workspace.long_uri(ARTIFACT_STORE, relative + "/")}

    job_state.update_properties(workspace, name, change)
    search.log(f"{len(search.children)} children; best child {best['name']}.")
    job_state.finish(workspace, name, "Completed")

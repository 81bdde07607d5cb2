# SDK v2: a task factory and set_* methods replace AutoMLConfig.
from azure.ai.ml import Input, automl

job = automl.classification(
    compute="cpu-cluster",
    experiment_name="diabetes-automl",
    training_data=Input(type="mltable", path="azureml:diabetes-table:1"),  # was a TabularDataset
    target_column_name="diabetic",                                        # was label_column_name
    primary_metric="AUC_weighted",
    n_cross_validations=5,
)
job.set_limits(timeout_minutes=60, trial_timeout_minutes=10, max_trials=30,
               max_concurrent_trials=4, enable_early_termination=True)
job.set_training(blocked_training_algorithms=["KNN"], enable_model_explainability=True)
job.set_featurization(mode="auto")

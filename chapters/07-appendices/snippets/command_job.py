# SDK v2: a command job replaces ScriptRunConfig, the estimators and Experiment.submit.
from azure.ai.ml import Input, command

job = command(
    code="./src",
    command="python train.py --data ${{inputs.data}} --alpha ${{inputs.alpha}}",
    inputs={
        "data": Input(type="uri_file", path="data/raw/diabetes.csv"),
        "alpha": 0.5,
    },
    environment="azureml:AzureML-sklearn-1.5@latest",
    compute="cpu-cluster",
    experiment_name="diabetes-training",
    display_name="train-with-alpha-0.5",
)
returned = ml_client.jobs.create_or_update(job)
ml_client.jobs.stream(returned.name)             # was run.wait_for_completion(show_output=True)
print(ml_client.jobs.get(returned.name).status)  # was run.get_status()

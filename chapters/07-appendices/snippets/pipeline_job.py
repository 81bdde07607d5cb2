# SDK v2: a @dsl.pipeline function of components replaces Pipeline and PythonScriptStep.
from azure.ai.ml import Input, Output, command, dsl

prep = command(
    name="prep", code="./src", command="python prep.py --raw ${{inputs.raw}} --clean ${{outputs.clean}}",
    inputs={"raw": Input(type="uri_file")}, outputs={"clean": Output(type="uri_folder")},
    environment="azureml:AzureML-sklearn-1.5@latest",
)
train = command(
    name="train", code="./src", command="python train.py --data ${{inputs.data}} --model ${{outputs.model}}",
    inputs={"data": Input(type="uri_folder")}, outputs={"model": Output(type="mlflow_model")},
    environment="azureml:AzureML-sklearn-1.5@latest",
)

@dsl.pipeline(compute="cpu-cluster", description="prep, then train")
def diabetes_pipeline(raw_data):
    cleaned = prep(raw=raw_data)
    trained = train(data=cleaned.outputs.clean)  # was PipelineData passed between steps
    return {"model": trained.outputs.model}

pipeline_job = diabetes_pipeline(raw_data=Input(type="uri_file", path="azureml:diabetes-csv:1"))
pipeline_job.settings.force_rerun = True         # was regenerate_outputs=True

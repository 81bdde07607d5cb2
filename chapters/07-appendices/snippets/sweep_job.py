# SDK v2: a sweep job replaces HyperDriveConfig. The search space goes on the command's inputs.
from azure.ai.ml import command
from azure.ai.ml.sweep import BanditPolicy, Choice, QUniform, Uniform

train = command(
    code="./src",
    command="python train.py --alpha ${{inputs.alpha}} --min_samples_split ${{inputs.min_samples_split}}",
    inputs={"alpha": 0.5, "min_samples_split": 2},
    environment="azureml:AzureML-sklearn-1.5@latest",
    compute="cpu-cluster",
)

# Random sampling with a Bandit policy (was RandomParameterSampling + BanditPolicy).
random_sweep = train(
    alpha=Uniform(min_value=0.01, max_value=1.0),
    min_samples_split=Choice(values=list(range(2, 11))),
).sweep(
    primary_metric="accuracy", goal="maximize", sampling_algorithm="random",
    early_termination_policy=BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=5),
)
random_sweep.set_limits(max_total_trials=20, max_concurrent_trials=4, timeout=3600)

# Bayesian sampling: only Choice, Uniform and QUniform, and no early termination policy.
bayesian_sweep = train(
    alpha=Uniform(min_value=0.01, max_value=1.0),
    min_samples_split=QUniform(min_value=2, max_value=10, q=1),  # integers 2..10
).sweep(primary_metric="accuracy", goal="maximize", sampling_algorithm="bayesian")
bayesian_sweep.set_limits(max_total_trials=20, max_concurrent_trials=2)

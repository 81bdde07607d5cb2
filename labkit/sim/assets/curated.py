"""Curated environments: the ready-made ``AzureML-*`` environments every workspace sees.

On Azure these come from the shared ``azureml`` registry and are surfaced read-only in
every workspace under the ``AzureML-`` prefix, which is reserved: a workspace cannot
register an environment whose name starts with it. Their images are published as
``mcr.microsoft.com/azureml/curated/<name>:<version>``.

The names, images, Python versions and package pins below are taken from the
environments' definitions in the public Azure/azureml-assets repository
(``assets/training/general/environments/<name>/context/conda_dependencies.yaml`` and
``spec.yaml``). Package pins that the assets repository fills in at build time (the
azureml-* SDK packages) are left unpinned here. Versions are a snapshot: Azure rebuilds
curated images every few weeks and each rebuild is a new version, so labs ask for
``@latest`` rather than a number. Some names outlived their contents (AzureML-lightgbm-3.3
now carries LightGBM 4.x; the ``-py38`` sklearn images now carry Python 3.9); the table
follows the contents, as a learner inspecting the image would see.

Two names, two version series. A workspace lists each curated environment as
``AzureML-<name>`` (``ml_client.environments.get("AzureML-sklearn-1.5", version=...)``,
``environment="AzureML-sklearn-1.5@latest"``); the ``azureml`` registry holds the asset under
the name its azureml-assets ``asset.yaml`` gives it, without the prefix
(``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``), with its own
version numbers. The service also records a workspace curated environment's asset id in
the registry under its ``AzureML-`` name (an AutoML child run's environment reads
``"assetId": "azureml://registries/azureml/environments/AzureML-AutoML/versions/156"``), so a
registry URI naming either is found. Every version from 1 to the newest stays
available: Azure keeps earlier images (azureml-examples still pins
``azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:1``).

Where each version number comes from is said beside it. "Newest known" means the highest
number seen in public material; Azure may have published later ones, which the simulation
then refuses as not found.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RESERVED_PREFIX = "AzureML-"
CURATED_REGISTRY = "azureml"
CURATED_CREATED_AT = "2025-01-15T00:00:00.000Z"


@dataclass(frozen=True)
class CuratedEnvironment:
    name: str
    version: str
    image: str
    description: str
    python: str
    conda: tuple[str, ...]
    pip: tuple[str, ...]
    tags: dict = field(default_factory=dict, hash=False)
    # The asset's name and newest known version in the ``azureml`` registry.
    registry_name: str = ""
    registry_version: str = ""

    def has_version(self, version, registry: bool = False) -> bool:
        """Whether this version exists: any from 1 to the newest (earlier images are kept)."""
        newest = self.registry_version if registry else self.version
        return str(version).isdigit() and 1 <= int(version) <= int(newest)

    def conda_document(self) -> dict:
        """The environment's conda specification, as a conda YAML file would hold it."""
        return {
            "name": self.name,
            "channels": ["conda-forge", "anaconda"],
            "dependencies": [f"python={self.python}", "pip", *self.conda, {"pip": list(self.pip)}],
        }


_AZUREML_SDK = ("azureml-core", "azureml-defaults", "azureml-mlflow", "azureml-telemetry")
_TOOLING = ("debugpy~=1.6.3", "ipykernel~=6.0", "tensorboard", "psutil~=5.8.0", "matplotlib~=3.5.0",
            "tqdm~=4.66.3")


def _image(short: str, version: str) -> str:
    return f"mcr.microsoft.com/azureml/curated/{short}:{version}"


CURATED_ENVIRONMENTS: list[CuratedEnvironment] = [
    # Workspace version 21: not verified (public examples pin :19, e.g. environment="AzureML-sklearn-1.5:19");
    # registry version 41: a component read back from Azure in March 2026 names
    # azureml://registries/azureml/environments/sklearn-1.5/versions/41 (ansible-collections/azure,
    # plugins/modules/azure_rm_ml_component_info.py, RETURN sample).
    CuratedEnvironment(
        name="AzureML-sklearn-1.5", version="21", image=_image("sklearn-1.5", "21"),
        registry_name="sklearn-1.5", registry_version="41",
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.10",
        conda=("pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "azureml-inference-server-http", "scikit-learn-intelex", "scikit-learn~=1.5.0",
             "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.5", "OS": "Ubuntu22.04", "Training": "", "Python": "3.10"},
    ),
    # Workspace version 44: the official environments lab pins it (MicrosoftLearning/mslearn-azure-ml,
    # Labs/04/Work with environments.ipynb: environments.get("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
    # version=44)); the SDK's own tests pin :33. Registry asset sklearn-1.0 (the folder name in
    # azureml-assets, assets/training/general/environments/sklearn-1.0): version 14 is pinned by a public
    # deployment sample (azureml://registries/azureml/environments/sklearn-1.0/versions/14).
    CuratedEnvironment(
        name="AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", version="44",
        image=_image("sklearn-1.0-ubuntu20.04-py38-cpu", "44"),
        registry_name="sklearn-1.0", registry_version="14",
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.9",
        conda=("pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn~=1.0.0", "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.0", "OS": "Ubuntu20.04", "Training": "", "OpenMpi": "4.1.0", "Python": "3.9"},
    ),
    # Versions not verified: public examples pin only :1; 25 is kept from an earlier snapshot. The registry
    # asset is sklearn-1.1 (azureml-assets folder name); its version number is not verified either.
    CuratedEnvironment(
        name="AzureML-sklearn-1.1-ubuntu20.04-py38-cpu", version="25",
        image=_image("sklearn-1.1-ubuntu20.04-py38-cpu", "25"),
        registry_name="sklearn-1.1", registry_version="25",
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.9",
        conda=("pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn-intelex", "scikit-learn~=1.1.0", "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.1", "OS": "Ubuntu20.04", "Training": "", "OpenMpi": "4.1.0", "Python": "3.9"},
    ),
    # Versions not verified (no public pin found); the registry asset is lightgbm-3.3 (azureml-assets).
    CuratedEnvironment(
        name="AzureML-lightgbm-3.3", version="60", image=_image("lightgbm-3.3", "60"),
        registry_name="lightgbm-3.3", registry_version="60",
        description="An environment for tasks such as regression, clustering, and classification with "
                    "LightGBM. Contains the Azure ML SDK and additional python packages.",
        python="3.10",
        conda=("pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn~=1.5.1", "xgboost~=1.7.6", "lightgbm>=4.6.0", *_TOOLING),
        tags={"LightGBM": "4.6", "OS": "Ubuntu24.04", "Training": "", "OpenMpi": "5.0", "Python": "3.10"},
    ),
    # Versions not verified (no public pin found); registry asset name as in azureml-assets.
    CuratedEnvironment(
        name="AzureML-tensorflow-2.12-cuda11", version="15", image=_image("tensorflow-2.12-cuda11", "15"),
        registry_name="tensorflow-2.12-cuda11", registry_version="15",
        description="An environment for deep learning with Tensorflow containing the Azure ML SDK and "
                    "additional python packages.",
        python="3.8",
        conda=("pandas~=1.3.0", "scipy~=1.7.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "tensorflow~=2.12.0", "tensorboard~=2.12.0", "tensorflow-datasets~=4.5.0",
             "onnxruntime-gpu~=1.9.0", "horovod[tensorflow]", "matplotlib~=3.5.0", "psutil~=5.8.0"),
        tags={"TensorFlow": "2.12", "GPU": "Cuda11", "OS": "Ubuntu20.04", "Training": "", "Python": "3.8"},
    ),
    # Version 10: a public training script pins
    # azureml://registries/azureml/environments/AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu/versions/10.
    # Registry asset acpt-pytorch-1.13-cuda11.7 (azureml-assets folder): its version is not verified.
    CuratedEnvironment(
        name="AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu", version="10",
        image=_image("acpt-pytorch-1.13-cuda11.7", "10"),
        registry_name="acpt-pytorch-1.13-cuda11.7", registry_version="10",
        description="Azure Container for PyTorch (ACPT): PyTorch 1.13 with CUDA 11.7, DeepSpeed, "
                    "ONNX Runtime training and the Azure ML SDK.",
        python="3.8",
        conda=(),
        pip=("torch==1.13.1", "torchvision", "deepspeed", "onnxruntime-training", *_AZUREML_SDK,
             "azureml-inference-server-http", "inference-schema", *_TOOLING),
        tags={"PyTorch": "1.13", "GPU": "Cuda11.7", "OS": "Ubuntu20.04", "Training": "", "Python": "3.8"},
    ),
    # Versions not verified (no public pin found).
    CuratedEnvironment(
        name="AzureML-minimal-ubuntu22.04-py39-cpu-inference", version="9",
        image=_image("minimal-ubuntu22.04-py39-cpu-inference", "9"),
        registry_name="minimal-ubuntu22.04-py39-cpu-inference", registry_version="9",
        description="A minimal environment for inference: Python 3.9 on Ubuntu 22.04 with the Azure ML "
                    "inference HTTP server, to extend with a conda file.",
        python="3.9",
        conda=(),
        pip=("azureml-inference-server-http",),
        tags={"OS": "Ubuntu22.04", "Inferencing": "", "Preview": "", "Python": "3.9"},
    ),
    # The environment AutoML trains in (azureml-assets, assets/training/automl/environments/ai-ml-automl:
    # asset name ai-ml-automl; packages from its context/Dockerfile). Version 22: a public notebook quotes
    # an AutoML best run's environment as
    # azureml://registries/azureml/environments/AzureML-ai-ml-automl/versions/22 (others pin :7, :15, :19);
    # its version under the short registry name is not verified.
    CuratedEnvironment(
        name="AzureML-ai-ml-automl", version="22", image=_image("ai-ml-automl", "22"),
        registry_name="ai-ml-automl", registry_version="22",
        description="An environment used by Azure ML AutoML for training models. Not intended for use in "
                    "other scenarios; subject to change without notice.",
        python="3.10",
        conda=("py-cpuinfo=5.0.0", "joblib=1.2.0", "setuptools-git", "psutil>5.0.0,<6.0.0"),
        pip=("azureml-core", "azureml-mlflow", "azureml-pipeline-core", "azureml-telemetry", "azureml-interpret",
             "azureml-responsibleai", "azureml-automl-core", "azureml-automl-runtime",
             "azureml-train-automl-client", "azureml-train-automl-runtime", "azureml-train-automl",
             "azureml-dataset-runtime", "azureml-defaults", "mlflow-skinny==2.22.2", "xgboost==1.5.2",
             "cmdstanpy==1.0.4", "prophet==1.1.4", "inference-schema", "mltable>=1.0.0"),
        tags={"OS": "Ubuntu24.04", "Training": "", "AutoML": "", "Python": "3.10"},
    ),
]

_BY_NAME = {env.name.lower(): env for env in CURATED_ENVIRONMENTS}
_BY_REGISTRY_NAME = {env.registry_name.lower(): env for env in CURATED_ENVIRONMENTS}


def is_reserved(name: str | None) -> bool:
    return bool(name) and name.lower().startswith(RESERVED_PREFIX.lower())


def find_curated(name: str | None) -> CuratedEnvironment | None:
    return _BY_NAME.get(name.lower()) if name else None


def find_in_registry(registry: str, name: str | None) -> tuple[CuratedEnvironment, bool] | None:
    """The curated environment a registry URI names, and whether it named it by its registry name
    (whose version series is the registry's) rather than its ``AzureML-`` workspace name."""
    if not name or registry.lower() != CURATED_REGISTRY:
        return None
    by_registry_name = _BY_REGISTRY_NAME.get(name.lower())
    if by_registry_name is not None:
        return by_registry_name, True
    by_workspace_name = find_curated(name)
    return (by_workspace_name, False) if by_workspace_name else None

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
    CuratedEnvironment(
        name="AzureML-sklearn-1.5", version="21", image=_image("sklearn-1.5", "21"),
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.10",
        conda=("pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "azureml-inference-server-http", "scikit-learn-intelex", "scikit-learn~=1.5.0",
             "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.5", "OS": "Ubuntu22.04", "Training": "", "Python": "3.10"},
    ),
    CuratedEnvironment(
        name="AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", version="33",
        image=_image("sklearn-1.0-ubuntu20.04-py38-cpu", "33"),
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.9",
        conda=("pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn~=1.0.0", "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.0", "OS": "Ubuntu20.04", "Training": "", "OpenMpi": "4.1.0", "Python": "3.9"},
    ),
    CuratedEnvironment(
        name="AzureML-sklearn-1.1-ubuntu20.04-py38-cpu", version="25",
        image=_image("sklearn-1.1-ubuntu20.04-py38-cpu", "25"),
        description="An environment for tasks such as regression, clustering, and classification with "
                    "Scikit-learn. Contains the Azure ML SDK and additional python packages.",
        python="3.9",
        conda=("pandas~=1.3.0", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn-intelex", "scikit-learn~=1.1.0", "joblib~=1.2.0", *_TOOLING),
        tags={"Scikit-learn": "1.1", "OS": "Ubuntu20.04", "Training": "", "OpenMpi": "4.1.0", "Python": "3.9"},
    ),
    CuratedEnvironment(
        name="AzureML-lightgbm-3.3", version="60", image=_image("lightgbm-3.3", "60"),
        description="An environment for tasks such as regression, clustering, and classification with "
                    "LightGBM. Contains the Azure ML SDK and additional python packages.",
        python="3.10",
        conda=("pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "scikit-learn~=1.5.1", "xgboost~=1.7.6", "lightgbm>=4.6.0", *_TOOLING),
        tags={"LightGBM": "4.6", "OS": "Ubuntu24.04", "Training": "", "OpenMpi": "5.0", "Python": "3.10"},
    ),
    CuratedEnvironment(
        name="AzureML-tensorflow-2.12-cuda11", version="15", image=_image("tensorflow-2.12-cuda11", "15"),
        description="An environment for deep learning with Tensorflow containing the Azure ML SDK and "
                    "additional python packages.",
        python="3.8",
        conda=("pandas~=1.3.0", "scipy~=1.7.0", "numpy~=1.22.0"),
        pip=(*_AZUREML_SDK, "tensorflow~=2.12.0", "tensorboard~=2.12.0", "tensorflow-datasets~=4.5.0",
             "onnxruntime-gpu~=1.9.0", "horovod[tensorflow]", "matplotlib~=3.5.0", "psutil~=5.8.0"),
        tags={"TensorFlow": "2.12", "GPU": "Cuda11", "OS": "Ubuntu20.04", "Training": "", "Python": "3.8"},
    ),
    CuratedEnvironment(
        name="AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu", version="10",
        image=_image("acpt-pytorch-1.13-cuda11.7", "10"),
        description="Azure Container for PyTorch (ACPT): PyTorch 1.13 with CUDA 11.7, DeepSpeed, "
                    "ONNX Runtime training and the Azure ML SDK.",
        python="3.8",
        conda=(),
        pip=("torch==1.13.1", "torchvision", "deepspeed", "onnxruntime-training", *_AZUREML_SDK,
             "azureml-inference-server-http", "inference-schema", *_TOOLING),
        tags={"PyTorch": "1.13", "GPU": "Cuda11.7", "OS": "Ubuntu20.04", "Training": "", "Python": "3.8"},
    ),
    CuratedEnvironment(
        name="AzureML-minimal-ubuntu22.04-py39-cpu-inference", version="9",
        image=_image("minimal-ubuntu22.04-py39-cpu-inference", "9"),
        description="A minimal environment for inference: Python 3.9 on Ubuntu 22.04 with the Azure ML "
                    "inference HTTP server, to extend with a conda file.",
        python="3.9",
        conda=(),
        pip=("azureml-inference-server-http",),
        tags={"OS": "Ubuntu22.04", "Inferencing": "", "Preview": "", "Python": "3.9"},
    ),
]

_BY_NAME = {env.name.lower(): env for env in CURATED_ENVIRONMENTS}


def is_reserved(name: str | None) -> bool:
    return bool(name) and name.lower().startswith(RESERVED_PREFIX.lower())


def find_curated(name: str | None) -> CuratedEnvironment | None:
    return _BY_NAME.get(name.lower()) if name else None

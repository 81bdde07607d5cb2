"""MLflow stores for the ``labkit-sim://`` tracking URI of a simulated workspace.

On Azure, a workspace's ``mlflow_tracking_uri`` has its own scheme (``azureml://``) that
the azureml-mlflow plugin resolves. The simulation does the same with a scheme of its own,
registered as MLflow tracking and model-registry store plugins in pyproject.toml, so that
``mlflow.set_tracking_uri(ws.mlflow_tracking_uri)`` gives a real MLflow backend (SQLite)
whose artifacts land in the workspace folder rather than in ``./mlruns`` of the caller.
"""
from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEME = "labkit-sim"


def tracking_uri(mlflow_folder: Path) -> str:
    return f"{SCHEME}://{Path(mlflow_folder).resolve().as_posix()}"


def _folder(store_uri: str) -> Path:
    parsed = urlparse(store_uri)
    if parsed.scheme != SCHEME:
        raise ValueError(f"not a simulated-workspace tracking URI: {store_uri!r}")
    folder = Path(unquote(parsed.netloc + parsed.path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _database(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


@functools.lru_cache(maxsize=None)
def tracking_store(store_uri: str, artifact_uri: str | None = None):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = _folder(store_uri)
    return SqlAlchemyStore(_database(folder), artifact_uri or (folder / "artifacts").as_uri())


@functools.lru_cache(maxsize=None)
def registry_store(store_uri: str, tracking_uri: str | None = None):
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(_database(_folder(store_uri)))

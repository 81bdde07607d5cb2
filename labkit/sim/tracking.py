"""MLflow stores for the ``labkit-sim://`` tracking URI of a simulated workspace.

On Azure, a workspace's ``mlflow_tracking_uri`` has its own scheme (``azureml://``) that
the azureml-mlflow plugin resolves. The simulation does the same with a scheme of its own,
registered as MLflow tracking and model-registry store plugins in pyproject.toml, so that
``mlflow.set_tracking_uri(ws.mlflow_tracking_uri)`` gives a real MLflow backend (SQLite).

Run artifacts live where Azure keeps them, in the workspace's artifact store
(``workspaceartifactstore``, under ``ExperimentRun/``), so a job's logs, its ``outputs/``
folder and what MLflow logs are one folder, as on Azure. A job's MLflow run has the job's
name as its run id, as on Azure, so ``runs:/<job name>/model`` and ``mlflow.get_run(job.name)``
work.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEME = "labkit-sim"
_run_id_lock = threading.Lock()


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


def artifact_root(workspace_folder: Path) -> Path:
    """``ExperimentRun/`` in the workspace's artifact store (its folder on the local disk)."""
    from labkit.sim.storage import container_folder
    from labkit.sim.store import WorkspaceStore

    row = WorkspaceStore(workspace_folder).get("datastore", "workspaceartifactstore")
    base = container_folder(workspace_folder, row.payload) if row else workspace_folder / "artifacts"
    return base / "ExperimentRun"


@contextlib.contextmanager
def _first_use_lock(folder: Path):
    """Opening a store creates or migrates its schema; two processes doing that at once
    (two jobs starting together) break alembic's bookkeeping, so they take turns. The
    schema's INFO lines ("Creating initial MLflow database tables...") are the simulation's
    own set-up, not something the learner did, so they are kept out of lab output."""
    import logging

    from filelock import FileLock

    schema_logger = logging.getLogger("mlflow.store.db.utils")
    level = schema_logger.level
    schema_logger.setLevel(logging.WARNING)
    try:
        with FileLock(str(folder / "schema.lock")):
            yield
    finally:
        schema_logger.setLevel(level)


@functools.lru_cache(maxsize=None)
def tracking_store(store_uri: str, artifact_uri: str | None = None):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = _folder(store_uri)
    with _first_use_lock(folder):
        return SqlAlchemyStore(_database(folder), artifact_uri or artifact_root(folder.parent).as_uri())


@functools.lru_cache(maxsize=None)
def registry_store(store_uri: str, tracking_uri: str | None = None):
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    folder = _folder(store_uri)
    with _first_use_lock(folder):
        return SqlAlchemyStore(_database(folder))


class _FixedUuid:
    """Stands in for the ``uuid`` module inside MLflow's store for one ``create_run``."""

    def __init__(self, hex_id: str):
        self._hex = hex_id

    def uuid4(self):
        return type("FixedUUID", (), {"hex": self._hex})()


def create_run_with_id(store_uri: str, run_id: str, experiment_name: str, run_name: str | None,
                       tags: dict | None = None):
    """Create the MLflow run of a job, with the job's name as its run id.

    MLflow picks run ids itself (``uuid.uuid4().hex``); Azure ML makes them equal to job
    names. MLflow offers no way to choose one, so for this one call the store's ``uuid``
    is swapped for one that returns the job's name (under a lock: runs created by other
    threads of this process wait).
    """
    from mlflow.store.tracking import sqlalchemy_store
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    with _run_id_lock, _swapped(sqlalchemy_store, "uuid", _FixedUuid(run_id)):
        return client.create_run(experiment_id, tags=tags or {}, run_name=run_name)


@contextlib.contextmanager
def _swapped(module, name: str, value):
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)

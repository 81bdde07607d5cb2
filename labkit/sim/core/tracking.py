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

MLflow connected to Azure ML supports a subset of MLflow; the stores here refuse the rest as
the service does (:func:`refuse_unsupported_run_search`, ``rename_experiment``), and the
model registry is the workspace's own (``labkit/sim/mlflow_registry.py``).
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

from labkit.sim.core.workspace import SCHEME, tracking_uri  # noqa: F401 - tracking_uri: re-exported (labkit.sim.tracking)

_run_id_lock = threading.Lock()


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
    from labkit.sim.core.storage import container_folder
    from labkit.sim.core.store import WorkspaceStore

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


# The support matrix of "Query & compare experiments and runs with MLflow"
# (https://learn.microsoft.com/azure/machine-learning/how-to-track-experiments-mlflow#support-matrix-for-querying-runs-and-experiments):
# runs are ordered by attributes only; filters use metrics, params, tags and attributes, but not
# metric names with escaped special characters, and not `!=` on tags; params take only `=`,
# `!=` and `LIKE` ("Only operators =, like, and != are supported for filtering parameters");
# experiments cannot be renamed. The service's error text is not documented: the messages
# below are the simulation's, raised as the MlflowException (INVALID_PARAMETER_VALUE) a
# refused request becomes in the MLflow client.
RUN_ORDER_BY_KINDS = ("attribute",)
PARAM_COMPARATORS = ("=", "!=", "LIKE")
ESCAPED_METRIC = re.compile(r"""\bmetrics?\s*\.\s*[`"]""", re.IGNORECASE)
MATRIX_URL = ("https://learn.microsoft.com/azure/machine-learning/how-to-track-experiments-mlflow"
              "#support-matrix-for-querying-runs-and-experiments")


def _unsupported(message: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(f"{message} Azure Machine Learning does not support it (see {MATRIX_URL}).",
                           error_code=INVALID_PARAMETER_VALUE)


def refuse_unsupported_run_search(filter_string: str | None, order_by: list[str] | None) -> None:
    """Refuse a run search that MLflow supports but Azure ML does not."""
    from mlflow.utils.search_utils import SearchUtils

    for clause in order_by or []:
        kind, key, _ = SearchUtils.parse_order_by_for_search_runs(clause)
        if kind not in RUN_ORDER_BY_KINDS:
            raise _unsupported(f"order_by={clause!r} orders runs by a {kind}: order by attributes such as "
                               "start_time, or sort the returned DataFrame with pandas (sort_values).")
    if not filter_string:
        return
    if ESCAPED_METRIC.search(filter_string):
        raise _unsupported(f"The filter {filter_string!r} names a metric with escaped special characters.")
    for condition in SearchUtils.parse_search_filter(filter_string):
        comparator = condition["comparator"].upper()
        if condition["type"] == "tag" and comparator == "!=":
            raise _unsupported(f"The filter {filter_string!r} uses != on a tag.")
        if condition["type"] == "parameter" and comparator not in PARAM_COMPARATORS:
            raise _unsupported(f"The filter {filter_string!r} compares a parameter with {comparator}; "
                               "parameters take only =, != and LIKE.")


@functools.cache
def _store_classes():
    """The workspace's tracking store: MLflow's SQL store with Azure ML's rules on top.

    Defined on first use because MLflow's SQL store is slow to import."""
    from mlflow.store.tracking.dbmodels.models import SqlLoggedModel
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    class WorkspaceTrackingStore(SqlAlchemyStore):
        def _search_runs(self, experiment_ids, filter_string, run_view_type, max_results, order_by,
                         page_token):
            refuse_unsupported_run_search(filter_string, order_by)
            return super()._search_runs(experiment_ids, filter_string, run_view_type, max_results,
                                        order_by, page_token)

        def rename_experiment(self, experiment_id, new_name):
            raise _unsupported("Renaming an experiment is not possible.")

        def create_logged_model(self, experiment_id, name=None, source_run_id=None, tags=None,
                                params=None, model_type=None):
            """MLflow 3 keeps a logged model in ``<experiment>/models/<id>/artifacts``; Azure ML
            keeps a model a run logs under the run's artifacts (``<name>/``), where
            ``azureml://jobs/<job>/outputs/artifacts/paths/<name>/`` and ``runs:/<run>/<name>``
            find it. So a model logged from a run goes there, unless that folder is taken. In a
            job, a model logged with no active run belongs to the job's run (MLFLOW_RUN_ID)."""
            source_run_id = source_run_id or os.environ.get("MLFLOW_RUN_ID")
            model = super().create_logged_model(experiment_id, name, source_run_id, tags, params, model_type)
            if not source_run_id or not model.name:
                return model
            folder = _local_folder(self.get_run(source_run_id).info.artifact_uri) / model.name
            if folder.exists():
                return model
            with self.ManagedSessionMaker(read_only=False) as session:
                session.query(SqlLoggedModel).filter(SqlLoggedModel.model_id == model.model_id).update(
                    {"artifact_location": folder.as_uri()})
            return self.get_logged_model(model.model_id)

    return WorkspaceTrackingStore


def _local_folder(file_uri: str) -> Path:
    return Path(unquote(urlparse(file_uri).path))


@functools.lru_cache(maxsize=None)
def tracking_store(store_uri: str, artifact_uri: str | None = None):
    folder = _folder(store_uri)
    with _first_use_lock(folder):
        database = folder / "mlflow.db"
        if not database.exists():
            _copy_empty_schema(database)
        return _store_classes()(_database(folder), artifact_uri or artifact_root(folder.parent).as_uri())


def _copy_empty_schema(database: Path) -> None:
    """Start a workspace's MLflow database as a copy of an empty one with the current schema.

    MLflow creates its schema by running every alembic migration since its first release,
    seconds on a slow machine, for each new workspace (every lab, and most tests). The
    result depends only on MLflow's version, so it is made once per version in the user's
    cache and copied; MLflow then opens it as a database it created (it adds the default
    experiment itself, with this workspace's artifact root). Where the cache cannot be
    written, MLflow creates the schema as usual."""
    import shutil

    import mlflow
    from filelock import FileLock

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labkit"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(template) + ".lock"):
            if not template.exists():
                _write_empty_schema(template)
        copying = database.with_suffix(".copying")
        shutil.copyfile(template, copying)
        copying.replace(database)  # whole or not at all: a killed kernel leaves no half database
    except OSError:
        pass


def _write_empty_schema(template: Path) -> None:
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    partial = template.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    engine = sqlalchemy.create_engine(f"sqlite:///{partial}")
    try:
        _initialize_tables(engine)  # what SqlAlchemyStore does with an empty database
    finally:
        engine.dispose()
    partial.replace(template)  # whole or not at all: a crash leaves no half template



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


# -- MLflow's default tracking URI, as on a compute instance ------------------------------------
# The tracking URI the simulation made MLflow's default (see use_workspace_tracking_uri).
_default_tracking_uri: str | None = None


def use_workspace_tracking_uri(workspace) -> None:
    """Make ``workspace`` MLflow's default tracking (and so registry) URI, as on a compute instance.

    On an Azure ML compute instance ``import mlflow; mlflow.search_experiments()`` already talks to
    the workspace, with no ``set_tracking_uri`` ("Configure MLflow for Azure Machine Learning":
    compute instances come configured for the workspace). A URI the learner chose wins: the
    ``MLFLOW_TRACKING_URI`` variable, which ``mlflow.set_tracking_uri`` also sets, when it holds
    anything other than what the simulation put there.
    """
    global _default_tracking_uri
    current = os.environ.get("MLFLOW_TRACKING_URI")
    if current and current != _default_tracking_uri:
        return
    _default_tracking_uri = os.environ["MLFLOW_TRACKING_URI"] = workspace.mlflow_tracking_uri


def forget_workspace_tracking_uri() -> None:
    global _default_tracking_uri
    if _default_tracking_uri and os.environ.get("MLFLOW_TRACKING_URI") == _default_tracking_uri:
        del os.environ["MLFLOW_TRACKING_URI"]
    _default_tracking_uri = None

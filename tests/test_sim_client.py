"""The simulated client as an unmodified Azure notebook would use it."""
from __future__ import annotations

import contextlib
import json

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import AmlCompute
from azure.ai.ml.operations import DataOperations, DatastoreOperations, WorkspaceOperations
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import AzureCliCredential, DefaultAzureCredential, InteractiveBrowserCredential, ManagedIdentityCredential

import labkit
from labkit import sim
from labkit.sim.core import credentials

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
OTHER_SUBSCRIPTION = "66666666-7777-8888-9999-000000000000"


@pytest.fixture
def activated(sim_root):
    with sim.activate(root=sim_root):
        yield sim_root


def test_mlclient_constructor_gives_a_simulated_client_while_active(activated):
    client = MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg-1", "ws-one")
    assert isinstance(client, MLClient)
    assert isinstance(client, sim.SimMLClient)
    assert client.workspace_name == "ws-one"
    assert client.workspaces.get().name == "ws-one"
    assert (activated / "ws-one" / "workspace.db").is_file()


def test_from_config_reads_config_json(activated, tmp_path, monkeypatch):
    config = {"subscription_id": OTHER_SUBSCRIPTION, "resource_group": "rg-2", "workspace_name": "ws-from-config"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    client = MLClient.from_config(credential=DefaultAzureCredential())
    assert isinstance(client, sim.SimMLClient)
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (
        OTHER_SUBSCRIPTION, "rg-2", "ws-from-config")


def test_from_config_without_a_file_uses_default_names(activated, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = MLClient.from_config(DefaultAzureCredential())
    assert client.workspace_name == sim.config.DEFAULT_WORKSPACE


def test_placeholder_names_build_a_client_whose_first_call_fails_as_on_azure(activated):
    """The azureml-examples notebooks' ``MLClient(credential, "<SUBSCRIPTION_ID>", ...)``: the SDK
    builds it without a call; Azure Resource Manager then answers 400 InvalidSubscriptionId."""
    client = MLClient(DefaultAzureCredential(), "<SUBSCRIPTION_ID>", "<RESOURCE_GROUP>", "<AML_WORKSPACE_NAME>")
    assert client.workspace_name == "<AML_WORKSPACE_NAME>"
    assert not activated.exists()  # no workspace was reached, so none is provisioned
    listing = client.data.list()  # a listing calls the service when it is iterated
    for call in (lambda: client.workspaces.get(), lambda: list(listing), lambda: client.compute.get("cpu-cluster")):
        with pytest.raises(HttpResponseError, match="InvalidSubscriptionId") as refused:
            call()
        assert refused.value.status_code == 400
        assert "'<SUBSCRIPTION_ID>' is malformed or invalid" in str(refused.value)


def test_a_workspace_name_that_cannot_exist_is_not_found_at_the_first_call(activated):
    """A real subscription id with a placeholder workspace name: the SDK builds the client
    without a call, and ARM answers 404 ResourceNotFound for the workspace's URLs; the
    resource group's workspace listing still answers."""
    client = MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg-1", "<AML_WORKSPACE_NAME>")
    assert not activated.exists()
    listing = client.jobs.list()
    for call in (lambda: list(listing), lambda: client.data.get("diabetes", version="1"),
                 lambda: client.compute.begin_create_or_update(AmlCompute(name="cpu-cluster"))):
        with pytest.raises(ResourceNotFoundError, match="ResourceNotFound") as refused:
            call()
        assert refused.value.status_code == 404
        assert "workspaces/<AML_WORKSPACE_NAME>' under resource group 'rg-1' was not found" in str(refused.value)
    assert list(client.workspaces.list()) == []


def test_placeholder_client_leaves_mlflow_on_the_configured_workspace(activated, tmp_path, monkeypatch):
    """The usual fallback: ``from_config`` in a try block, placeholders in the except branch."""
    import mlflow

    (tmp_path / "config.json").write_text(json.dumps(
        {"subscription_id": SUBSCRIPTION, "resource_group": "rg-1", "workspace_name": "ws-configured"}))
    monkeypatch.chdir(tmp_path)
    configured = MLClient.from_config(DefaultAzureCredential())
    MLClient(DefaultAzureCredential(), "<SUBSCRIPTION_ID>", "<RESOURCE_GROUP>", "<AML_WORKSPACE_NAME>")
    assert mlflow.get_tracking_uri() == configured.workspaces.get().mlflow_tracking_uri


def test_a_registry_client_refuses_naming_the_call_and_the_rai_insights(activated):
    """The official Responsible AI dashboard lab reads its rai_tabular_* components through an
    MLClient for the azureml registry: it stops there, saying what is not simulated."""
    with pytest.raises(NotImplementedError, match=r"registry_name='azureml'.*Responsible AI insights"):
        MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg-1", registry_name="azureml")


@pytest.mark.parametrize("credential_class", [
    DefaultAzureCredential, InteractiveBrowserCredential, AzureCliCredential, ManagedIdentityCredential])
def test_credentials_give_fake_tokens_without_network(activated, credential_class):
    token = credential_class().get_token("https://management.azure.com/.default")
    assert token.token == credentials.FAKE_TOKEN
    assert token.expires_on > 0


def test_deactivate_restores_everything(sim_root):
    sim.activate(root=sim_root)
    sim.activate(root=sim_root)  # twice is harmless
    sim.deactivate()
    assert not sim.is_active()
    client = MLClient(DefaultAzureCredential(), "sub", "rg", "ws-real")
    assert type(client) is MLClient
    assert "get_token" not in vars(AzureCliCredential) or AzureCliCredential.get_token is not credentials._get_token
    sim.deactivate()  # and so is deactivating twice


def test_operation_groups_are_the_sdk_types(ml_client):
    assert isinstance(ml_client.data, DataOperations)
    assert isinstance(ml_client.datastores, DatastoreOperations)
    assert isinstance(ml_client.workspaces, WorkspaceOperations)


def test_unsimulated_operations_refuse_clearly(ml_client):
    with pytest.raises(NotImplementedError, match="not part of the simulated workspace"):
        ml_client.registries.list()


def test_connect_prints_one_line_naming_the_backend(sim_root, capsys):
    client = labkit.connect(backend="simulated", root=sim_root)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "SIMULATED" in out[0] and client.workspace_name in out[0]
    sim.deactivate()


def test_connect_auto_picks_simulated_without_config(sim_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABKIT_BACKEND", raising=False)
    for var in labkit.AZURE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert labkit._choose_backend("auto") == "simulated"
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text("{}")
    assert labkit._choose_backend("auto") == "azure"
    monkeypatch.setenv("LABKIT_BACKEND", "simulated")
    assert labkit._choose_backend("auto") == "simulated"


def test_azure_backend_builds_a_real_client_without_calling_azure(tmp_path, monkeypatch):
    """Azure mode: DefaultAzureCredential, telemetry off, and no network until an operation runs
    (the conftest guard fails the test on any connection)."""
    config = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws-azure"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    client = labkit.connect(backend="azure")
    assert type(client) is MLClient
    assert client.workspace_name == "ws-azure"
    assert client._operation_config.enable_telemetry is False
    assert isinstance(client._credential, DefaultAzureCredential)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be one of"):
        labkit.connect(backend="cloud")


def test_workspace_shape(ml_client):
    ws = ml_client.workspaces.get()
    assert ws.id.endswith(f"/providers/Microsoft.MachineLearningServices/workspaces/{ml_client.workspace_name}")
    assert ws.mlflow_tracking_uri.startswith("labkit-sim://")
    assert ws.storage_account and ws.key_vault and ws.application_insights
    assert ws.container_registry is None  # created on Azure only with the first image build
    assert [w.name for w in ml_client.workspaces.list()] == [ml_client.workspace_name]


def test_workspace_create_update_delete(ml_client):
    from azure.ai.ml.entities import Workspace

    created = ml_client.workspaces.begin_create(Workspace(name="ws-second", description="d")).result()
    assert created.name == "ws-second" and created.description == "d"
    updated = ml_client.workspaces.begin_update(Workspace(name="ws-second", description="new")).result()
    assert updated.description == "new"
    assert sorted(w.name for w in ml_client.workspaces.list()) == sorted([ml_client.workspace_name, "ws-second"])
    assert ml_client.workspaces.begin_delete("ws-second", delete_dependent_resources=False).result() is None
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        ml_client.workspaces.get("ws-second")


def test_mlflow_tracks_into_the_workspace(ml_client, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    ws = ml_client.workspaces.get()
    mlflow.set_tracking_uri(ws.mlflow_tracking_uri)
    try:
        mlflow.set_experiment("tracking-check")
        with mlflow.start_run() as run:
            mlflow.log_param("alpha", 0.5)
            mlflow.log_metric("auc", 0.91)
        runs = mlflow.search_runs(experiment_names=["tracking-check"])
        assert runs.loc[0, "metrics.auc"] == pytest.approx(0.91)
        # Artifacts go where Azure keeps run artifacts: the workspace's artifact store.
        artifact_uri = mlflow.get_run(run.info.run_id).info.artifact_uri
        assert artifact_uri.startswith(sim.workspace_folder(ml_client).as_uri())
        assert "/azureml/ExperimentRun/" in artifact_uri
        assert not (tmp_path / "mlruns").exists()
    finally:
        mlflow.set_tracking_uri(None)


def test_a_new_workspaces_mlflow_database_has_the_schema_mlflow_itself_creates(tmp_path, monkeypatch):
    """Each workspace's MLflow database starts as a copy of one empty schema made once per
    MLflow version (labkit/sim/tracking.py): it must be what MLflow would have created."""
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from labkit.sim.core import tracking

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stores = {name: tracking.tracking_store(tracking.tracking_uri(tmp_path / name / "mlflow"),
                                            (tmp_path / name / "artifacts").as_uri())
              for name in ("first", "second")}
    SqlAlchemyStore(f"sqlite:///{tmp_path / 'by-mlflow.db'}", (tmp_path / "elsewhere").as_uri())

    def schema(database):
        """Each object's definition as a set of lines: MLflow's migrations rebuild some tables
        with their constraints in an order that varies from process to process."""
        with contextlib.closing(sqlite3.connect(database)) as db:
            objects = {(kind, name): frozenset(line.strip(" ,") for line in (sql or "").splitlines())
                       for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master")}
            return objects, db.execute("SELECT version_num FROM alembic_version").fetchall()

    assert schema(tmp_path / "second" / "mlflow" / "mlflow.db") == schema(tmp_path / "by-mlflow.db")
    assert len(list((tmp_path / "cache" / "labkit").glob("mlflow-*-empty.db"))) == 1, "made once"
    for name, store in stores.items():  # MLflow added each one's default experiment, in its own root
        assert store.get_experiment("0").artifact_location == (tmp_path / name / "artifacts" / "0").as_uri()


# -- a listing survives one record the SDK cannot read back ---------------------------------------
NO_PROPERTIES = {"properties": None}
UNKNOWN_ACTION = {"properties": {"isEnabled": True, "action": {"actionType": "NoSuchAction"}}}


@pytest.mark.parametrize("group, kind, name, version, parent, payload", [
    ("datastores", "datastore", "broken", "", None, NO_PROPERTIES),
    ("schedules", "schedule", "broken", "", None, UNKNOWN_ACTION),
    ("online_endpoints", "online_endpoint", "broken", "", None, NO_PROPERTIES),
    ("batch_endpoints", "batchEndpoint", "broken", "", None, NO_PROPERTIES),
    ("online_deployments", "online_deployment", "endpoint-1", "broken", "online_endpoint", NO_PROPERTIES),
    ("batch_deployments", "batchDeployment", "endpoint-1", "broken", "batchEndpoint", NO_PROPERTIES),
])
def test_a_listing_skips_a_record_that_cannot_be_read_back_and_names_it(ml_client, caplog, group, kind, name,
                                                                         version, parent, payload):
    """A record as an older simulation could have stored it costs the learner that one entry,
    not the listing: the other records still list."""
    store = ml_client._sim_workspace.store
    operations = getattr(ml_client, group)
    if parent:  # the deployment's endpoint, readable
        with store.transaction() as db:
            store.put(db, parent, name, "", _rest_class(parent)({"location": "eastus", "properties": {
                "authMode": "Key"}, "identity": {"type": "SystemAssigned"}}))
    before = [entity.name for entity in (operations.list(name) if parent else operations.list())]
    with store.transaction() as db:
        store.put(db, kind, name, version, _rest_class(kind)(payload))
    with caplog.at_level("WARNING", logger="labkit.sim"):
        after = [entity.name for entity in (operations.list(name) if parent else operations.list())]
    assert after == before
    assert "broken" in caplog.text and "cannot be read back" in caplog.text


def _rest_class(kind: str) -> type:
    from azure.ai.ml._restclient.arm_ml_service import models

    return {"datastore": models.Datastore, "schedule": models.Schedule, "online_endpoint": models.OnlineEndpoint,
            "batchEndpoint": models.BatchEndpoint, "online_deployment": models.OnlineDeployment,
            "batchDeployment": models.BatchDeployment}[kind]

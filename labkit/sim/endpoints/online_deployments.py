"""``ml_client.online_deployments``: deployments served by azureml-inference-server-http.

A deployment is stored as the ``OnlineDeployment`` payload the SDK's ``_to_rest_object``
produces, with its code, environment and model resolved to asset ids (local folders and files
uploaded and registered, as the SDK does before it calls the service) and the service's
provisioning state. Creating it does what the service does on a deployment's instances:

- the storage initializer copies the model to ``AZUREML_MODEL_DIR`` laid out as on Azure,
  ``.../azureml-models/<model name>/<version>/`` holding the registered file, or the
  registered folder under its own name (so ``model/`` for a folder called ``model``);
- the code asset is copied beside it, and each instance runs the inference server with the
  scoring script (``init()`` once, ``run()`` per request), the deployment's
  ``environment_variables`` and ``AZUREML_MODEL_DIR``; an MLflow model with no scoring script
  and no environment gets the no-code scoring script (``labkit.sim.endpoints._mlflow_score``);
- the deployment is Succeeded once every instance answers its readiness probe, Failed (and
  ``.result()`` raises) when ``init()`` fails or the probe never succeeds.

The service's rules: a managed deployment's ``instance_type`` must be a VM size the region
offers (``labkit.sim.compute.vm_sizes``), ``instance_count`` at least 1; a scoring script needs an
environment; a model that is not an MLflow model needs a scoring script; a deployment with live
traffic cannot be deleted (set its traffic to 0 first).

What differs on Azure: no container image is built from the environment (the server runs in
the book's own Python); instances are local processes, at most ``MAX_LOCAL_INSTANCES`` of them
whatever ``instance_count`` says; liveness probes and autoscaling are not modelled.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from azure.ai.ml._restclient.arm_ml_service.models import OnlineDeployment as RestOnlineDeployment
from azure.ai.ml.entities import OnlineDeployment
from azure.ai.ml.exceptions import InvalidVSCodeRequestError
from azure.ai.ml.operations import OnlineDeploymentOperations as _SdkOnlineDeploymentOperations
from azure.core.exceptions import HttpResponseError
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller, NoPolling

from labkit.sim.core import references
from labkit.sim.assets import conda
from labkit.sim.jobs import job_state
from labkit.sim.endpoints import online_runtime as runtime
from labkit.sim.endpoints.deployments import DeploymentDependencies, EndpointLookup
from labkit.sim.core.base import SimOperations, bad_request, done, not_found, service_error, with_service_fields
from labkit.sim.core.storage import datastore_folder
from labkit.sim.endpoints.online_runtime import DEPLOYMENT_KIND, ENDPOINT_KIND
from labkit.sim.compute.vm_sizes import find_size

MAX_LOCAL_INSTANCES = 4
PROVISIONING_FILE = "provisioning.json"  # the pid of the process creating or updating a deployment
MLFLOW_SCORE_SCRIPT = Path(__file__).with_name("_mlflow_score.py")
LONG_DATASTORE_URI = re.compile(r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+"
                                r"/datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
ARM_CODE = re.compile(r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")
# The readiness probe the service applies when the deployment sets none (initial delay 10 s,
# period 10 s, 30 failures allowed): how long a deployment may take to become ready.
DEFAULT_READY_S = 10 + 10 * 30
DEFAULT_PROBE = {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S", "successThreshold": 1,
                 "failureThreshold": 30}
DEFAULT_REQUEST_SETTINGS = {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1}


class _FailedOperation(NoPolling):
    """A long-running operation that ended in failure: ``.result()`` raises, as on Azure."""

    def __init__(self, error: Exception):
        super().__init__()
        self._error = error

    def finished(self) -> bool:
        return False

    def run(self) -> None:
        raise self._error


class OnlineDeploymentOperations(EndpointLookup, DeploymentDependencies, SimOperations,
                                 _SdkOnlineDeploymentOperations):
    """Create, read, follow and delete the deployments of the simulated online endpoints."""

    _ENDPOINT_KIND, _DEPLOYMENT_KIND, _ENDPOINT_LABEL = ENDPOINT_KIND, DEPLOYMENT_KIND, "Online endpoint"

    # -- helpers ------------------------------------------------------------------------------------
    def _entity(self, row) -> OnlineDeployment:
        row = self._settled(row)
        arm_id = f"{self._workspace.child_id('onlineEndpoints', row.name)}/deployments/{row.version}"
        deployment = OnlineDeployment._from_rest_object(with_service_fields(row, arm_id, row.version))
        deployment.endpoint_name = row.name
        return deployment

    def _settled(self, row):
        """A deployment still Creating or Updating whose creating process has gone (a kernel
        killed while it deployed) will never finish: it is Failed, and its instances stopped."""
        props = row.payload["properties"]
        if props.get("provisioningState") not in ("Creating", "Updating"):
            return row
        folder = runtime.deployment_folder(self._workspace, row.name, row.version)
        creator = runtime.read_json(folder / PROVISIONING_FILE).get("pid")
        if not creator or job_state.pid_alive(creator):
            return row
        runtime.stop_instances(folder)
        props["provisioningState"] = "Failed"
        self._put(row.name, row.version, row.payload)
        return self._store.get(DEPLOYMENT_KIND, row.name, row.version)

    @staticmethod
    def _refuse_local(local: bool) -> None:
        if local:
            raise NotImplementedError("Local (Docker) deployments are not part of the simulated workspace: leave "
                                      "local=False, the simulated deployment already runs on this machine.")

    # -- reading --------------------------------------------------------------------------------------
    def get(self, name: str, endpoint_name: str, *, local: Optional[bool] = False) -> OnlineDeployment:
        self._refuse_local(bool(local))
        return self._entity(self._deployment_row(name, endpoint_name))

    def list(self, endpoint_name: str, *, local: bool = False) -> ItemPaged[OnlineDeployment]:
        self._refuse_local(local)
        return self._deployments_page(endpoint_name, self._entity)

    def get_logs(self, name: str, endpoint_name: str, lines: int, *, container_type: Optional[str] = None,
                 local: bool = False) -> str:
        self._refuse_local(local)
        self._deployment_row(name, endpoint_name)
        folder = runtime.deployment_folder(self._workspace, endpoint_name, name)
        if container_type:
            container_type = self._validate_deployment_log_container_type(container_type)
        log = "storage-initializer.log" if container_type == "StorageInitializer" else "instance-0.log"
        return runtime.tail(folder / "logs" / log, lines)

    # -- writing --------------------------------------------------------------------------------------
    def begin_create_or_update(self, deployment: OnlineDeployment, *, local: bool = False, vscode_debug: bool = False,
                               skip_script_validation: bool = False, local_enable_gpu: bool = False,
                               **kwargs: Any) -> LROPoller[OnlineDeployment]:
        if vscode_debug and not local:
            raise InvalidVSCodeRequestError(
                msg="VSCode Debug is only support for local endpoints. Please set local to True.")
        self._refuse_local(local)
        endpoint = self._target_endpoint(deployment, deployment.code_configuration, skip_script_validation)
        kubernetes = bool(endpoint.payload["properties"].get("compute"))
        if kubernetes != (type(deployment).__name__ == "KubernetesOnlineDeployment"):
            kind = "Kubernetes" if kubernetes else "managed"
            raise bad_request(f"Endpoint '{deployment.endpoint_name}' is a {kind} online endpoint; deploy a "
                              f"{'KubernetesOnlineDeployment' if kubernetes else 'ManagedOnlineDeployment'} to it.")
        self._resolve_dependencies(deployment)
        location = str(self._group("_workspaces").get(self._workspace.name).location)
        rest = deployment._to_rest_object(location=location)
        payload = rest.as_dict()
        props = payload["properties"]
        self._check(deployment.name, payload, kubernetes)
        from labkit.sim.endpoints.data_collection import register_collections

        register_collections(self, deployment.endpoint_name, deployment.name, payload)
        old = self._store.get(DEPLOYMENT_KIND, deployment.endpoint_name, deployment.name)
        props["provisioningState"] = "Updating" if old else "Creating"
        folder = runtime.deployment_folder(self._workspace, deployment.endpoint_name, deployment.name)
        runtime.write_json(folder / PROVISIONING_FILE, {"pid": os.getpid()})  # see _settled
        self._put(deployment.endpoint_name, deployment.name, payload)
        try:
            self._start(deployment.endpoint_name, deployment.name, payload)
        except RuntimeError as failure:
            runtime.stop_instances(runtime.deployment_folder(self._workspace, deployment.endpoint_name,
                                                             deployment.name))
            props["provisioningState"] = "Failed"
            self._put(deployment.endpoint_name, deployment.name, payload)
            runtime.write_routing(self._workspace, deployment.endpoint_name)
            error = service_error(
                HttpResponseError,
                f"Deployment '{deployment.name}' failed: its container crashed or never became ready (the scoring "
                f"script's init() failed, or the readiness probe did not succeed). Check the deployment's logs "
                f"(ml_client.online_deployments.get_logs). Last lines of the log:\n{failure}",
                400, code="ResourceNotReady")
            return LROPoller(None, None, lambda response: response, _FailedOperation(error))
        props["provisioningState"] = "Succeeded"
        self._put(deployment.endpoint_name, deployment.name, payload)
        runtime.write_routing(self._workspace, deployment.endpoint_name)
        return done(self.get(deployment.name, deployment.endpoint_name))

    def _put(self, endpoint: str, name: str, payload: dict) -> None:
        with self._store.transaction() as db:
            self._store.put(db, DEPLOYMENT_KIND, endpoint, name, RestOnlineDeployment(payload))

    def begin_delete(self, name: str, endpoint_name: str, *, local: Optional[bool] = False) -> LROPoller[None]:
        self._refuse_local(bool(local))
        self._deployment_row(name, endpoint_name)
        props = self._endpoint_row(endpoint_name).payload["properties"]
        live = {k.lower(): v for k, v in (props.get("traffic") or {}).items()}
        mirrored = {k.lower(): v for k, v in (props.get("mirrorTraffic") or {}).items()}
        if live.get(name.lower(), 0) > 0 or mirrored.get(name.lower(), 0) > 0:
            raise bad_request(f"Deployment '{name}' cannot be deleted while it takes traffic "
                              f"({live.get(name.lower(), 0)} percent live, {mirrored.get(name.lower(), 0)} percent "
                              f"mirrored). Set its traffic to 0 in endpoint '{endpoint_name}' first.")
        folder = runtime.deployment_folder(self._workspace, endpoint_name, name)
        runtime.stop_instances(folder)
        self._store.delete(DEPLOYMENT_KIND, endpoint_name, name)
        shutil.rmtree(folder, ignore_errors=True)
        runtime.write_routing(self._workspace, endpoint_name)
        return done(None)

    # -- what the SDK and the service resolve -------------------------------------------------------
    def _check(self, name: str, payload: dict, kubernetes: bool) -> None:
        props = payload["properties"]
        if not kubernetes:
            size = props.get("instanceType")
            if not size:
                raise bad_request(f"Deployment '{name}': instance_type is required for a managed online deployment "
                                  "(for example Standard_DS3_v2).")
            if find_size(size) is None:
                raise bad_request(f"Deployment '{name}': instance type '{size}' is not supported for managed online "
                                  "endpoints in this region. See the list of supported VM sizes.")
        # What the service fills in when the deployment leaves them out (the documented defaults).
        props["scaleSettings"] = props.get("scaleSettings") or {"scaleType": "Default"}
        if kubernetes:
            props["containerResourceRequirements"] = props.get("containerResourceRequirements") or {}
        props["requestSettings"] = {**DEFAULT_REQUEST_SETTINGS, **(props.get("requestSettings") or {})}
        for probe in ("livenessProbe", "readinessProbe"):
            props[probe] = {**DEFAULT_PROBE, **(props.get(probe) or {})}
        sku = payload.setdefault("sku", {"name": "Default"})
        if sku.get("capacity") is None:
            sku["capacity"] = 1
        if int(sku["capacity"]) < 1:
            raise bad_request(f"Deployment '{name}': instance_count must be at least 1; it is {sku['capacity']}.")
        self._check_scoring(name, props, props.get("model"))

    # -- what the deployment's instances get --------------------------------------------------------
    def _start(self, endpoint: str, name: str, payload: dict) -> None:
        props = payload["properties"]
        folder = runtime.deployment_folder(self._workspace, endpoint, name)
        runtime.stop_instances(folder)
        for stale in ("code", "azureml-models"):
            shutil.rmtree(folder / stale, ignore_errors=True)
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        for old_log in (folder / "logs").glob("instance-*.log"):
            old_log.unlink()
        init_log = []
        model_dir = folder / "azureml-models"
        if props.get("model"):
            model_dir = self._place_model(props["model"], folder, init_log)
        else:
            model_dir.mkdir(parents=True, exist_ok=True)
        if props.get("codeConfiguration"):
            code_id = props["codeConfiguration"]["codeId"]
            self._place_code(code_id, folder / "code", init_log)
            app_root = folder / "code"
            entry_script = app_root / props["codeConfiguration"]["scoringScript"]
        else:
            app_root, entry_script = folder, MLFLOW_SCORE_SCRIPT
            init_log.append("No scoring script: serving the MLflow model with the no-code scoring script.")
        (folder / "logs" / "storage-initializer.log").write_text("\n".join(init_log) + "\n")
        probe = props.get("readinessProbe") or {}
        ready_s = DEFAULT_READY_S
        if probe:
            ready_s = (_seconds(probe.get("initialDelay"), 10)
                       + _seconds(probe.get("period"), 10) * int(probe.get("failureThreshold") or 30))
        spec = {
            "entry_script": str(entry_script),
            "app_root": str(app_root),
            "model_dir": str(model_dir),
            "instance_count": max(1, min(int(payload["sku"]["capacity"]), MAX_LOCAL_INSTANCES)),
            "environment_variables": {k: str(v) for k, v in (props.get("environmentVariables") or {}).items()},
            # What the service sets in a deployment's container for the inference server.
            "server_variables": {"AML_APP_ROOT": str(app_root), "SERVICE_NAME": endpoint,
                                 "WORKSPACE_NAME": self._workspace.name},
            "ready_timeout_s": ready_s,
        }
        # How this Python differs from what Azure would install, first in every instance's log.
        notes = conda.deployment_notes(self._workspace, props.get("environmentId"),
                                       self._model_label(props.get("model")), model_dir, "serves this deployment")
        for index in range(spec["instance_count"]):
            (folder / "logs" / f"instance-{index}.log").write_text("".join(f"{line}\n" for line in notes))
        runtime.start_instances(folder, spec)

    def _model_label(self, model_id: str | None) -> str | None:
        if not model_id:
            return None
        row = self._model_row(model_id)
        return f"{row.name}:{row.version}"

    def _place_model(self, model_id: str, folder: Path, log: list[str]) -> Path:
        row = self._model_row(model_id)
        uri = row.payload["properties"]["modelUri"]
        if uri.startswith("azureml://jobs/"):
            uri = references.job_output_uri(self._workspace, uri)
        match = LONG_DATASTORE_URI.match(uri)
        if not match:
            raise bad_request(f"The files of model {row.name}:{row.version} ({uri}) are not in this workspace's "
                              "datastores, so the simulation cannot place them.")
        source = datastore_folder(self._workspace, match["datastore"]) / match["path"].rstrip("/")
        model_dir = folder / "azureml-models" / row.name / row.version
        model_dir.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, model_dir / source.name)
        elif source.is_file():
            shutil.copy2(source, model_dir / source.name)
        else:
            raise bad_request(f"The files of model {row.name}:{row.version} were not found at {uri}.")
        log.append(f"Downloaded model {row.name}:{row.version} from {uri} to {model_dir / source.name}")
        return model_dir

    def _place_code(self, code_id: str, destination: Path, log: list[str]) -> None:
        match = ARM_CODE.search(code_id)
        row = self._store.get("code", match["name"], match["version"]) if match else None
        if row is None:
            raise not_found(f"Code {code_id} was not found in workspace '{self._workspace.name}'.")
        uri = row.payload["properties"]["codeUri"]
        found = LONG_DATASTORE_URI.match(uri)
        source = datastore_folder(self._workspace, found["datastore"]) / found["path"].rstrip("/")
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            destination.mkdir(parents=True)
            shutil.copy2(source, destination / source.name)
        log.append(f"Downloaded code {match['name']}:{match['version']} from {uri} to {destination}")


def _seconds(duration: str | None, default: float) -> float:
    return runtime.iso_seconds(duration, default)

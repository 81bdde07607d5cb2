"""``ml_client.online_endpoints``: managed and Kubernetes online endpoints that really serve.

An endpoint is stored as the ``OnlineEndpoint`` payload the SDK's ``_to_rest_online_endpoint``
produces, plus what the service fills in (provisioning state, ``scoringUri``, ``swaggerUri``,
identity ids); its keys are kept apart, as secrets, and returned only by ``get_keys``. Creating
it starts its front door (``labkit.sim.endpoints.online_frontdoor``) on 127.0.0.1, so ``scoring_uri`` is a
real URL that ``requests.post`` reaches with the key, as on Azure.

The service's traffic rules, applied on every create or update:
- live traffic names only deployments of the endpoint, and adds up to 100 (or 0, no traffic);
- mirror traffic goes to one deployment at most, 50 percent at most, and not to a deployment
  that takes live traffic; Kubernetes endpoints do not mirror;
  (Azure ML's safe-rollout guide: "mirror traffic to only one deployment", "maximum ... 50%",
  "a deployment can receive only live traffic or mirrored traffic, not both", "mirroring isn't
  currently supported for Kubernetes online endpoints").

What differs on Azure: the endpoint URL is ``https://<name>.<region>.inference.ml.azure.com``
behind TLS, and creating an endpoint takes a minute or two; here it is ``http://127.0.0.1:<port>``
and immediate. Kubernetes endpoints are served here exactly as managed ones.
"""
from __future__ import annotations

import json
import shutil
import time
from typing import Any, Optional, Union

from azure.ai.ml._restclient.arm_ml_service.models import OnlineEndpoint as RestOnlineEndpoint
from azure.ai.ml._utils._endpoint_utils import validate_response
from azure.ai.ml.constants._endpoint import EndpointInvokeFields, EndpointKeyType
from azure.ai.ml.entities import OnlineEndpoint
from azure.ai.ml.entities._assets import Data
from azure.ai.ml.entities._endpoint.online_endpoint import EndpointAadToken, EndpointAuthKeys, EndpointAuthToken
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import OnlineEndpointOperations as _SdkOnlineEndpointOperations
from azure.core.credentials import AccessToken
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller

from labkit.sim.endpoints import online_runtime as runtime
from labkit.sim.core.base import SimOperations, bad_request, done, pages, readable, with_service_fields
from labkit.sim.endpoints.deployments import EndpointLookup
from labkit.sim.endpoints.online_runtime import DEPLOYMENT_KIND, ENDPOINT_KIND
from labkit.sim.core.store import load_rest_class

MAX_MIRROR_PERCENT = 50
KEEP_TOKENS = 50
SIMULATED_TENANT = "00000000-0000-0000-0000-000000000000"


def _strip_zeroes(traffic: dict | None) -> dict:
    # What the SDK sends: names lower-cased, zero shares left out.
    return {str(k).lower(): int(v) for k, v in (traffic or {}).items() if v and int(v) != 0}


def check_traffic(endpoint: str, traffic: dict, mirror: dict, deployments: set[str], kubernetes: bool) -> None:
    """The service's traffic rules; a ``HttpResponseError`` (400) for the first one broken."""
    for name, share in traffic.items():
        if name not in deployments:
            raise bad_request(f"Traffic cannot be routed to deployment '{name}': endpoint '{endpoint}' has no "
                              f"such deployment (it has: {', '.join(sorted(deployments)) or 'none'}).")
        if not 0 <= share <= 100:
            raise bad_request(f"Traffic for deployment '{name}' must be between 0 and 100; it is {share}.")
    total = sum(traffic.values())
    if total not in (0, 100):
        raise bad_request(f"The traffic of endpoint '{endpoint}' adds up to {total}; the total must be 100 "
                          "(or 0, to send no traffic).")
    if not mirror:
        return
    if kubernetes:
        raise bad_request("Mirror traffic is not supported for Kubernetes online endpoints.")
    if len(mirror) > 1:
        raise bad_request(f"Traffic can be mirrored to only one deployment of an endpoint; got {sorted(mirror)}.")
    [(name, share)] = mirror.items()
    if name not in deployments:
        raise bad_request(f"Mirror traffic cannot go to deployment '{name}': endpoint '{endpoint}' has no such "
                          "deployment.")
    if not 0 <= share <= MAX_MIRROR_PERCENT:
        raise bad_request(f"Mirror traffic to deployment '{name}' is {share} percent; at most "
                          f"{MAX_MIRROR_PERCENT} percent of the traffic can be mirrored.")
    if traffic.get(name, 0) > 0:
        raise bad_request(f"Deployment '{name}' takes live traffic, so it cannot also receive mirror traffic: a "
                          "deployment receives either live traffic or mirrored traffic, not both.")


class OnlineEndpointOperations(EndpointLookup, SimOperations, _SdkOnlineEndpointOperations):
    """Create, read, call and delete the simulated workspace's online endpoints."""

    _ENDPOINT_KIND, _DEPLOYMENT_KIND, _ENDPOINT_LABEL = ENDPOINT_KIND, DEPLOYMENT_KIND, "Online endpoint"

    # -- helpers ------------------------------------------------------------------------------------
    def _row(self, name: str):
        return self._endpoint_row(name)

    def _entity(self, row) -> OnlineEndpoint:
        rest = with_service_fields(row, self._workspace.child_id("onlineEndpoints", row.name), row.name)
        return OnlineEndpoint._from_rest_object(rest)

    def _location(self) -> str:
        return str(self._group("_workspaces").get(self._workspace.name).location)

    @staticmethod
    def _refuse_local(local: bool) -> None:
        if local:
            raise NotImplementedError("Local (Docker) endpoints are not part of the simulated workspace: leave "
                                      "local=False, the simulated endpoint already runs on this machine.")

    def _ensure_serving(self, name: str) -> None:
        """Bring an endpoint's processes back if they are gone (a new kernel, a restarted machine)."""
        row = self._row(name)
        folder = runtime.endpoint_folder(self._workspace, name)
        for deployment in self._deployment_rows(name):
            if deployment.payload["properties"].get("provisioningState") == "Succeeded":
                try:
                    runtime.restart_if_gone(runtime.deployment_folder(self._workspace, name, deployment.version))
                except RuntimeError:
                    pass  # its log says why; calls routed to it get an error, as from a crashed container
        runtime.write_routing(self._workspace, name)
        port = int(row.payload["properties"]["scoringUri"].split(":")[2].split("/")[0])
        actual = runtime.ensure_frontdoor(folder, port)
        if actual != port:
            self._set_uris(name, actual)

    def _set_uris(self, name: str, port: int) -> None:
        with self._store.transaction() as db:
            found = db.execute("SELECT payload, rest_class FROM resources WHERE kind=? AND name=? AND version=''",
                               (ENDPOINT_KIND, name)).fetchone()
            payload = json.loads(found["payload"])
            payload["properties"]["scoringUri"] = f"http://{runtime.LOOPBACK}:{port}/score"
            payload["properties"]["swaggerUri"] = f"http://{runtime.LOOPBACK}:{port}/swagger.json"
            self._store.put(db, ENDPOINT_KIND, name, "", load_rest_class(found["rest_class"])(payload))

    # -- reading --------------------------------------------------------------------------------------
    def list(self, *, local: bool = False) -> ItemPaged[OnlineEndpoint]:
        self._refuse_local(local)
        return pages(readable(self._store.list(ENDPOINT_KIND), self._entity))

    def get(self, name: str, *, local: bool = False) -> OnlineEndpoint:
        self._refuse_local(local)
        self._ensure_serving(name)
        endpoint = self._entity(self._row(name))
        # As the SDK does: deployments without live or mirror traffic show with 0.
        for deployment in self._deployment_rows(name):
            if not endpoint.traffic.get(deployment.version) and not endpoint.mirror_traffic.get(deployment.version):
                endpoint.traffic[deployment.version] = 0
        return endpoint

    def get_keys(self, name: str) -> Union[EndpointAuthKeys, EndpointAuthToken, EndpointAadToken]:
        return self._get_online_credentials(name=name)

    def _get_online_credentials(self, name: str, auth_mode: Optional[str] = None):
        row = self._row(name)
        auth_mode = (auth_mode or row.payload["properties"].get("authMode") or "").lower()
        if auth_mode == "key":
            keys = self._store.get_secret(ENDPOINT_KIND, name) or {}
            return EndpointAuthKeys(primary_key=keys.get("primaryKey"), secondary_key=keys.get("secondaryKey"))
        if auth_mode == "aadtoken":
            from labkit.sim.core.credentials import FAKE_TOKEN

            return EndpointAadToken(AccessToken(FAKE_TOKEN, int(time.time()) + runtime.AML_TOKEN_LIFETIME_S))
        token, now = runtime.new_key(), time.time()
        expiry = now + runtime.AML_TOKEN_LIFETIME_S
        with self._store.transaction() as db:
            found = db.execute("SELECT value FROM secrets WHERE kind=? AND name=?", (ENDPOINT_KIND, name)).fetchone()
            credentials = json.loads(found["value"]) if found else {}
            tokens = {t: e for t, e in (credentials.get("tokens") or {}).items() if e > now}
            tokens[token] = expiry
            credentials["tokens"] = dict(sorted(tokens.items(), key=lambda item: item[1])[-KEEP_TOKENS:])
            self._store.put_secret(db, ENDPOINT_KIND, name, credentials)
        runtime.write_routing(self._workspace, name)
        return EndpointAuthToken(access_token=token, expiry_time_utc=int(expiry),
                                 refresh_after_time_utc=int(now + runtime.AML_TOKEN_LIFETIME_S / 2),
                                 token_type="Bearer")

    # -- writing --------------------------------------------------------------------------------------
    def begin_create_or_update(self, endpoint: OnlineEndpoint, *, local: bool = False) -> LROPoller[OnlineEndpoint]:
        self._refuse_local(local)
        endpoint.traffic = _strip_zeroes(endpoint.traffic)
        endpoint.mirror_traffic = _strip_zeroes(endpoint.mirror_traffic)
        rest = endpoint._to_rest_online_endpoint(location=self._location())
        payload = rest.as_dict()
        props = payload["properties"]
        kubernetes = bool(getattr(endpoint, "compute", None))
        if kubernetes:
            props["compute"] = self._resolve_kubernetes_compute(endpoint.compute)
        if not props.get("authMode"):
            props["authMode"] = "Key"  # the SDK's default auth mode for a new endpoint is key
        deployments = {row.version for row in self._deployment_rows(endpoint.name)}
        check_traffic(endpoint.name, props.get("traffic") or {}, props.get("mirrorTraffic") or {}, deployments,
                      kubernetes)
        props["provisioningState"] = "Succeeded"
        props.setdefault("properties", {})
        # Read what exists and write the result under the store's write lock: two learners
        # sending the same endpoint at once get one endpoint, one address and one pair of keys.
        with self._store.transaction() as db:
            old = self._store.get(ENDPOINT_KIND, endpoint.name)
            if old is not None and bool(old.payload["properties"].get("compute")) != kubernetes:
                raise bad_request(f"Endpoint '{endpoint.name}' is a {'Kubernetes' if not kubernetes else 'managed'} "
                                  "online endpoint; its type cannot change. Delete it and create it again.")
            port = runtime.free_port()
            if old is not None:
                port = int(old.payload["properties"]["scoringUri"].split(":")[2].split("/")[0])
            props["scoringUri"] = f"http://{runtime.LOOPBACK}:{port}/score"
            props["swaggerUri"] = f"http://{runtime.LOOPBACK}:{port}/swagger.json"
            identity = payload.get("identity") or {}
            if "SystemAssigned" in (identity.get("type") or ""):
                previous = (old.payload.get("identity") or {}) if old else {}
                identity["principalId"] = previous.get("principalId") or runtime.new_key()[:36]
                identity["tenantId"] = SIMULATED_TENANT
            self._store.put(db, ENDPOINT_KIND, endpoint.name, "", RestOnlineEndpoint(payload))
            if old is None or not self._store.get_secret(ENDPOINT_KIND, endpoint.name):
                self._store.put_secret(db, ENDPOINT_KIND, endpoint.name,
                                       {"primaryKey": runtime.new_key(), "secondaryKey": runtime.new_key(),
                                        "tokens": {}})
        self._ensure_serving(endpoint.name)
        return done(self._entity(self._row(endpoint.name)))

    def _resolve_kubernetes_compute(self, compute: str) -> str:
        name = str(compute).rsplit("/", 1)[-1].removeprefix("azureml:")
        row = self._store.get("compute", name.lower())
        if row is None or row.payload["properties"].get("computeType") != "Kubernetes":
            raise bad_request(f"Compute '{name}' is not a Kubernetes compute attached to workspace "
                              f"'{self._workspace.name}'; a Kubernetes online endpoint needs one "
                              "(ml_client.compute.begin_attach(KubernetesCompute(...))).")
        return self._workspace.child_id("computes", name)

    def begin_delete(self, name: Optional[str] = None, *, local: bool = False) -> LROPoller[None]:
        self._refuse_local(local)
        self._row(name)
        folder = runtime.endpoint_folder(self._workspace, name)
        runtime.stop_endpoint(folder)
        with self._store.transaction() as db:
            db.execute("DELETE FROM resources WHERE kind=? AND name=?", (DEPLOYMENT_KIND, name))
        self._store.delete(ENDPOINT_KIND, name)
        shutil.rmtree(folder, ignore_errors=True)
        return done(None)

    def begin_regenerate_keys(self, name: str, *, key_type: str = EndpointKeyType.PRIMARY_KEY_TYPE) -> LROPoller[None]:
        row = self._row(name)
        if (row.payload["properties"].get("authMode") or "").lower() != "key":
            raise ValidationException(
                message=f"Endpoint '{name}' does not use keys for authentication.",
                target=ErrorTarget.ONLINE_ENDPOINT,
                no_personal_data_message="Endpoint does not use keys for authentication.",
                error_category=ErrorCategory.USER_ERROR, error_type=ValidationErrorType.INVALID_VALUE)
        which = {EndpointKeyType.PRIMARY_KEY_TYPE: "primaryKey",
                 EndpointKeyType.SECONDARY_KEY_TYPE: "secondaryKey"}.get(str(key_type).lower())
        if which is None:
            msg = "Key type must be 'primary' or 'secondary'."
            raise ValidationException(message=msg, target=ErrorTarget.ONLINE_ENDPOINT, no_personal_data_message=msg,
                                      error_category=ErrorCategory.USER_ERROR,
                                      error_type=ValidationErrorType.INVALID_VALUE)
        with self._store.transaction() as db:
            found = db.execute("SELECT value FROM secrets WHERE kind=? AND name=?", (ENDPOINT_KIND, name)).fetchone()
            credentials = json.loads(found["value"]) if found else {}
            credentials[which] = runtime.new_key()
            self._store.put_secret(db, ENDPOINT_KIND, name, credentials)
        runtime.write_routing(self._workspace, name)  # the old key stops working now
        return done(None)

    # -- calling ----------------------------------------------------------------------------------------
    def invoke(self, endpoint_name: str, *, request_file: Optional[str] = None, deployment_name: Optional[str] = None,
               input_data: Optional[Union[str, Data]] = None, params_override: Any = None, local: bool = False,
               **kwargs: Any) -> str:
        self._refuse_local(local)
        with open(request_file, "rb") as f:  # type: ignore[arg-type]
            data = json.loads(f.read())
        if deployment_name:
            self._validate_deployment_name(endpoint_name, deployment_name)
        self._ensure_serving(endpoint_name)
        row = self._row(endpoint_name)
        keys = self._get_online_credentials(endpoint_name, row.payload["properties"].get("authMode"))
        key = keys.primary_key if isinstance(keys, EndpointAuthKeys) else keys.access_token
        headers = dict(EndpointInvokeFields.DEFAULT_HEADER)
        if key:
            headers[EndpointInvokeFields.AUTHORIZATION] = f"Bearer {key}"
        if deployment_name:
            headers[EndpointInvokeFields.MODEL_DEPLOYMENT] = deployment_name
        response = self._pipeline().post(row.payload["properties"]["scoringUri"], json=data, headers=headers)
        validate_response(response)
        return str(response.text())

    def _pipeline(self):
        # The SDK posts through an azure-core pipeline (its retry policy included); so does the simulation.
        from azure.ai.ml._utils._http_utils import HttpPipeline

        if getattr(self, "_requests_pipeline", None) is None:
            self._requests_pipeline = HttpPipeline()
        return self._requests_pipeline

    def _validate_deployment_name(self, endpoint_name: str, deployment_name: str) -> None:
        self._check_deployment_named(endpoint_name, deployment_name, ErrorTarget.ONLINE_ENDPOINT,
                                     anonymous_message="Deployment name not found for this endpoint")

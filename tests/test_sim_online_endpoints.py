"""Online endpoints on the simulated workspace: real serving, with the service's rules.

Each deployment runs azureml-inference-server-http in processes of its own; requests go
through the endpoint's front door with ``requests.post(scoring_uri, ...)`` exactly as a lab
calls an Azure endpoint. After every test no process of its workspace may be left running.
"""
from __future__ import annotations

import json
import math
import os
import textwrap
import time
from pathlib import Path

import pytest
from helpers import assert_no_processes_under, processes_under, sklearn_pins, write_files
import requests
from azure.ai.ml.entities import (
    CodeConfiguration,
    KubernetesCompute,
    KubernetesOnlineDeployment,
    KubernetesOnlineEndpoint,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineRequestSettings,
)
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

ENV = "AzureML-sklearn-1.5@latest"
SIZE = "Standard_DS3_v2"
AKS_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dp100-labs/providers/"
          "Microsoft.ContainerService/managedClusters/aks-labs")

SCORE = textwrap.dedent("""
    import json, os, time

    def init():
        global files
        if os.environ.get("FAIL_INIT"):
            raise RuntimeError("init failed on purpose")
        files = sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))

    def run(raw_data):
        data = json.loads(raw_data)
        if data.get("fail"):
            raise ValueError("run failed on purpose")
        time.sleep(data.get("sleep", 0))
        print("scored by", os.environ["COLOR"])
        return {"color": os.environ["COLOR"], "files": files, "rows": len(data.get("data", []))}
""")


@pytest.fixture(autouse=True)
def no_orphans(sim_root):
    """Set up before ``ml_client``, so it checks after the client's teardown (deactivate) ran."""
    yield
    assert_no_processes_under(sim_root, timeout=10, interval=0.1, message="endpoint processes were left running")


@pytest.fixture
def project(tmp_path):
    return write_files(tmp_path, {"src/score.py": SCORE, "model/weights.txt": "0.5\n",
                                  "single.pkl": b"not really a pickle"})


def custom(name, endpoint, project, color=None, model="model", **settings):
    settings = {"instance_type": SIZE, "instance_count": 1, **settings}
    return ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint, model=Model(path=str(project / model)),
        code_configuration=CodeConfiguration(code=str(project / "src"), scoring_script="score.py"),
        environment=ENV, environment_variables={"COLOR": color or name, **settings.pop("variables", {})},
        **settings)


def endpoint_with(ml_client, name, traffic=None, auth_mode="key", **kwargs):
    endpoint = ml_client.online_endpoints.get(name) if traffic is not None else ManagedOnlineEndpoint(
        name=name, auth_mode=auth_mode, **kwargs)
    if traffic is not None:
        endpoint.traffic = traffic
    return ml_client.online_endpoints.begin_create_or_update(endpoint).result()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def status_of(error) -> int:
    return error.value.status_code


# -- key auth, a custom score.py, the error shape, logs ------------------------------------------------
def test_key_endpoint_serves_score_py_and_checks_the_key(ml_client, project, tmp_path):
    endpoint = endpoint_with(ml_client, "ep-key")
    assert endpoint.provisioning_state.lower() == "succeeded"
    assert endpoint.scoring_uri.startswith("http://127.0.0.1:") and endpoint.scoring_uri.endswith("/score")
    blue = ml_client.online_deployments.begin_create_or_update(custom("blue", "ep-key", project)).result()
    assert blue.provisioning_state.lower() == "succeeded"
    assert "/models/" in blue.model and "/environments/AzureML-sklearn-1.5/" in blue.environment
    endpoint = endpoint_with(ml_client, "ep-key", traffic={"blue": 100})
    keys = ml_client.online_endpoints.get_keys("ep-key")
    assert keys.primary_key and keys.secondary_key and keys.primary_key != keys.secondary_key

    answer = requests.post(endpoint.scoring_uri, json={"data": [[1, 2], [3, 4]]}, headers=bearer(keys.primary_key))
    assert answer.status_code == 200, answer.text
    # A folder model lands under AZUREML_MODEL_DIR by its folder name, as on Azure.
    assert answer.json() == {"color": "blue", "files": ["model"], "rows": 2}
    assert answer.headers["azureml-model-deployment"] == "blue"
    assert requests.post(endpoint.scoring_uri, json={}, headers=bearer(keys.secondary_key)).status_code == 200

    assert requests.post(endpoint.scoring_uri, json={}).status_code == 401
    assert requests.post(endpoint.scoring_uri, json={}, headers=bearer("not-the-key")).status_code == 401
    assert requests.post(endpoint.scoring_uri, json={}, headers={"Authorization": keys.primary_key}).status_code == 401

    # A run() that raises: the inference server answers 500, the endpoint passes it on as 424.
    failed = requests.post(endpoint.scoring_uri, json={"fail": True}, headers=bearer(keys.primary_key))
    assert failed.status_code == 424
    assert failed.headers["ms-azureml-model-error-statuscode"] == "500"
    assert failed.json() == {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}

    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"data": [[0, 0]]}))
    assert json.loads(ml_client.online_endpoints.invoke("ep-key", request_file=str(request_file)))["rows"] == 1
    assert json.loads(ml_client.online_endpoints.invoke(
        "ep-key", request_file=str(request_file), deployment_name="blue"))["color"] == "blue"
    with pytest.raises(ValidationException):
        ml_client.online_endpoints.invoke("ep-key", request_file=str(request_file), deployment_name="nope")
    request_file.write_text(json.dumps({"fail": True}))
    with pytest.raises(HttpResponseError) as error:
        ml_client.online_endpoints.invoke("ep-key", request_file=str(request_file))
    assert status_of(error) == 424

    # Regenerating a key: the old one stops working at once, the other key is untouched.
    ml_client.online_endpoints.begin_regenerate_keys("ep-key", key_type="primary").result()
    new_keys = ml_client.online_endpoints.get_keys("ep-key")
    assert new_keys.primary_key != keys.primary_key and new_keys.secondary_key == keys.secondary_key
    assert requests.post(endpoint.scoring_uri, json={}, headers=bearer(keys.primary_key)).status_code == 401
    assert requests.post(endpoint.scoring_uri, json={}, headers=bearer(new_keys.primary_key)).status_code == 200
    with pytest.raises(ValidationException):
        ml_client.online_endpoints.begin_regenerate_keys("ep-key", key_type="tertiary")

    logs = ml_client.online_deployments.get_logs("blue", "ep-key", lines=200)
    assert "scored by blue" in logs and "ValueError: run failed on purpose" in logs
    assert len(ml_client.online_deployments.get_logs("blue", "ep-key", lines=3).splitlines()) == 3
    storage = ml_client.online_deployments.get_logs("blue", "ep-key", lines=10, container_type="storage-initializer")
    assert "Downloaded model" in storage
    assert [e.name for e in ml_client.online_endpoints.list()] == ["ep-key"]
    assert [d.name for d in ml_client.online_deployments.list("ep-key")] == ["blue"]


# -- aml_token auth, MLflow no-code deployment, a single-file model ---------------------------------
@pytest.fixture
def mlflow_model(tmp_path):
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    features = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    target = 2 * features["x1"] + 3 * features["x2"] + 1
    regression = LinearRegression().fit(features, target)
    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(regression, str(path), signature=infer_signature(features, target),
                              pip_requirements=sklearn_pins())
    return path


def test_aml_token_endpoint_serves_an_mlflow_model_without_code(ml_client, mlflow_model, tmp_path):
    endpoint = endpoint_with(ml_client, "ep-token", auth_mode="aml_token")
    assert endpoint.auth_mode == "aml_token"
    deployment = ManagedOnlineDeployment(name="mlflow", endpoint_name="ep-token", instance_type=SIZE, instance_count=1,
                                         model=Model(path=str(mlflow_model), type="mlflow_model"))
    ml_client.online_deployments.begin_create_or_update(deployment).result()
    endpoint = endpoint_with(ml_client, "ep-token", traffic={"mlflow": 100})
    token = ml_client.online_endpoints.get_keys("ep-token")
    assert token.access_token and token.expiry_time_utc > time.time()

    split = {"input_data": {"columns": ["x1", "x2"], "index": [0, 1], "data": [[1.0, 1.0], [2.0, 0.0]]}}
    answer = requests.post(endpoint.scoring_uri, json=split, headers=bearer(token.access_token))
    assert answer.status_code == 200, answer.text
    assert [round(v, 6) for v in answer.json()] == [6.0, 5.0]
    # The index is optional in the split orientation.
    no_index = {"input_data": {"columns": ["x1", "x2"], "data": [[0.0, 0.0]]}}
    assert [round(v, 6) for v in requests.post(endpoint.scoring_uri, json=no_index,
                                               headers=bearer(token.access_token)).json()] == [1.0]
    # Integers meet double columns: cast to the signature's types and scored, as Azure's MLflow
    # scoring script does (the official online-endpoint lab sends integers to such a model).
    integers = {"input_data": {"columns": ["x1", "x2"], "index": [0, 1], "data": [[1, 1], [2, 0]]}}
    answer = requests.post(endpoint.scoring_uri, json=integers, headers=bearer(token.access_token))
    assert answer.status_code == 200, answer.text
    assert [round(v, 6) for v in answer.json()] == [6.0, 5.0]
    # A value that cannot be cast, or a missing column, is the model's error: 424.
    text = {"input_data": {"columns": ["x1", "x2"], "index": [0], "data": [["one", 1]]}}
    assert requests.post(endpoint.scoring_uri, json=text, headers=bearer(token.access_token)).status_code == 424
    missing = {"input_data": {"columns": ["x1"], "index": [0], "data": [[1.0]]}}
    assert requests.post(endpoint.scoring_uri, json=missing, headers=bearer(token.access_token)).status_code == 424
    # Records orientation is not an input format of Azure ML online endpoints.
    records = {"input_data": [{"x1": 1.0, "x2": 1.0}]}
    assert requests.post(endpoint.scoring_uri, json=records, headers=bearer(token.access_token)).status_code == 424
    assert requests.post(endpoint.scoring_uri, json=split, headers=bearer("expired-or-made-up")).status_code == 401

    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(split))
    assert [round(v, 6) for v in json.loads(ml_client.online_endpoints.invoke("ep-token",
                                                                               request_file=str(request_file)))] == [6.0, 5.0]
    with pytest.raises(ValidationException):
        ml_client.online_endpoints.begin_regenerate_keys("ep-token")


def test_the_deployment_log_names_the_versions_a_model_pins_that_differ(ml_client, mlflow_model):
    import sklearn

    # A model saved by an older scikit-learn, as its MLmodel and conda file record it.
    mlmodel = mlflow_model / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace(f"sklearn_version: {sklearn.__version__}",
                                                   "sklearn_version: 1.0.2"))
    conda_file = mlflow_model / "conda.yaml"
    conda_file.write_text(conda_file.read_text().replace(f"scikit-learn=={sklearn.__version__}",
                                                         "scikit-learn==1.0.2"))
    endpoint_with(ml_client, "ep-versions")
    ml_client.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
        name="old", endpoint_name="ep-versions", instance_type=SIZE, instance_count=1,
        model=Model(name="old-sklearn", path=str(mlflow_model), type="mlflow_model"))).result()
    log = ml_client.online_deployments.get_logs("old", "ep-versions", lines=500).splitlines()
    notes = [line for line in log if line.startswith("[simulated workspace]")]
    assert notes and log[:len(notes)] == notes  # said first, before the server's own output
    [versions] = [line for line in notes if "pins package versions" in line]
    assert "Model old-sklearn:1" in versions
    assert f"scikit-learn 1.0.2 (installed here: {sklearn.__version__})" in versions


def test_single_file_model_lands_under_model_dir_by_its_file_name(ml_client, project):
    endpoint_with(ml_client, "ep-file")
    ml_client.online_deployments.begin_create_or_update(
        custom("blue", "ep-file", project, model="single.pkl")).result()
    key = ml_client.online_endpoints.get_keys("ep-file").primary_key
    uri = ml_client.online_endpoints.get("ep-file").scoring_uri
    # No live traffic yet: only a request naming the deployment is served.
    assert requests.post(uri, json={}, headers=bearer(key)).status_code == 404
    answer = requests.post(uri, json={}, headers={**bearer(key), "azureml-model-deployment": "blue"})
    assert answer.json()["files"] == ["single.pkl"]


# -- traffic: split, blue/green, mirror, the rules ---------------------------------------------------
def colors(uri, key, n, **headers):
    seen = []
    with requests.Session() as session:
        for _ in range(n):
            answer = session.post(uri, json={}, headers={**bearer(key), **headers})
            assert answer.status_code == 200, (answer.status_code, answer.text, dict(answer.headers))
            seen.append(answer.json()["color"])
    return seen


def scored(ml_client, deployment, endpoint):
    return ml_client.online_deployments.get_logs(deployment, endpoint, lines=100000).count(
        f"scored by {deployment}")


def within(observed: int, n: int, share: float) -> bool:
    # Binomial count: 4 standard deviations either side (a false alarm about once in 16,000 runs,
    # though the front door's draws are seeded and so repeat exactly).
    return abs(observed - n * share) <= 4 * math.sqrt(n * share * (1 - share))


def test_traffic_split_blue_green_shift_and_mirroring(ml_client, project):
    endpoint_with(ml_client, "ep-traffic")
    for color in ("blue", "green"):
        ml_client.online_deployments.begin_create_or_update(custom(color, "ep-traffic", project)).result()
    endpoint = endpoint_with(ml_client, "ep-traffic", traffic={"blue": 80, "green": 20})
    assert ml_client.online_endpoints.get("ep-traffic").traffic == {"blue": 80, "green": 20}
    key = ml_client.online_endpoints.get_keys("ep-traffic").primary_key
    seen = colors(endpoint.scoring_uri, key, 200)
    assert within(seen.count("green"), 200, 0.2), seen.count("green")
    # The header overrides the split.
    assert set(colors(endpoint.scoring_uri, key, 10, **{"azureml-model-deployment": "green"})) == {"green"}

    # Blue/green: all live traffic to green.
    endpoint_with(ml_client, "ep-traffic", traffic={"blue": 0, "green": 100})
    assert ml_client.online_endpoints.get("ep-traffic").traffic == {"blue": 0, "green": 100}
    assert set(colors(endpoint.scoring_uri, key, 20)) == {"green"}

    # Mirror 20 percent to blue: callers see only green; blue scores about a fifth of them.
    endpoint = ml_client.online_endpoints.get("ep-traffic")
    endpoint.traffic, endpoint.mirror_traffic = {"green": 100}, {"blue": 20}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    assert ml_client.online_endpoints.get("ep-traffic").mirror_traffic == {"blue": 20}
    before = scored(ml_client, "blue", "ep-traffic")
    assert set(colors(endpoint.scoring_uri, key, 200)) == {"green"}
    time.sleep(0.5)  # mirrored copies are sent in the background
    mirrored = scored(ml_client, "blue", "ep-traffic") - before
    assert within(mirrored, 200, 0.2), mirrored
    # A request naming a deployment is not mirrored.
    before = scored(ml_client, "blue", "ep-traffic")
    colors(endpoint.scoring_uri, key, 20, **{"azureml-model-deployment": "green"})
    time.sleep(0.3)
    assert scored(ml_client, "blue", "ep-traffic") == before

    refused = [
        ({"blue": 50, "green": 40}, {}),              # does not add up to 100
        ({"green": 100, "purple": 0}, {"purple": 10}),  # no such deployment
        ({"green": 60, "red": 40}, {}),               # no such deployment
        ({"green": 100}, {"blue": 60}),               # more than 50 percent mirrored
        ({"green": 100}, {"green": 10}),              # mirror to a deployment with live traffic
        ({"blue": 50, "green": 50}, {"blue": 10}),    # same
    ]
    for traffic, mirror in refused:
        endpoint = ml_client.online_endpoints.get("ep-traffic")
        endpoint.traffic, endpoint.mirror_traffic = traffic, mirror
        with pytest.raises(HttpResponseError) as error:
            ml_client.online_endpoints.begin_create_or_update(endpoint)
        assert status_of(error) == 400, (traffic, mirror)
    after = ml_client.online_endpoints.get("ep-traffic")  # the refused updates changed nothing
    assert after.traffic == {"green": 100} and after.mirror_traffic == {"blue": 20}

    # A deployment taking traffic cannot be deleted; with none it can, and its processes stop.
    with pytest.raises(HttpResponseError) as error:
        ml_client.online_deployments.begin_delete("green", "ep-traffic")
    assert status_of(error) == 400
    endpoint = ml_client.online_endpoints.get("ep-traffic")
    endpoint.traffic, endpoint.mirror_traffic = {"green": 100}, {}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    blue_folder = Path(ml_client._sim_workspace.folder) / "online_endpoints" / "ep-traffic" / "deployments" / "blue"
    assert processes_under(blue_folder)
    ml_client.online_deployments.begin_delete("blue", "ep-traffic").result()
    assert processes_under(blue_folder) == []
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_deployments.get("blue", "ep-traffic")
    assert set(colors(endpoint.scoring_uri, key, 5)) == {"green"}


# -- what the service refuses, failures, timeouts, Kubernetes ----------------------------------------
def test_refusals_failures_and_request_timeout(ml_client, project):
    with pytest.raises(HttpResponseError) as error:  # traffic to a deployment that does not exist yet
        ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="ep-new", traffic={"blue": 100}))
    assert status_of(error) == 400
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_deployments.begin_create_or_update(custom("blue", "no-such-endpoint", project))
    endpoint_with(ml_client, "ep-rules")
    bad = [
        custom("blue", "ep-rules", project, instance_type="Standard_Made_Up"),
        custom("blue", "ep-rules", project, instance_count=0),
        ManagedOnlineDeployment(name="blue", endpoint_name="ep-rules", instance_type=SIZE, instance_count=1,
                                model=Model(path=str(project / "model")),
                                code_configuration=CodeConfiguration(code=str(project / "src"),
                                                                     scoring_script="score.py")),  # no environment
        ManagedOnlineDeployment(name="blue", endpoint_name="ep-rules", instance_type=SIZE, instance_count=1,
                                model=Model(path=str(project / "model"))),  # custom model, no scoring script
    ]
    for deployment in bad:
        with pytest.raises(HttpResponseError) as error:
            ml_client.online_deployments.begin_create_or_update(deployment)
        assert status_of(error) == 400
    assert list(ml_client.online_deployments.list("ep-rules")) == []

    # init() that raises: the operation fails, the deployment is Failed, nothing keeps running.
    poller = ml_client.online_deployments.begin_create_or_update(
        custom("broken", "ep-rules", project, variables={"FAIL_INIT": "1"}))
    with pytest.raises(HttpResponseError, match="ResourceNotReady"):
        poller.result()
    assert ml_client.online_deployments.get("broken", "ep-rules").provisioning_state.lower() == "failed"
    assert "init failed on purpose" in ml_client.online_deployments.get_logs("broken", "ep-rules", lines=100)

    # request_timeout_ms is enforced by the endpoint: 408 for a slower run().
    ml_client.online_deployments.begin_create_or_update(custom(
        "slow", "ep-rules", project, request_settings=OnlineRequestSettings(request_timeout_ms=300))).result()
    endpoint = endpoint_with(ml_client, "ep-rules", traffic={"slow": 100})
    key = ml_client.online_endpoints.get_keys("ep-rules").primary_key
    assert requests.post(endpoint.scoring_uri, json={"sleep": 1.0}, headers=bearer(key)).status_code == 408
    time.sleep(0.8)  # the single worker finishes the slow call before the next
    assert requests.post(endpoint.scoring_uri, json={}, headers=bearer(key)).status_code == 200

    # Deleting the endpoint deletes its deployments and stops their processes.
    folder = Path(ml_client._sim_workspace.folder) / "online_endpoints" / "ep-rules"
    ml_client.online_endpoints.begin_delete("ep-rules").result()
    assert processes_under(folder) == []
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_endpoints.get("ep-rules")
    with pytest.raises(requests.ConnectionError):
        requests.post(endpoint.scoring_uri, json={}, headers=bearer(key), timeout=2)


def _exchange(port: int, raw: bytes, answers: int = 1, wait_for_continue: bytes | None = None) -> bytes:
    """Send raw bytes to the front door on one connection and read until ``answers`` answers came."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(raw)
        received = b""
        if wait_for_continue is not None:
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            connection.sendall(wait_for_continue)
        while received.count(b"HTTP/1.1 2") + received.count(b"HTTP/1.1 4") < answers or not received.endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_the_front_door_speaks_http_1_1_as_clients_send_it(ml_client, project):
    """curl, requests and raw clients: keep-alive with pipelined requests, a chunked body,
    ``Expect: 100-continue`` (curl sends it for large bodies), ``Connection: close``, and a
    request that is not HTTP (400, the connection closed)."""
    endpoint_with(ml_client, "ep-wire")
    ml_client.online_deployments.begin_create_or_update(custom("blue", "ep-wire", project)).result()
    endpoint = endpoint_with(ml_client, "ep-wire", traffic={"blue": 100})
    key = ml_client.online_endpoints.get_keys("ep-wire").primary_key
    port = int(endpoint.scoring_uri.split(":")[2].split("/")[0])
    head = f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n".encode()
    body = json.dumps({"data": [[1, 2], [3, 4], [5, 6]]}).encode()
    plain = head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    two = _exchange(port, plain + plain, answers=2)
    assert two.count(b"HTTP/1.1 200 OK") == 2 and two.count(b'"rows": 3') == 2, two

    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    assert b'"rows": 3' in _exchange(port, chunked)

    expecting = head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer = _exchange(port, expecting, wait_for_continue=body)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") and b'"rows": 3' in answer

    closing = plain.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nConnection: close\r\n")
    answer = _exchange(port, closing + plain, answers=2)  # the second request is never read
    assert answer.count(b"HTTP/1.1 200 OK") == 1 and b"\r\nconnection: close\r\n" in answer.lower()

    assert _exchange(port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    ml_client.online_endpoints.begin_delete("ep-wire").result()


def test_kubernetes_endpoint_is_served_and_does_not_mirror(ml_client, project):
    ml_client.compute.begin_attach(KubernetesCompute(name="k8s-compute", resource_id=AKS_ID)).result()
    endpoint = ml_client.online_endpoints.begin_create_or_update(
        KubernetesOnlineEndpoint(name="ep-k8s", compute="k8s-compute")).result()
    assert isinstance(endpoint, KubernetesOnlineEndpoint)
    deployment = KubernetesOnlineDeployment(
        name="blue", endpoint_name="ep-k8s", model=Model(path=str(project / "model")),
        code_configuration=CodeConfiguration(code=str(project / "src"), scoring_script="score.py"),
        environment=ENV, instance_count=1, environment_variables={"COLOR": "blue"})
    ml_client.online_deployments.begin_create_or_update(deployment).result()
    endpoint = endpoint_with(ml_client, "ep-k8s", traffic={"blue": 100})
    key = ml_client.online_endpoints.get_keys("ep-k8s").primary_key
    assert colors(endpoint.scoring_uri, key, 1) == ["blue"]
    with pytest.raises(HttpResponseError):
        ml_client.online_deployments.begin_create_or_update(custom("green", "ep-k8s", project))  # managed on k8s
    with pytest.raises(HttpResponseError) as error:
        ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="ep-k8s"))
    assert status_of(error) == 400


# -- processes outlive the client and come back in a new process --------------------------------------
def test_processes_come_back_when_the_workspace_is_reopened(ml_client, project, sim_root):
    from labkit import sim

    endpoint_with(ml_client, "ep-reopen")
    ml_client.online_deployments.begin_create_or_update(custom("blue", "ep-reopen", project)).result()
    endpoint = endpoint_with(ml_client, "ep-reopen", traffic={"blue": 100})
    key = ml_client.online_endpoints.get_keys("ep-reopen").primary_key
    folder = Path(ml_client._sim_workspace.folder) / "online_endpoints" / "ep-reopen"
    runtime_file = folder / "deployments" / "blue" / "runtime.json"
    first_pid = json.loads(runtime_file.read_text())["instances"][0]["pid"]

    # A second client (as a new kernel would make) finds the running processes and reuses them.
    again = sim.connect(root=sim_root)
    assert again.online_endpoints.get("ep-reopen").scoring_uri == endpoint.scoring_uri
    assert json.loads(runtime_file.read_text())["instances"][0]["pid"] == first_pid

    # Everything stopped (the machine restarted): the next client starts them again, same URL.
    sim.deactivate()
    assert processes_under(folder) == []
    reopened = sim.connect(root=sim_root)
    assert reopened.online_endpoints.get("ep-reopen").scoring_uri == endpoint.scoring_uri
    assert json.loads(runtime_file.read_text())["instances"][0]["pid"] != first_pid
    assert colors(endpoint.scoring_uri, key, 1) == ["blue"]


def test_one_call_lists_and_stops_what_a_workspace_runs(ml_client, project, sim_root):
    """A notebook that failed before its clean-up: sim.running lists the endpoint's servers and
    the job in progress, sim.stop_everything stops them (the job ends Canceled), and the
    endpoint serves again at its next call."""
    from azure.ai.ml import command

    from labkit import sim

    endpoint_with(ml_client, "ep-left")
    ml_client.online_deployments.begin_create_or_update(custom("blue", "ep-left", project)).result()
    endpoint = endpoint_with(ml_client, "ep-left", traffic={"blue": 100})
    job = ml_client.jobs.create_or_update(command(code=str(project / "src"), environment=ENV,
                                                  command="python -c 'import time; time.sleep(120)'"))
    workspace = ml_client.workspace_name
    deadline = time.time() + 60
    while ml_client.jobs.get(job.name).status != "Running" and time.time() < deadline:
        time.sleep(0.2)

    expected = [f"{workspace}: job {job.name} (Running)", f"{workspace}: online endpoint ep-left (its servers)"]
    assert sim.running(sim_root) == expected
    assert sim.stop_everything(sim_root) == expected
    assert sim.running(sim_root) == []
    assert ml_client.jobs.get(job.name).status == "Canceled"
    assert processes_under(Path(ml_client._sim_workspace.folder) / "online_endpoints") == []
    key = ml_client.online_endpoints.get_keys("ep-left").primary_key
    assert colors(ml_client.online_endpoints.get("ep-left").scoring_uri, key, 1) == ["blue"]
    assert endpoint.scoring_uri == ml_client.online_endpoints.get("ep-left").scoring_uri

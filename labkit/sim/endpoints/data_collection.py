"""The data collector of an online deployment (``ManagedOnlineDeployment(data_collector=...)``).

What the service does, and the simulation with it:

- a collection named ``request`` / ``response`` is *payload logging*: the HTTP request and
  response bodies of ``/score``, as events of type ``azureml.inference.request`` / ``.response``;
- any other collection is *custom logging*; ``model_inputs`` and ``model_outputs`` are the ones
  model monitoring knows. On Azure the scoring script logs them with ``azureml-ai-monitoring``'s
  ``Collector(name="model_inputs").collect(df)`` (MLflow deployments without a script are
  instrumented by the service). That package is not in this environment, so the simulation's
  front door logs them itself for every deployment: ``model_inputs`` are the rows of the request
  (``{"input_data": {"columns", "index", "data"}}``, ``{"input_data": [...]}``, ``{"data": ...}``,
  a list of records or a dict of columns), ``model_outputs`` the rows of a 200 answer (a list of
  values becomes one column named ``prediction``, a choice of the simulation); a body that is not
  a table is not logged in these two collections;
- each collection is stored in the workspace's blob datastore at
  ``modelDataCollector/<endpoint>/<deployment>/<collection>/<yyyy>/<MM>/<dd>/<HH>/<instance>.jsonl``
  (``rolling_rate`` ``Day`` drops the hour folder, ``Minute`` adds one), one JSON object per line
  with ``specversion``, ``id``, ``source``, ``type``, ``datacontenttype``, ``time``, ``data``,
  ``correlationid``, ``xrequestid``, ``modelversion``, ``collectdatatype``, ``contentrange``; the
  time is the *simulated* clock's, so a monitor fired by ``clock.advance`` sees the requests of its
  window;
- each enabled collection without a ``data`` asset is registered as the ``uri_folder`` data asset
  ``<endpoint>-<deployment>-<collection>``, version 1, and the deployment's collection names it
  (``data``), which is how a ``MonitorSchedule`` finds it; ``sampling_rate`` (0-1) keeps that
  share of requests (seeded draws, so a run of requests is logged the same way each time).

Not modelled: batching of near requests into one event, payloads over 4 MB, binary payloads,
``request_logging.capture_headers``, custom blob destinations outside the workspace's datastores.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

DEFAULT_DATASTORE = "workspaceblobstore"
ROOT_PATH = "modelDataCollector"
PAYLOAD_COLLECTIONS = ("request", "response")
OUTPUT_COLUMN = "prediction"
ROLLING_FORMATS = {"minute": "%Y/%m/%d/%H/%M", "hour": "%Y/%m/%d/%H", "day": "%Y/%m/%d",
                   "month": "%Y/%m", "year": "%Y"}
AGENT = "labkit-sim-data-collector"

_lock = threading.Lock()
_draws: dict[str, random.Random] = {}


def default_asset_name(endpoint: str, deployment: str, collection: str) -> str:
    return f"{endpoint}-{deployment}-{collection}"


def default_path(endpoint: str, deployment: str, collection: str) -> str:
    return f"{ROOT_PATH}/{endpoint}/{deployment}/{collection}"


# -- when the deployment is created (online_deployments) -------------------------------------------
def register_collections(deployments, endpoint: str, deployment: str, payload: dict) -> None:
    """Normalise the collector's collections as the service returns them and register each enabled
    collection's data asset (``<endpoint>-<deployment>-<collection>``, version 1)."""
    collector = (payload.get("properties") or {}).get("dataCollector")
    if not collector:
        return
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    data_ops = deployments._group("_data")
    for name, collection in (collector.get("collections") or {}).items():
        enabled = str(collection.get("dataCollectionMode") or "").lower() == "enabled"
        collection["dataCollectionMode"] = "Enabled" if enabled else "Disabled"
        if not enabled or collection.get("dataId"):
            continue
        path = default_path(endpoint, deployment, name)
        folder = _datastore_folder(deployments._workspace) / path
        folder.mkdir(parents=True, exist_ok=True)
        asset = data_ops.create_or_update(Data(
            name=default_asset_name(endpoint, deployment, name), version="1", type=AssetTypes.URI_FOLDER,
            path=f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{path}",
            description=f"Data collected by the {name} collection of deployment {deployment} of endpoint {endpoint}."))
        collection["dataId"] = asset.id


def _datastore_folder(workspace) -> Path:
    from labkit.sim.core.storage import datastore_folder

    return datastore_folder(workspace, DEFAULT_DATASTORE)


def routing_spec(workspace, endpoint: str, deployment: str, payload: dict) -> Optional[dict]:
    """What the front door needs to log a deployment's requests (None: no collector)."""
    collector = (payload.get("properties") or {}).get("dataCollector")
    if not collector:
        return None
    collections = {}
    for name, collection in (collector.get("collections") or {}).items():
        if str(collection.get("dataCollectionMode") or "").lower() != "enabled":
            continue
        folder = _collection_folder(workspace, endpoint, deployment, name, collection.get("dataId"))
        rate = collection.get("samplingRate")
        collections[name] = {"folder": str(folder), "sampling_rate": 1.0 if rate is None else float(rate)}
    if not collections:
        return None
    return {
        "source": f"{workspace.child_id('onlineEndpoints', endpoint)}/deployments/{deployment}",
        "rolling_rate": str(collector.get("rollingRate") or "Hour"),
        "collections": collections,
        "clock_file": str(workspace.folder.parent / "clock.json"),
    }


def _collection_folder(workspace, endpoint: str, deployment: str, name: str, data_id: Optional[str]) -> Path:
    if data_id:
        try:
            from labkit.sim.core import references
            from labkit.sim.core.fs import local_path

            uri = references.data_asset_uri(workspace, data_id)
            storage = workspace.folder / "storage"
            path = Path(local_path(uri)) if uri.startswith("azureml://") else None
            if path is not None and storage in path.parents:
                return path
        except Exception:  # an asset elsewhere: log to the default place instead
            pass
    return _datastore_folder(workspace) / default_path(endpoint, deployment, name)


# -- in the front door ------------------------------------------------------------------------------
def simulated_now(clock_file: str | None) -> datetime:
    """The simulated clock (``<root>/clock.json``), never behind the real one."""
    real = datetime.now(timezone.utc)
    try:
        stored = datetime.fromisoformat(json.loads(Path(clock_file).read_text())["now"])
    except (TypeError, FileNotFoundError, KeyError, ValueError):
        return real
    return max(stored, real)


def rows_of(body: Any, outputs: bool = False) -> Optional[list[dict]]:
    """The table a request (or, ``outputs``, a response) body holds, as records; None if none."""
    import pandas as pd

    split = isinstance(body, dict) and {"columns", "data"} <= set(body) and set(body) <= {"columns", "index", "data"}
    if isinstance(body, dict) and not outputs and not split:
        for key in ("input_data", "data", "inputs"):
            if key in body:
                return rows_of(body[key])
    if split:
        frame = pd.DataFrame(body["data"], columns=body["columns"])
    elif isinstance(body, list) and body and all(isinstance(r, dict) for r in body):
        frame = pd.DataFrame(body)
    elif isinstance(body, list) and body and all(isinstance(r, list) for r in body):
        frame = pd.DataFrame(body)
        frame.columns = [str(c) for c in frame.columns]
    elif isinstance(body, list) and body and not any(isinstance(r, (dict, list)) for r in body):
        frame = pd.DataFrame({OUTPUT_COLUMN if outputs else "0": body})
    elif isinstance(body, dict) and body and all(isinstance(v, list) for v in body.values()) \
            and len({len(v) for v in body.values()}) == 1:
        frame = pd.DataFrame(body)
    elif isinstance(body, dict) and body and not any(isinstance(v, (dict, list)) for v in body.values()):
        frame = pd.DataFrame([body])
    else:
        return None
    return json.loads(frame.to_json(orient="records"))


def _keep(spec: dict, collection: str, settings: dict) -> bool:
    rate = settings.get("sampling_rate", 1.0)
    if rate >= 1.0:
        return True
    with _lock:
        draw = _draws.setdefault(f"{spec['source']}/{collection}", random.Random(f"{spec['source']}/{collection}"))
        return draw.random() < rate


def record(spec: dict, request_body: bytes, status: int, response_body: bytes,
           request_id: Optional[str] = None, path: str = "/score") -> None:
    """Log one scored request in every enabled collection of ``spec`` (see ``routing_spec``)."""
    now = simulated_now(spec.get("clock_file"))
    correlation = request_id or str(uuid.uuid4())
    request, response = _parsed(request_body), _parsed(response_body)
    for collection, settings in spec["collections"].items():
        if not _keep(spec, collection, settings):
            continue
        if collection == "request":
            data, kind, extra = request, "azureml.inference.request", {"path": path, "method": "POST"}
        elif collection == "response":
            data, kind, extra = response, "azureml.inference.response", {}
        elif collection == "model_outputs":
            data = rows_of(response, outputs=True) if status == 200 else None
            kind, extra = "azureml.inference.model_outputs", {"collectdatatype": "pandas.core.frame.DataFrame"}
        else:
            data = rows_of(request)
            kind, extra = f"azureml.inference.{collection}", {"collectdatatype": "pandas.core.frame.DataFrame"}
        if data is None:
            continue
        text = json.dumps(data, separators=(",", ":"))
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": spec["source"], "type": kind,
                 "datacontenttype": "application/json", "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": data,
                 **extra, "correlationid": correlation, "xrequestid": correlation, "modelversion": "default",
                 "agent": AGENT, "contentrange": f"bytes 0-{len(text) - 1}/{len(text)}"}
        rolling = ROLLING_FORMATS.get(str(spec.get("rolling_rate", "hour")).lower(), ROLLING_FORMATS["hour"])
        folder = Path(settings["folder"]) / now.strftime(rolling)
        folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with _lock, open(folder / f"{_instance_id(spec)}.jsonl", "a", encoding="utf-8") as out:
            out.write(line)


_instances: dict[str, str] = {}


def _instance_id(spec: dict) -> str:
    """One file per front-door process and deployment, as each instance writes its own on Azure."""
    return _instances.setdefault(spec["source"], str(uuid.uuid4()))  # called with _lock held


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


# -- reading what was collected (the monitor, a lab) --------------------------------------------------
def read_events(folder: Path) -> list[dict]:
    """Every event under a collection folder, oldest first."""
    events = []
    for path in sorted(Path(folder).rglob("*.jsonl")):
        with open(path, encoding="utf-8") as lines:
            events.extend(json.loads(line) for line in lines if line.strip())
    return sorted(events, key=lambda e: e.get("time", ""))


def events_to_frame(events: list[dict]):
    """The rows the events hold, with the event's time in a ``collection_time`` column (UTC)."""
    import pandas as pd

    rows = []
    for event in events:
        data = event.get("data")
        records = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        for record in records:
            if isinstance(record, dict):
                rows.append({**record, "collection_time": event.get("time"), "correlationid": event.get("correlationid")})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["collection_time"] = pd.to_datetime(frame["collection_time"], utc=True)
    return frame

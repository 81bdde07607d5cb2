"""Where a reference points: an asset reference or a job output, to its datastore URI.

``azureml:name:version``, ``azureml:name@latest`` or an ARM id name a data or model version;
``azureml://jobs/<job>/outputs/<output>[/paths/<path>]`` names a job's output. Jobs, assets,
endpoints and monitors all resolve them, so they live here, below all of them, reading the
workspace's store only.
"""
from __future__ import annotations

import re

from labkit.sim.core.base import not_found
from labkit.sim.core.workspace import SimWorkspace

JOB_KIND = "job"  # the store's kind of job rows (labkit.sim.jobs.job_state.KIND)
ARM_VERSION = re.compile(r"/(?:data|models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


# ``azureml://jobs/<job>/outputs/<output>[/paths/<path>]``; the artifacts output also takes its
# path with no ``paths/`` (``.../outputs/artifacts/outputs/model.pkl``), the form Microsoft's
# AutoML samples register and deploy models with.
JOB_OUTPUT_URI = re.compile(
    r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:(?:/paths/|(?<=/artifacts)/)(?P<path>.*))?$")


def data_asset_uri(workspace: SimWorkspace, reference: str) -> str:
    """``azureml:name:version`` / ``azureml:name@latest`` / an ARM id -> the asset's datastore URI."""
    return _asset_uri(workspace, reference, "data")


def model_uri(workspace: SimWorkspace, reference: str) -> str:
    """A model reference (``azureml:name:version``, ``@latest`` or an ARM id), as a job's model
    input names it -> the model version's files."""
    return _asset_uri(workspace, reference, "model")


def _asset_uri(workspace: SimWorkspace, reference: str, kind: str) -> str:
    body = reference.removeprefix("azureml:")
    if body.startswith("/subscriptions/"):
        match = ARM_VERSION.search(body)
        name, version, label = match["name"], match["version"], None
    elif "@" in body:
        name, label = body.split("@", 1)
        version = None
    else:
        name, _, version = body.partition(":")
        label = None if version else "latest"
    store = workspace.store
    row = store.latest(kind, name) if label == "latest" else store.get(kind, name, version or "")
    if row is None:
        what = "Model" if kind == "model" else "Data asset"
        raise not_found(f"{what} {body} was not found in workspace '{workspace.name}'.")
    return row.payload["properties"]["modelUri" if kind == "model" else "dataUri"]


def job_output_uri(workspace: SimWorkspace, uri: str) -> str:
    """``azureml://jobs/<job>/outputs/<output>[/paths/<p>]`` -> the output's datastore URI."""
    match = JOB_OUTPUT_URI.match(uri)
    row = workspace.store.get(JOB_KIND, match["job"]) if match else None
    if row is None:
        raise not_found(f"No job output at {uri} in workspace '{workspace.name}'.")
    outputs = row.payload["properties"].get("outputs") or {}
    output = match["output"]
    if output == "artifacts" and output not in outputs:
        output = "default"  # azureml://jobs/<job>/outputs/artifacts/... is the job's artifact folder
    if output not in outputs:
        raise not_found(f"Job '{match['job']}' has no output named '{match['output']}'.")
    base = outputs[output]["uri"].rstrip("/")
    return f"{base}/{match['path']}" if match["path"] else base


def local_output_path(workspace: SimWorkspace, job: str, output: str) -> str:
    from labkit.sim.core.fs import local_path  # fsspec: only when a local path is asked for

    return local_path(job_output_uri(workspace, f"azureml://jobs/{job}/outputs/{output}"))

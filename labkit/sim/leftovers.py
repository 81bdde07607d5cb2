"""What the simulated workspaces still run, and one call that stops it all.

A notebook that fails before its clean-up cells leaves its endpoints' servers running (on
Azure they would go on billing) and may leave jobs running. ``running(root)`` lists them;
``stop_everything(root)`` cancels every job in progress and stops every online endpoint's
processes, and says what it stopped. Nothing is deleted: an endpoint's record stays, and its
servers start again at its next call, as after a restart of the machine. The lab runner calls
it after every lab, and the tests after every simulated workspace they use.

The shared warm server (``warm_worker``) is not listed: it belongs to no one workspace, and
exits by itself once idle.
"""
from __future__ import annotations

import logging
import os
import time

from labkit.sim.core import config
from labkit.sim.jobs import job_state
from labkit.sim.endpoints import online_runtime
from labkit.sim.core.store import NAMES_FILE, DamagedWorkspace
from labkit.sim.core.workspace import SimWorkspace

logger = logging.getLogger(__name__)

STOP_WAIT_S = 15.0  # a canceled job's worker reports Canceled within a few seconds


def _workspaces(root: str | os.PathLike | None) -> list[SimWorkspace]:
    """The readable workspaces under ``root``; a damaged one runs nothing the simulation can
    find, and is left for the learner to see when they next connect to it."""
    found = []
    for names in sorted(config.resolve_root(root).glob(f"*/{NAMES_FILE}")):
        try:
            workspace = SimWorkspace.from_folder(names.parent)
            workspace.store  # opening it checks the database
        except DamagedWorkspace as damage:
            logger.warning("%s", damage)
            continue
        found.append(workspace)
    return found


def _active_jobs(workspace: SimWorkspace) -> list[tuple[str, str]]:
    """Top-level jobs in progress and their status (a sweep's or pipeline's children end with
    their parent)."""
    return [(row.name, row.payload["properties"]["status"]) for row in workspace.store.list(job_state.KIND)
            if row.payload["properties"].get("status") in job_state.ACTIVE_STATUSES
            and not (row.payload["properties"].get("properties") or {}).get("azureml.parentrunid")]


def _serving_endpoints(workspace: SimWorkspace) -> list[str]:
    serving = []
    for row in workspace.store.list(online_runtime.ENDPOINT_KIND):
        folder = online_runtime.endpoint_folder(workspace, row.name)
        deployments = (folder / "deployments").glob("*")
        if online_runtime.frontdoor_alive(folder) or any(online_runtime.instances_alive(d) for d in deployments):
            serving.append(row.name)
    return serving


def _found(root: str | os.PathLike | None) -> list[tuple[SimWorkspace, list[tuple[str, str]], list[str]]]:
    """Per readable workspace under ``root``: its jobs in progress and its serving endpoints."""
    return [(workspace, _active_jobs(workspace), _serving_endpoints(workspace)) for workspace in _workspaces(root)]


def _described(found) -> list[str]:
    described = []
    for workspace, jobs, endpoints in found:
        described += [f"{workspace.name}: job {name} ({status})" for name, status in jobs]
        described += [f"{workspace.name}: online endpoint {name} (its servers)" for name in endpoints]
    return described


def running(root: str | os.PathLike | None = None) -> list[str]:
    """What the workspaces under ``root`` (default: the simulation's root) still run."""
    return _described(_found(root))


def stop_everything(root: str | os.PathLike | None = None) -> list[str]:
    """Cancel every job in progress and stop every online endpoint's servers under ``root``;
    what was stopped, as :func:`running` lists it. Waits until the canceled jobs have ended."""
    found = _found(root)
    for workspace, jobs, endpoints in found:
        for name, _ in jobs:
            job_state.request_cancel(workspace, name)
        for name in endpoints:
            online_runtime.stop_endpoint(online_runtime.endpoint_folder(workspace, name))
    deadline = time.monotonic() + STOP_WAIT_S
    for workspace, jobs, _ in found:
        for name, _ in jobs:
            while job_state.status_of(workspace, name) in job_state.ACTIVE_STATUSES and time.monotonic() < deadline:
                job_state.refresh_if_worker_died(workspace, name)
                time.sleep(0.1)
    return _described(found)

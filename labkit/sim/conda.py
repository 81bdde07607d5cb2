"""What an environment's conda specification asks for.

Kept free of Azure ML SDK imports: a job's worker reads it to say which of the
environment's packages this Python lacks, and starts faster without the SDK.
"""
from __future__ import annotations

import re

import yaml

from labkit.sim.curated import find_curated, find_in_registry

ENVIRONMENT_VERSION_ID = re.compile(r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")
REGISTRY_ENVIRONMENT_ID = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)/")


def specification(name: str | None, conda_file) -> dict:
    """The conda specification as a dict: a curated environment's from the curated table,
    otherwise the environment's own conda file (a dict, or YAML text)."""
    curated = find_curated(name) if name else None
    if curated is not None:
        return curated.conda_document()
    if isinstance(conda_file, str):
        conda_file = yaml.safe_load(conda_file)
    return dict(conda_file or {})


def specification_of_registry_asset(environment_id: str) -> dict | None:
    """The conda specification of a curated environment named by its registry id, else None."""
    match = REGISTRY_ENVIRONMENT_ID.match(environment_id or "")
    found = find_in_registry(match["registry"], match["name"]) if match else None
    return found[0].conda_document() if found else None


def specification_of_version(workspace, environment_id: str) -> tuple[str, dict]:
    """(``name:version``, conda specification) of the environment version an ARM id or a
    registry id names."""
    match = ENVIRONMENT_VERSION_ID.search(environment_id)
    name, version = match["name"], match["version"]
    from_registry = specification_of_registry_asset(environment_id)
    if from_registry is not None:
        return f"{name}:{version}", from_registry
    row = workspace.store.get("environment", name, version)
    conda_file = (row.payload.get("properties") or {}).get("condaFile") if row else None
    return f"{name}:{version}", specification(name, conda_file)


def conda_packages(spec: dict) -> list[str]:
    deps = spec.get("dependencies") or []
    return [str(d) for d in deps if isinstance(d, (str, int, float)) and str(d).split("=")[0].strip() != "pip"]


def pip_packages(spec: dict) -> list[str]:
    packages: list[str] = []
    for dep in spec.get("dependencies") or []:
        if isinstance(dep, dict):
            packages.extend(str(p) for p in dep.get("pip") or [])
    return packages


def python_version(spec: dict) -> str | None:
    for dep in conda_packages(spec):
        match = re.match(r"^python\s*[=<>~!]*=?\s*([0-9][0-9.]*)", dep)
        if match:
            return match.group(1)
    return None

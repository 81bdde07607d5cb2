"""What an environment's conda specification asks for.

Kept free of Azure ML SDK imports: a job's worker reads it to say which of the
environment's packages this Python lacks, and starts faster without the SDK.
"""
from __future__ import annotations

import re

import yaml

from labkit.sim.assets.curated import find_curated, find_in_registry

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


# -- how this Python differs from what a specification asks for ----------------------------------
# MLflow flavors record the version of the library that saved the model in the MLmodel file.
FLAVOR_LIBRARY_VERSIONS = {"sklearn": ("sklearn_version", "scikit-learn"), "xgboost": ("xgb_version", "xgboost"),
                           "lightgbm": ("lgb_version", "lightgbm")}
NOT_A_LIBRARY = {"python", "pip"}


def requirement_name(requirement: str) -> str:
    """The distribution a pip or conda requirement names (``scikit-learn==1.5.2`` -> ``scikit-learn``)."""
    return re.split(r"[\s=<>~!\[;]", requirement.strip(), maxsplit=1)[0]


def pinned_version(requirement: str) -> str | None:
    """The version a requirement pins exactly (pip ``==``, conda ``=`` or ``==``), else None."""
    match = re.match(r"^[^=<>~!\s\[;]+(?:\[[^\]]*\])?\s*==?\s*([0-9][^\s,;=*]*)\s*$", requirement.strip())
    return match.group(1) if match else None


def _same_version(pinned: str, installed: str, exact: bool) -> bool:
    if not exact:  # conda's "name=1.5" means any 1.5.x
        return installed == pinned or installed.startswith(pinned + ".")
    try:
        from packaging.version import Version

        return Version(pinned) == Version(installed)
    except Exception:  # a version packaging cannot read: compare the text
        return pinned == installed


def _installed_version(name: str) -> str | None:
    """The installed version of a distribution, or of the one that provides the module of that
    name (``xgboost`` is installed here as the ``xgboost-cpu`` distribution)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        providers = _module_providers().get(name.replace("-", "_"), [])
        return metadata.version(providers[0]) if providers else None


_providers_cache: tuple[tuple, dict] | None = None


def _module_providers() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, which reads every installed package's
    file list (a second or more; a deployment asks it for each package it cannot find), made
    again only when a folder on ``sys.path`` changed (a package was installed or removed)."""
    import os
    import sys
    from importlib import metadata

    global _providers_cache
    folders = []
    for entry in sys.path:
        try:
            folders.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    key = tuple(folders)
    if _providers_cache is None or _providers_cache[0] != key:
        _providers_cache = (key, metadata.packages_distributions())
    return _providers_cache[1]


def unmet_requirements(requirements: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(the requirements not installed in this Python, and ``(package, pinned, installed)`` for
    each exact pin this Python has at another version)."""
    missing, different = [], []
    for requirement in requirements:
        name = requirement_name(requirement)
        if not name or name.lower() in NOT_A_LIBRARY:
            continue
        installed = _installed_version(name)
        if installed is None:
            missing.append(requirement)
            continue
        pinned = pinned_version(requirement)
        if pinned and not _same_version(pinned, installed, exact="==" in requirement):
            different.append((name, pinned, installed))
    return missing, different


def mlflow_model_requirements(model_dir) -> tuple[str, list[str]] | None:
    """(the MLmodel file's folder, the packages the model asks for: its conda file's, and the
    library versions its flavors record) for the MLflow model under ``model_dir``, else None."""
    from pathlib import Path

    root = Path(model_dir)
    found = [root / "MLmodel"] if (root / "MLmodel").is_file() else sorted(root.rglob("MLmodel"))
    if not found:
        return None
    mlmodel = yaml.safe_load(found[0].read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    env = (flavors.get("python_function") or {}).get("env")
    conda_file = env.get("conda") if isinstance(env, dict) else env
    requirements: list[str] = []
    if conda_file and (found[0].parent / conda_file).is_file():
        spec = yaml.safe_load((found[0].parent / conda_file).read_text()) or {}
        requirements = conda_packages(spec) + pip_packages(spec)
    for flavor, (key, package) in FLAVOR_LIBRARY_VERSIONS.items():
        version = (flavors.get(flavor) or {}).get(key)
        if version and f"{package}=={version}" not in requirements:  # the version that saved the model
            requirements.append(f"{package}=={version}")
    return str(found[0].parent), requirements


def differences_note(subject: str, requirements: list[str], runs: str) -> list[str]:
    """Log lines saying how this Python differs from what ``subject`` asks for, in the words a
    job's log uses for missing packages (``job_runner``), with the versions that differ."""
    missing, different = unmet_requirements(requirements)
    lines = []
    if missing:
        lines.append(f"[simulated workspace] {subject} asks for packages that are not installed in the Python "
                     f"that {runs}: {', '.join(missing)}. On Azure they would be in the image; here it runs "
                     "anyway and fails only if the code needs them.")
    if different:
        versions = ", ".join(f"{name} {pinned} (installed here: {installed})" for name, pinned, installed in different)
        lines.append(f"[simulated workspace] {subject} pins package versions other than the ones installed in the "
                     f"Python that {runs}: {versions}. On Azure the image would have the pinned versions; here the "
                     "installed ones are used, so a model saved with another version may fail to load or predict "
                     "differently.")
    return lines


def deployment_notes(workspace, environment_id: str | None, model: str | None, model_dir, runs: str) -> list[str]:
    """What a deployment's log says first: how this Python differs from its environment (if it
    names one) and from the MLflow model it serves (the model's conda file and flavors)."""
    lines = []
    if environment_id and ENVIRONMENT_VERSION_ID.search(environment_id):
        environment, spec = specification_of_version(workspace, environment_id)
        lines += differences_note(f"Environment {environment}", conda_packages(spec) + pip_packages(spec), runs)
    found = mlflow_model_requirements(model_dir) if model_dir else None
    if found:
        lines += differences_note(f"Model {model}", found[1], runs)
    return lines

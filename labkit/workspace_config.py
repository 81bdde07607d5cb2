"""Finding a workspace's ``config.json`` exactly where ``MLClient.from_config`` looks.

The SDK searches the start folder and up to 20 parents, first for ``.azureml/<file>``,
then ``aml_config/<file>``, then ``<file>`` itself, trying ``config.json`` before
``project.json`` unless a file name is given. Both ``labkit.connect`` (to decide whether
a workspace is configured) and the simulation (to name its workspace) use this one search.
"""
from __future__ import annotations

from itertools import product
from pathlib import Path


def find_config(path=None, file_name: str | None = None) -> Path | None:
    from azure.ai.ml._file_utils.file_utils import traverse_up_path_and_find_file

    start = Path(path) if path else Path(".")
    if start.is_file():
        return start
    names = [file_name] if file_name else ["config.json", "project.json"]
    for folder, name in product([".azureml", "aml_config", None], names):
        found = traverse_up_path_and_find_file(path=start, file_name=name, directory_name=folder, num_levels=20)
        if found:
            return Path(found)
    return None

"""One simulated workspace: its names, ids, folder, store and MLflow tracking store."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from labkit.sim.core.store import NAMES_FILE, DamagedWorkspace, WorkspaceStore

PROVIDER = "Microsoft.MachineLearningServices"
DEFAULT_LOCATION = "eastus"


@dataclass(frozen=True)
class SimWorkspace:
    """Names and folder of one simulated workspace (``workspace.json`` in the folder keeps
    the names, so a worker process can reopen the workspace from its folder alone)."""

    subscription_id: str
    resource_group: str
    name: str
    folder: Path

    @classmethod
    def from_folder(cls, folder: Path) -> "SimWorkspace":
        try:
            names = json.loads((Path(folder) / NAMES_FILE).read_text())
            return cls(names["subscription_id"], names["resource_group"], names["name"], Path(folder))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DamagedWorkspace(Path(folder), f"its names file {NAMES_FILE} cannot be read "
                                                 f"({type(error).__name__}: {error})") from None

    def write_names(self) -> None:
        names = {"subscription_id": self.subscription_id, "resource_group": self.resource_group, "name": self.name}
        (self.folder / NAMES_FILE).write_text(json.dumps(names, indent=2))

    @cached_property
    def store(self) -> WorkspaceStore:
        return WorkspaceStore(self.folder)

    @property
    def arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{PROVIDER}/workspaces/{self.name}")

    def child_id(self, collection: str, name: str, version: str | None = None) -> str:
        """ARM id of an object in the workspace, e.g. ``.../data/diabetes/versions/1``."""
        arm_id = f"{self.arm_id}/{collection}/{name}"
        return f"{arm_id}/versions/{version}" if version else arm_id

    def long_uri(self, datastore: str, path: str) -> str:
        """The long ``azureml://`` form the service returns for a datastore path."""
        return (f"azureml://subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
                f"/workspaces/{self.name}/datastores/{datastore}/paths/{path}")

    @property
    def mlflow_folder(self) -> Path:
        return self.folder / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        """A real MLflow backend (SQLite) with artifacts in the workspace folder."""
        return tracking_uri(self.mlflow_folder)

    @property
    def studio_url(self) -> str:
        # Azure gives an https link to the studio; the simulation points at its own folder.
        return self.folder.as_uri()


# -- the workspace's MLflow tracking URI (resolved by labkit.sim.core.tracking's store plugin) ------
SCHEME = "labkit-sim"


def tracking_uri(mlflow_folder: Path) -> str:
    return f"{SCHEME}://{Path(mlflow_folder).resolve().as_posix()}"

"""What every simulated operation group shares: the workspace, ids, errors, pollers, pages."""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Iterable, TYPE_CHECKING

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller, NoPolling

from labkit.sim.core.store import SIMULATED_USER, Row

if TYPE_CHECKING:
    from labkit.sim.core.workspace import SimWorkspace

logger = logging.getLogger("labkit.sim")


def service_error(cls: type[HttpResponseError], message: str, status: int, code: str = "UserError"):
    """An error shaped as the service's: ``(Code) message`` with a status code."""
    error = cls(message=f"({code}) {message}")
    error.status_code = status
    return error


def not_found(message: str) -> ResourceNotFoundError:
    return service_error(ResourceNotFoundError, message, 404)


def conflict(message: str) -> ResourceExistsError:
    return service_error(ResourceExistsError, message, 409)


def bad_request(message: str) -> HttpResponseError:
    return service_error(HttpResponseError, message, 400)


def done(result: Any) -> LROPoller:
    """A finished long-running operation: ``.result()`` returns ``result`` at once."""
    return LROPoller(None, result, lambda response: response, NoPolling())


def pages(items: Iterable[Any]) -> ItemPaged:
    """One page holding ``items``, as the SDK's ``list`` methods return."""
    items = list(items)
    return ItemPaged(lambda token: items, lambda page: (None, iter(page)))


def readable(rows: Iterable[Row], to_entity: Callable[[Row], Any]) -> list:
    """The entities of ``rows``, leaving out (with a logged warning naming it) any row the SDK
    cannot read back: a service whose one record is corrupt still lists the rest."""
    entities = []
    for row in rows:
        try:
            entities.append(to_entity(row))
        except Exception as error:  # the SDK's parsers raise many types (JobParsingError, KeyError...)
            logger.warning("Skipping %s %r%s in the listing: it cannot be read back (%s: %s).", row.kind,
                           row.name, f" version {row.version}" if row.version else "", type(error).__name__, error)
    return entities


def system_data(row_created: str, row_modified: str) -> dict:
    return {
        "createdAt": row_created,
        "createdBy": SIMULATED_USER,
        "createdByType": "User",
        "lastModifiedAt": row_modified,
        "lastModifiedBy": SIMULATED_USER,
        "lastModifiedByType": "User",
    }


def with_service_fields(row: Row, arm_id: str, name: str) -> Any:
    """The stored REST payload plus what the service fills in: id, name, systemData."""
    payload = dict(row.payload, id=arm_id, name=name)
    payload["systemData"] = system_data(row.created_at, row.modified_at)
    return type(row.rest_object())(payload)


class SimOperations:
    """Base of the simulated operation groups.

    A subclass names the SDK class it stands in for as its second base, so
    ``isinstance(ml_client.data, DataOperations)`` holds. Public methods it does not
    implement raise ``NotImplementedError`` saying so, instead of reaching for Azure.
    """

    def __init__(self, workspace: "SimWorkspace | None", *, root=None, scope=None):
        self._workspace = workspace
        self._root = root
        self._scope = scope

    def _group(self, attr: str):
        """Another simulated operation group of the same workspace (``"_models"``, ``"_data"`` ...)."""
        from labkit.sim.core.groups import SIMULATED_GROUPS, load  # the SDK's constants: not in a worker's start

        return load(SIMULATED_GROUPS[attr][1])(self._workspace, root=self._root, scope=self._scope)

    @property
    def _store(self):
        if self._workspace is None:
            raise ValueError("This client names no workspace; pass workspace_name to MLClient.")
        return self._workspace.store

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") or name in cls.__dict__:
                continue
            if any(name in vars(base) for base in cls.__mro__ if issubclass(base, SimOperations)):
                continue
            setattr(cls, name, _not_simulated(cls.__name__, name, member))


def _not_simulated(group: str, name: str, real: Callable) -> Callable:
    @functools.wraps(real)
    def refuse(self, *args, **kwargs):
        raise NotImplementedError(
            f"{group}.{name} is not part of the simulated workspace; it needs a real Azure ML "
            f"workspace (see labkit/sim/README.md for what is simulated).")
    return refuse

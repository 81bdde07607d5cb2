"""The simulated operation groups take the same calls as the SDK's.

A notebook written for Azure calls ``ml_client.data.get(name, version=...)``; the
simulation must accept exactly the parameters the SDK accepts (names, kinds, defaults),
and offer every public method the SDK offers, implemented or refusing with a
``NotImplementedError`` that names it. Annotations are not compared: the simulation's
modules use postponed annotations (strings), the SDK's real objects.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from labkit.sim.core import base as sim_base
from labkit.sim.core.groups import SIMULATED_GROUPS, load as _load

GROUPS = {attr: _load(path) for attr, (_, path) in SIMULATED_GROUPS.items()}


def sdk_class(simulated: type) -> type:
    """The SDK operations class a simulated group stands in for (one of its bases)."""
    [sdk] = [base for base in simulated.__mro__[1:] if base.__module__.startswith("azure.ai.ml.operations")
             and base.__name__ == simulated.__name__]
    return sdk


def is_refusal(function) -> bool:
    """A stand-in that ``SimOperations`` made for a method the simulation does not implement."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_name == "refuse" and Path(code.co_filename) == Path(sim_base.__file__)


def simulated_members(simulated: type) -> dict[str, object]:
    """What the simulation defines for a group: its own class and its simulated bases
    (e.g. ``VersionedAssetOperations``), nearest first, never the SDK's code."""
    members: dict[str, object] = {}
    for base in reversed(simulated.__mro__):
        if issubclass(base, sim_base.SimOperations):
            members.update(vars(base))
    return members


def implemented(simulated: type) -> dict[str, object]:
    """Public methods the simulation implements for a group (not the generated refusals)."""
    return {name: member for name, member in simulated_members(simulated).items()
            if not name.startswith("_") and inspect.isfunction(member) and not is_refusal(member)}


def public_methods(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def shape(function) -> list[tuple]:
    """What a caller depends on: each parameter's name, kind and default."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


METHODS = [pytest.param(cls, name, id=f"{cls.__name__}.{name}")
           for cls in GROUPS.values() for name in sorted(implemented(cls))]


@pytest.mark.parametrize("simulated, name", METHODS)
def test_implemented_methods_have_the_sdk_signature(simulated, name):
    sdk = sdk_class(simulated)
    assert hasattr(sdk, name), f"{simulated.__name__}.{name} is not a method of the SDK's {sdk.__name__}"
    ours, theirs = getattr(simulated, name), getattr(sdk, name)
    assert shape(ours) == shape(theirs), (
        f"{simulated.__name__}.{name}{inspect.signature(ours)} differs from the SDK's "
        f"{sdk.__name__}.{name}{inspect.signature(theirs)}")


@pytest.mark.parametrize("simulated", GROUPS.values(), ids=lambda cls: cls.__name__)
def test_every_sdk_method_exists_implemented_or_refusing(simulated):
    sdk = sdk_class(simulated)
    ours = implemented(simulated)
    for name in sorted(public_methods(sdk)):
        member = simulated_members(simulated).get(name)
        assert member is not None, f"{simulated.__name__} lacks the SDK's {name}"
        assert name in ours or is_refusal(member), f"{simulated.__name__}.{name} is neither implemented nor refused"
        if name not in ours:  # a refusal keeps the SDK's signature, so a wrong call still fails as on Azure
            assert shape(member) == shape(getattr(sdk, name))


@pytest.mark.parametrize("simulated", GROUPS.values(), ids=lambda cls: cls.__name__)
def test_each_group_implements_something(simulated):
    assert implemented(simulated), f"{simulated.__name__} implements no method"


def test_an_unimplemented_method_refuses_naming_itself(ml_client):
    refused = [name for name, member in vars(type(ml_client.datastores)).items()
               if not name.startswith("_") and inspect.isfunction(member) and is_refusal(member)]
    assert "mount" in refused
    with pytest.raises(NotImplementedError, match=r"DatastoreOperations\.mount is not part of the simulated workspace"):
        ml_client.datastores.mount("azureml://datastores/workspaceblobstore/paths/data", mount_point="/tmp/mnt")

"""The simulator's architecture: no import cycle anywhere in labkit, and its folders in layers.

The import graph is grimp's (https://grimp.readthedocs.io), which counts every import statement,
function-level (lazy) ones and ``if TYPE_CHECKING:`` ones included, so a cycle cannot hide in a
function. What grimp cannot see are module paths named in strings and imported with importlib
(the client's operation groups, ``labkit.sim.core.groups``; the job runners,
``job_runner.JOB_TYPE_RUNNERS``; the job types ``jobs.operations`` submits): those are the
simulator's plug-in tables, read when a client is built or a job runs, and point upwards on
purpose.
"""
from __future__ import annotations

import grimp
import pytest

SIM = "labkit.sim"
# Lowest first: a folder may import its own modules and those of the folders below it, never one
# above it (nor a sibling on the same rank), and never the top level of labkit.sim (its
# __init__, leftovers and the public alias modules), which may import any folder.
LAYERS = [
    ["core"],
    ["assets", "compute"],
    ["jobs"],
    ["endpoints"],
    ["monitoring"],
    ["schedules"],
]
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("labkit", cache_dir=None)


def _folder(module: str) -> str | None:
    """The simulator folder a module lies in; None for the top level of labkit.sim and outside it."""
    parts = module.split(".")
    return parts[2] if module.startswith(SIM + ".") and len(parts) > 3 else None


def _cycles(graph) -> list[list[str]]:
    """The import graph's strongly connected components of more than one module, and modules that
    import themselves (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.find_modules_directly_imported_by(node):
                        found.append(sorted(component))
    return found


def test_grimp_counts_function_level_imports(graph):
    # job_runner imports the table of runners inside main() only: grimp must see that import.
    assert graph.direct_import_exists(importer="labkit.sim.jobs.job_runner", imported="labkit.sim.core.groups")
    lines = {d["line_contents"] for d in graph.get_import_details(importer="labkit.sim.jobs.job_runner",
                                                                  imported="labkit.sim.core.groups")}
    assert any(line.startswith("from ") for line in lines)
    assert all(d["line_number"] > 200 for d in graph.get_import_details(
        importer="labkit.sim.jobs.job_runner", imported="labkit.sim.core.groups")), "a function-level import"


def test_no_import_cycle_in_labkit(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles (each a group of modules that import each other):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles)


def test_every_simulator_module_is_in_a_folder_of_the_layers(graph):
    folders = {_folder(m) for m in graph.modules} - {None}
    assert folders == set(RANK), f"folders {sorted(folders)} against the layers {sorted(RANK)}"


def test_folders_import_only_downwards(graph):
    wrong = []
    for importer in sorted(graph.modules):
        source = _folder(importer)
        if source is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not imported.startswith(SIM):
                continue
            target = _folder(imported)
            if target is None:
                wrong.append(f"{importer} -> {imported} (the top level of labkit.sim)")
            elif target != source and RANK[target] >= RANK[source]:
                wrong.append(f"{importer} -> {imported} ({source} may not import {target})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)

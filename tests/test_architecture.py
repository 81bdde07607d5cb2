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
# Highest first, as grimp takes them: a folder may import the folders below it, never one above
# it nor its sibling on the same layer. The top level of labkit.sim (its __init__, leftovers and
# the public alias modules) sits above them all and may import any folder; no folder imports it.
LAYERS = (
    grimp.Layer("schedules"),
    grimp.Layer("monitoring"),
    grimp.Layer("endpoints"),
    grimp.Layer("jobs"),
    grimp.Layer("assets", "compute", independent=True),
    grimp.Layer("core"),
)
FOLDERS = {tail for layer in LAYERS for tail in layer.module_tails}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("labkit", cache_dir=None)


def _folder(module: str) -> str | None:
    """The simulator folder a module lies in; None for the top level of labkit.sim and outside it."""
    parts = module.split(".")
    return parts[2] if module.startswith(SIM + ".") and len(parts) > 3 else None


def test_grimp_counts_function_level_imports(graph):
    # job_runner imports the table of runners inside main() only: grimp must see that import.
    details = graph.get_import_details(importer="labkit.sim.jobs.job_runner", imported="labkit.sim.core.groups")
    assert details and all(d["line_contents"].startswith("from ") for d in details)
    assert all(d["line_number"] > 200 for d in details), "a function-level import"


def test_no_import_cycle_in_labkit(graph):
    """A direct import A -> B closes a cycle when B reaches A again, by any chain (or is A)."""
    cycles = set()
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported == importer:
                cycles.add((importer, importer))
            elif imported in graph.modules and graph.chain_exists(importer=imported, imported=importer):
                cycles.add((importer, *graph.find_shortest_chain(importer=imported, imported=importer)))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in sorted(cycles))


def test_every_simulator_module_is_in_a_folder_of_the_layers(graph):
    folders = {_folder(m) for m in graph.modules} - {None}
    assert folders == FOLDERS, f"folders {sorted(folders)} against the layers {sorted(FOLDERS)}"


def test_folders_import_only_downwards(graph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS, containers={SIM})
    wrong = [f"{d.importer} may not import {d.imported}, as "
             + "; ".join(" -> ".join([", ".join(sorted(r.heads)), *r.middle, ", ".join(sorted(r.tails))])
                         for r in d.routes)
             for d in sorted(illegal, key=lambda d: (d.importer, d.imported))]
    upward = [f"{importer} -> {imported} (the top level of labkit.sim)"
              for importer in sorted(graph.modules) if _folder(importer)
              for imported in sorted(graph.find_modules_directly_imported_by(importer))
              if imported.startswith(SIM) and _folder(imported) is None]
    assert not wrong + upward, "imports against the layers:\n" + "\n".join(wrong + upward)

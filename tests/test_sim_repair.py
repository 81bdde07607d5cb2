"""A workspace folder damaged by hand (a file deleted, truncated or overwritten) gives a
message naming what is wrong and how to start again, never a traceback from SQLite; and
starting again as it says works."""
from __future__ import annotations

import shutil

import pytest

from labkit import sim
from labkit.sim.core.store import DamagedWorkspace
from labkit.sim.core.workspace import SimWorkspace


def damage_database(folder):
    database = folder / "workspace.db"
    for extra in ("workspace.db-wal", "workspace.db-shm"):
        (folder / extra).unlink(missing_ok=True)
    database.write_bytes(database.read_bytes()[:1000])  # truncated


@pytest.mark.parametrize("damage, what", [
    (damage_database, "its database workspace.db cannot be read"),
    (lambda folder: (folder / "workspace.db").write_bytes(b"not a database at all" * 100),
     "its database workspace.db cannot be read"),
    (lambda folder: (folder / "workspace.db").unlink(), "its database workspace.db is missing"),
])
def test_a_damaged_database_says_what_is_wrong_and_how_to_start_again(sim_root, damage, what):
    first = sim.connect(root=sim_root)
    folder = sim.workspace_folder(first)
    sim.deactivate()
    damage(folder)

    with pytest.raises(DamagedWorkspace) as raised:
        sim.connect(root=sim_root)
    message = str(raised.value)
    assert what in message and str(folder) in message and f"shutil.rmtree({str(folder)!r})" in message
    assert "sqlite3" not in message
    assert sim.running(sim_root) == []  # the damaged workspace is passed over, not a crash

    shutil.rmtree(folder)  # what the message says to do
    again = sim.connect(root=sim_root)
    assert [d.name for d in again.datastores.list()]  # a fresh workspace with its defaults
    sim.deactivate()


def test_an_unreadable_names_file_is_named(sim_root):
    client = sim.connect(root=sim_root)
    folder = sim.workspace_folder(client)
    sim.deactivate()
    (folder / "workspace.json").write_text("{not json")
    with pytest.raises(DamagedWorkspace, match=r"its names file workspace.json cannot be read \(JSONDecodeError"):
        SimWorkspace.from_folder(folder)

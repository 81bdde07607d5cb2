"""The simulated workspace's state: one folder, metadata in SQLite, files beside it.

Layout of a workspace folder::

    workspace.db          resources (one row per object or asset version), WAL mode
    datastores/<name>/    the files of each datastore (a blob container on Azure)
    mlflow/               the workspace's MLflow tracking store (SQLite + artifacts)
    staging/              uploads in progress; moved into place only when complete

Every resource is kept as the REST payload the SDK's own serializer produced
(``entity._to_rest_object().as_dict()``), with the service-filled fields (id, name,
systemData) added, so reading it back goes through the SDK's ``_from_rest_object``
exactly as a response from Azure would.

Safety: each write is one SQLite transaction (``BEGIN IMMEDIATE`` serialises writers
across processes, so two processes never get the same auto-version), and files are staged
and renamed into place before the row that refers to them is committed, so a process
killed mid-upload leaves no asset behind, only a staging folder that is swept later.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL DEFAULT '',
    seq         INTEGER NOT NULL DEFAULT 0,
    rest_class  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS secrets (
    kind  TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
"""

SIMULATED_USER = "learner@simulated.local"
STAGING_MAX_AGE_S = 3600


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rest_class_name(rest_object: Any) -> str:
    cls = type(rest_object)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_rest_class(name: str):
    module, _, qualname = name.partition(":")
    return getattr(importlib.import_module(module), qualname)


@dataclass
class Row:
    kind: str
    name: str
    version: str
    rest_class: str
    payload: dict
    archived: bool
    created_at: str
    modified_at: str

    def rest_object(self):
        """The stored payload as the SDK's REST model, as a service response would give it."""
        return load_rest_class(self.rest_class)(self.payload)


NAMES_FILE = "workspace.json"  # written once the workspace is provisioned (workspace.py)
DB_FILE = "workspace.db"


class DamagedWorkspace(RuntimeError):
    """A simulated workspace's folder was damaged outside the simulation (a file deleted,
    truncated or overwritten): what is wrong, and how to start again."""

    def __init__(self, folder: Path, what: str):
        super().__init__(
            f"The simulated workspace in {folder} is damaged: {what}. Nothing in it can be read "
            f"safely. To start this workspace again from nothing, delete its folder "
            f"(shutil.rmtree({str(folder)!r}): its assets, jobs and endpoints are lost) and "
            f"connect again; or put back the file from a copy of the folder.")


class WorkspaceStore:
    """State of one simulated workspace, safe to share between processes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.db_path = self.folder / DB_FILE
        if (self.folder / NAMES_FILE).exists() and not self.db_path.exists():
            raise DamagedWorkspace(self.folder, f"its database {DB_FILE} is missing")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "staging").mkdir(exist_ok=True)
        try:
            # Closed here, not when the garbage collector gets to it: a connection closed late
            # checkpoints the WAL into whatever the file is by then.
            with contextlib.closing(self._connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                # A few milliseconds for a workspace's database; a damaged page fails here, not
                # in the middle of a learner's later call.
                verdict = db.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise DamagedWorkspace(self.folder, f"its database {DB_FILE} fails SQLite's check ({verdict})")
                db.executescript(SCHEMA)
        except sqlite3.OperationalError:
            raise  # locked, or out of disk: not damage
        except sqlite3.DatabaseError as error:  # "file is not a database", "disk image is malformed"
            raise DamagedWorkspace(self.folder, f"its database {DB_FILE} cannot be read ({error})") from None

    # -- SQLite ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so a writer takes the lock first.
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @staticmethod
    def _row(r: sqlite3.Row) -> Row:
        return Row(r["kind"], r["name"], r["version"], r["rest_class"], json.loads(r["payload"]),
                   bool(r["archived"]), r["created_at"], r["modified_at"])

    # -- reading --------------------------------------------------------------------------
    def get(self, kind: str, name: str, version: str = "") -> Row | None:
        db = self._connect()
        try:
            r = db.execute("SELECT * FROM resources WHERE kind=? AND name=? AND version=?",
                           (kind, name, version)).fetchone()
        finally:
            db.close()
        return self._row(r) if r else None

    def latest(self, kind: str, name: str, include_archived: bool = False) -> Row | None:
        """The newest version by creation order (what the service's ``latest`` label means)."""
        rows = self.versions(kind, name, include_archived=include_archived)
        return rows[-1] if rows else None

    def versions(self, kind: str, name: str, include_archived: bool = False) -> list[Row]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT * FROM resources WHERE kind=? AND name=? AND (archived=0 OR ?) ORDER BY seq",
                (kind, name, include_archived)).fetchall()
        finally:
            db.close()
        return [self._row(r) for r in rows]

    def list(self, kind: str, include_archived: bool = False) -> list[Row]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT * FROM resources WHERE kind=? AND (archived=0 OR ?) ORDER BY name, seq",
                (kind, include_archived)).fetchall()
        finally:
            db.close()
        return [self._row(r) for r in rows]

    def names(self, kind: str, include_archived: bool = False) -> list[str]:
        return sorted({row.name for row in self.list(kind, include_archived)})

    # -- writing --------------------------------------------------------------------------
    def put(self, db: sqlite3.Connection, kind: str, name: str, version: str,
            rest_object: Any, *, archived: bool = False) -> Row:
        """Insert or replace one row inside an open transaction."""
        now = utc_now()
        old = db.execute("SELECT created_at, seq FROM resources WHERE kind=? AND name=? AND version=?",
                         (kind, name, version)).fetchone()
        if old:
            created, seq = old["created_at"], old["seq"]
        else:
            created = now
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM resources WHERE kind=? AND name=?",
                             (kind, name)).fetchone()[0]
        payload = rest_object.as_dict()
        db.execute(
            "INSERT OR REPLACE INTO resources VALUES (?,?,?,?,?,?,?,?,?)",
            (kind, name, version, seq, rest_class_name(rest_object), json.dumps(payload),
             int(archived), created, now))
        return Row(kind, name, version, rest_class_name(rest_object), payload, archived, created, now)

    @staticmethod
    def next_version(db: sqlite3.Connection, kind: str, name: str) -> str:
        """The service's auto-version: one more than the largest integer version so far."""
        versions = [r[0] for r in db.execute(
            "SELECT version FROM resources WHERE kind=? AND name=?", (kind, name))]
        numbers = [int(v) for v in versions if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    def set_archived(self, kind: str, name: str, version: str | None, archived: bool) -> int:
        with self.transaction() as db:
            if version is None:
                cur = db.execute("UPDATE resources SET archived=?, modified_at=? WHERE kind=? AND name=?",
                                 (int(archived), utc_now(), kind, name))
            else:
                cur = db.execute(
                    "UPDATE resources SET archived=?, modified_at=? WHERE kind=? AND name=? AND version=?",
                    (int(archived), utc_now(), kind, name, version))
            return cur.rowcount

    def delete(self, kind: str, name: str, version: str | None = None) -> int:
        with self.transaction() as db:
            if version is None:
                cur = db.execute("DELETE FROM resources WHERE kind=? AND name=?", (kind, name))
            else:
                cur = db.execute("DELETE FROM resources WHERE kind=? AND name=? AND version=?",
                                 (kind, name, version))
            db.execute("DELETE FROM secrets WHERE kind=? AND name=?", (kind, name))
            return cur.rowcount

    # -- secrets (the workspace Key Vault's part: stored, never returned by get/list) ----
    def put_secret(self, db: sqlite3.Connection, kind: str, name: str, value: dict) -> None:
        db.execute("INSERT OR REPLACE INTO secrets VALUES (?,?,?)", (kind, name, json.dumps(value)))

    def get_secret(self, kind: str, name: str) -> dict | None:
        db = self._connect()
        try:
            r = db.execute("SELECT value FROM secrets WHERE kind=? AND name=?", (kind, name)).fetchone()
        finally:
            db.close()
        return json.loads(r[0]) if r else None

    # -- files ----------------------------------------------------------------------------
    def datastore_folder(self, datastore: str) -> Path:
        return self.folder / "datastores" / datastore

    def place_copy(self, source: Path, destination: Path, ignore=None) -> Path:
        """Copy ``source`` to ``destination`` so that it appears whole or not at all.

        The copy is made in ``staging/`` and renamed into place in one step, so a process
        that dies mid-copy leaves nothing at ``destination``. Callers commit the row that
        refers to the files only after this returns. Destinations are content-addressed
        (``LocalUpload/<hash>/...``), so one that already exists is already right.
        """
        self._sweep_staging()
        if destination.exists():
            return destination
        stage = self.folder / "staging" / uuid.uuid4().hex
        target = stage / source.name
        stage.mkdir(parents=True)
        try:
            if source.is_dir():
                shutil.copytree(source, target, ignore=ignore)
            else:
                shutil.copy2(source, target)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(target, destination)
            except OSError:
                # Another process may have placed the same content first; either copy is right.
                if not destination.exists():
                    raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return destination

    def _sweep_staging(self) -> None:
        """Remove uploads abandoned by a process that died mid-copy."""
        cutoff = time.time() - STAGING_MAX_AGE_S
        for leftover in (self.folder / "staging").iterdir():
            try:
                modified = leftover.stat().st_mtime
            except FileNotFoundError:
                continue  # another process's upload finished and removed its staging folder
            if modified < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)

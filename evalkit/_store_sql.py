"""The SQL both store backends share (see :mod:`evalkit.store`, the public face): the
schema and its migrations, :class:`SQLStore` (every read and write, with ``?`` placeholders) and
the SQLite backend. The PostgreSQL backend (:mod:`evalkit._store_postgres`) subclasses
:class:`SQLStore` from here."""


from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import pandas as pd

from evalkit._types import DetectorResult, Event, to_jsonable
from evalkit.errors import StoreError

DEFAULT_DB_NAME = "evalkit.db"
DB_ENV = "EVALKIT_DB"
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class ResultKey:
    """What produced a result. ``prompt_hash`` is ``""`` for detectors that do not read the
    prompt (the result holds for every item with that video) and :func:`prompt_digest` of the
    prompt for those that do (the same video under another prompt is another result)."""

    video_hash: str
    detector: str
    version: str
    config_hash: str
    prompt_hash: str = ""


def prompt_digest(prompt: str | None) -> str:
    """Stable short hash of a prompt; ``"-"`` for no prompt."""
    if prompt is None:
        return "-"
    return hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class ItemRecord:
    """A video file in a checkpoint root (or a loose file scored with a store)."""

    path: str
    video_hash: str
    checkpoint: str | None = None
    prompt_id: str | None = None
    seed: int | None = None
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    prompt_hash: str = "-"


class ResultStore(Protocol):
    def has_result(self, key: ResultKey) -> bool: ...
    def put_result(self, key: ResultKey, result: DetectorResult) -> None: ...
    def get_result(self, key: ResultKey) -> DetectorResult | None: ...
    def put_item(self, item: ItemRecord) -> None: ...
    def put_error(self, path: str, detector: str, message: str, checkpoint: str | None = None) -> None: ...
    def results_frame(self, checkpoint: str | None = None, detector: str | None = None) -> pd.DataFrame: ...
    def add_label(self, **label: Any) -> int: ...
    def labels_frame(self) -> pd.DataFrame: ...
    def close(self) -> None: ...


# Version 1, exactly as evalkit 0.1.0 wrote it (a fresh SQLite store still starts from it, so a
# migrated store and a new one are the same).
_SQLITE_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS items (
    path TEXT PRIMARY KEY, video_hash TEXT NOT NULL, checkpoint TEXT, prompt_id TEXT, seed INTEGER,
    num_frames INTEGER, fps REAL, width INTEGER, height INTEGER, updated REAL, prompt_hash TEXT NOT NULL DEFAULT '-');
CREATE INDEX IF NOT EXISTS items_hash ON items(video_hash);
CREATE TABLE IF NOT EXISTS results (
    video_hash TEXT NOT NULL, detector TEXT NOT NULL, version TEXT NOT NULL, config_hash TEXT NOT NULL,
    score REAL, flagged INTEGER, events TEXT, stats TEXT, series BLOB, maps BLOB, created REAL,
    prompt_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (video_hash, detector, version, config_hash, prompt_hash));
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT, checkpoint TEXT, detector TEXT, message TEXT, created REAL);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT, video_hash TEXT, path TEXT, checkpoint TEXT, prompt_id TEXT,
    reviewer TEXT, created REAL, kind TEXT, failure_mode TEXT, value TEXT, start INTEGER, "end" INTEGER,
    note TEXT, payload TEXT);
"""

# Steps from version N to N + 1, shared by both backends (portable SQL only).
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS evalkit_meta (key TEXT PRIMARY KEY, value TEXT)",
        "CREATE INDEX IF NOT EXISTS labels_video ON labels(video_hash)",
        "CREATE INDEX IF NOT EXISTS errors_path ON errors(path, detector)",
        "ALTER TABLE labels ADD COLUMN uid TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS labels_uid ON labels(uid)",
    ],
}

_RESULT_COLUMNS = ("video_hash", "detector", "version", "config_hash", "score", "flagged", "events", "stats",
                   "series", "maps", "created", "prompt_hash")
_RESULT_KEY = ("video_hash", "detector", "version", "config_hash", "prompt_hash")


def _array_to_blob(array: np.ndarray | None) -> bytes | None:
    if array is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _blob_to_array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.load(io.BytesIO(bytes(blob)), allow_pickle=False)


class SQLStore:
    """:class:`ResultStore` over a DB-API connection; :class:`SQLiteStore` and
    :class:`~evalkit._store_postgres.PostgresStore` supply the connection and the DDL.

    One connection per store, guarded by a lock (the runner writes from one thread, a widget's
    callbacks from another); every write is its own committed transaction.
    """

    #: how this store is named in messages and ``repr``
    name: str

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # backend hooks ------------------------------------------------------------------------
    def _execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders) and commit; returns the cursor."""
        raise NotImplementedError

    def _query(self, sql: str, params: Iterable[Any] = ()) -> tuple[list[str], list[tuple]]:
        raise NotImplementedError

    def _insert_returning_id(self, sql: str, params: Iterable[Any]) -> int | None:
        """Run an INSERT; the new row's id, or None when it inserted nothing."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def schema_version(self) -> int:
        _, rows = self._query("SELECT value FROM evalkit_meta WHERE key = 'schema_version'")
        return int(rows[0][0])

    # helpers ------------------------------------------------------------------------------
    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _frame(self, sql: str, params: Iterable[Any] = ()) -> pd.DataFrame:
        columns, rows = self._query(sql, params)
        # what pandas.read_sql_query does, for both backends alike
        return pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)

    def _one(self, sql: str, params: Iterable[Any]) -> tuple | None:
        _, rows = self._query(sql, params)
        return rows[0] if rows else None

    # results -----------------------------------------------------------------------------
    def has_result(self, key: ResultKey) -> bool:
        return self._one(
            "SELECT 1 FROM results WHERE video_hash=? AND detector=? AND version=? AND config_hash=? AND prompt_hash=?",
            (key.video_hash, key.detector, key.version, key.config_hash, key.prompt_hash),
        ) is not None

    def put_result(self, key: ResultKey, result: DetectorResult) -> None:
        update = ", ".join(f"{c} = excluded.{c}" for c in _RESULT_COLUMNS if c not in _RESULT_KEY)
        self._execute(
            f"INSERT INTO results ({', '.join(_RESULT_COLUMNS)}) VALUES ({', '.join('?' * len(_RESULT_COLUMNS))}) "
            f"ON CONFLICT ({', '.join(_RESULT_KEY)}) DO UPDATE SET {update}",
            (
                key.video_hash, key.detector, key.version, key.config_hash,
                None if not np.isfinite(result.score) else float(result.score),
                int(bool(result.flagged)),
                json.dumps([e.to_dict() for e in result.events]),
                json.dumps(to_jsonable(result.stats)),
                _array_to_blob(np.asarray(result.series, np.float32)),
                _array_to_blob(None if result.maps is None else np.asarray(result.maps, np.float16)),
                time.time(),
                key.prompt_hash,
            ),
        )

    def get_result(self, key: ResultKey) -> DetectorResult | None:
        row = self._one(
            "SELECT score, flagged, events, stats, series, maps FROM results "
            "WHERE video_hash=? AND detector=? AND version=? AND config_hash=? AND prompt_hash=?",
            (key.video_hash, key.detector, key.version, key.config_hash, key.prompt_hash),
        )
        return None if row is None else _row_to_result(row)

    def latest_result(self, video_hash: str, detector: str) -> DetectorResult | None:
        """The most recently computed result of ``detector`` on a video, whatever its config."""
        row = self._one(
            "SELECT score, flagged, events, stats, series, maps FROM results "
            "WHERE video_hash=? AND detector=? ORDER BY created DESC LIMIT 1",
            (video_hash, detector),
        )
        return None if row is None else _row_to_result(row)

    # items and errors --------------------------------------------------------------------
    def put_item(self, item: ItemRecord) -> None:
        # A run that only finds stored results knows no frame count: keep what an earlier run
        # recorded for the same file instead of wiping it.
        keep = lambda col: f"{col} = COALESCE(excluded.{col}, CASE WHEN items.video_hash = excluded.video_hash THEN items.{col} END)"  # noqa: E731
        self._execute(
            "INSERT INTO items (path, video_hash, checkpoint, prompt_id, seed, num_frames, fps, width, height, "
            "updated, prompt_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET "
            "video_hash = excluded.video_hash, checkpoint = excluded.checkpoint, prompt_id = excluded.prompt_id, "
            "seed = excluded.seed, updated = excluded.updated, prompt_hash = excluded.prompt_hash, "
            + ", ".join(keep(c) for c in ("num_frames", "fps", "width", "height")),
            (item.path, item.video_hash, item.checkpoint, item.prompt_id, item.seed,
             item.num_frames, item.fps, item.width, item.height, time.time(), item.prompt_hash),
        )

    def put_error(self, path: str, detector: str, message: str, checkpoint: str | None = None) -> None:
        self._execute(
            "INSERT INTO errors (path, checkpoint, detector, message, created) VALUES (?,?,?,?,?)",
            (path, checkpoint, detector, message, time.time()),
        )

    def errors_frame(self) -> pd.DataFrame:
        # A bad file fails again on every run: show each (path, detector) once, newest message.
        df = self._frame("SELECT path, checkpoint, detector, message, created FROM errors ORDER BY id")
        df = df.drop_duplicates(["path", "detector"], keep="last")
        return df.sort_values("created", kind="stable").reset_index(drop=True)

    def items_frame(self) -> pd.DataFrame:
        return self._frame(
            "SELECT path, video_hash, checkpoint, prompt_id, seed, num_frames, fps, width, height, updated, "
            "prompt_hash FROM items")

    def results_frame(
        self, checkpoint: str | None = None, detector: str | None = None, latest_only: bool = True,
        with_arrays: bool = False,
    ) -> pd.DataFrame:
        """Results joined with the items they belong to: one row per (item, detector[, config]).

        Columns: video, checkpoint, prompt_id, seed, video_hash, detector, version, config_hash,
        score, flagged, events (list), stats (dict), created, plus num_frames, fps, width, height;
        with ``with_arrays`` also series ``(T,)`` and maps ``(T, h, w)``.
        """
        arrays = ", r.series, r.maps" if with_arrays else ""
        sql = (
            "SELECT i.path AS video, i.checkpoint, i.prompt_id, i.seed, i.video_hash, r.detector, r.version, "
            "r.config_hash, r.score, r.flagged, r.events, r.stats, r.created, i.num_frames, i.fps, i.width, "
            f"i.height{arrays} FROM items i JOIN results r ON r.video_hash = i.video_hash "
            "AND (r.prompt_hash = '' OR r.prompt_hash = i.prompt_hash) WHERE 1=1"
        )
        params: list[Any] = []
        if checkpoint is not None:
            sql += " AND i.checkpoint = ?"
            params.append(checkpoint)
        if detector is not None:
            sql += " AND r.detector = ?"
            params.append(detector)
        df = self._frame(sql, params)
        if latest_only and len(df):
            df = df.sort_values("created").drop_duplicates(["video", "detector"], keep="last")
        df["flagged"] = df["flagged"].astype(bool)
        df["events"] = [json.loads(x) if x else [] for x in df["events"]]
        df["stats"] = [json.loads(x) if x else {} for x in df["stats"]]
        if with_arrays:
            df["series"] = [_blob_to_array(b) for b in df["series"]]
            df["maps"] = [_blob_to_array(b) for b in df["maps"]]
        return df.sort_values(["checkpoint", "video", "detector"], na_position="first").reset_index(drop=True)

    # labels ------------------------------------------------------------------------------
    _LABEL_FIELDS = ("video_hash", "path", "checkpoint", "prompt_id", "reviewer", "kind", "failure_mode",
                     "value", "start", "end", "note", "payload")

    def add_label(self, **label: Any) -> int:
        """Store one human label at once; returns its id. Unknown fields raise ``TypeError``.

        Fields: video_hash, path, checkpoint, prompt_id, reviewer, kind ("clip", "span", "ab",
        ...), failure_mode, value, start, end (frames, inclusive), note, payload (dict).
        """
        unknown = set(label) - set(self._LABEL_FIELDS)
        if unknown:
            raise TypeError(f"add_label: unknown field(s) {sorted(unknown)}; expected some of {self._LABEL_FIELDS}")
        values = [label.get(f) for f in self._LABEL_FIELDS]
        values[-1] = json.dumps(to_jsonable(values[-1])) if values[-1] is not None else None
        cols = ", ".join(f'"{f}"' for f in self._LABEL_FIELDS)
        uid = uuid.uuid4().hex  # makes the write idempotent: a retry after a lost reply adds nothing
        label_id = self._insert_returning_id(
            f"INSERT INTO labels ({cols}, created, uid) VALUES ({', '.join('?' * len(values))}, ?, ?) "
            "ON CONFLICT (uid) DO NOTHING",
            [*values, time.time(), uid],
        )
        if label_id is None:  # the first attempt did land
            label_id = self._one("SELECT id FROM labels WHERE uid = ?", (uid,))[0]
        return int(label_id)

    def delete_label(self, label_id: int) -> None:
        self._execute("DELETE FROM labels WHERE id = ?", (int(label_id),))

    def labels_frame(self) -> pd.DataFrame:
        df = self._frame(
            'SELECT id, video_hash, path, checkpoint, prompt_id, reviewer, created, kind, failure_mode, value, '
            'start, "end", note, payload FROM labels ORDER BY id')
        df["payload"] = [json.loads(x) if isinstance(x, str) and x else None for x in df["payload"]]
        return df


class SQLiteStore(SQLStore):
    """:class:`ResultStore` on one SQLite file (WAL mode: several readers and writers, in
    several processes; a writer waits up to 60 s for another's commit)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._prepare()

    @classmethod
    def for_root(cls, root: str | Path) -> SQLiteStore:
        return cls(Path(root) / DEFAULT_DB_NAME)

    def _found_version(self) -> int | None:
        """The schema version on disk; None for an empty file."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "evalkit_meta" in tables:
            row = self._conn.execute("SELECT value FROM evalkit_meta WHERE key = 'schema_version'").fetchone()
            return int(row[0]) if row else 1
        return 1 if "items" in tables else None

    def _prepare(self) -> None:
        found = self._found_version()
        if found is not None and found > SCHEMA_VERSION:
            self._conn.close()
            raise StoreError(self.name, f"expected schema version <= {SCHEMA_VERSION}, got {found}: "
                                        "written by a newer evalkit; upgrade evalkit to open it")
        if found is not None and found < SCHEMA_VERSION:
            # A copy first: a migration is one transaction, but a backup costs one file copy.
            backup = self.path.with_name(f"{self.path.name}.v{found}.bak")
            if not backup.exists():
                with sqlite3.connect(str(backup)) as target:
                    self._conn.backup(target)
                target.close()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # one process creates or migrates; others wait
            try:
                found = self._found_version()  # again: another process may have done it meanwhile
                if found is None:  # statement by statement: executescript would COMMIT midway
                    for statement in _SQLITE_SCHEMA_V1.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    found = 1
                _migrate(lambda sql, params=(): self._conn.execute(sql, tuple(params)), found)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with self._lock:
            return self._conn.execute(sql, tuple(params))  # autocommit: one statement, one transaction

    def _query(self, sql: str, params: Iterable[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            return [d[0] for d in cur.description], cur.fetchall()

    def _insert_returning_id(self, sql: str, params: Iterable[Any]) -> int | None:
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            return int(cur.lastrowid) if cur.rowcount else None


def _migrate(execute: Any, found: int) -> None:
    """Bring a store from version ``found`` to :data:`SCHEMA_VERSION` inside the caller's
    transaction, recording the version reached."""
    for version in range(found, SCHEMA_VERSION):
        for statement in _MIGRATIONS[version]:
            execute(statement)
    if found < SCHEMA_VERSION:
        execute("INSERT INTO evalkit_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
        if found > 0:
            execute("INSERT INTO evalkit_meta (key, value) VALUES ('migrated_from', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(found),))


def _row_to_result(row: tuple) -> DetectorResult:
    score, flagged, events, stats, series, maps = row
    return DetectorResult(
        score=float("nan") if score is None else float(score),
        flagged=bool(flagged),
        series=_blob_to_array(series) if series is not None else np.zeros(0, np.float32),
        events=[Event(**e) if e.get("score") is not None else Event(e["start"], e["end"], e["kind"], float("nan"))
                for e in json.loads(events or "[]")],
        stats=json.loads(stats or "{}"),
        maps=_blob_to_array(maps),
    )

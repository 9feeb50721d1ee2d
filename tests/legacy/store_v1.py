# evalkit 0.1.0 evalkit/store.py (commit eae2f3a), verbatim below this line: writes schema version 1 stores for tests/test_store_migration.py.
"""The results store: one SQLite file per checkpoint root (``ROOT/evalkit.db`` by default).

A result row is keyed by (video content hash, detector name, detector version, config hash), so
a re-run skips finished work and a changed config adds rows instead of overwriting. Per-frame
series, events and maps are stored too (the review widgets read them). Every write commits at
once: a run killed midway loses nothing already computed. Human labels live here as well.

The :class:`ResultStore` interface is what the runner, the report and the widgets use; SQLite
is the only backend today.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import pandas as pd

from evalkit._types import DetectorResult, Event, to_jsonable

DEFAULT_DB_NAME = "evalkit.db"


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


_SCHEMA = """
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


def _array_to_blob(array: np.ndarray | None) -> bytes | None:
    if array is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _blob_to_array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False)


class SQLiteStore:
    """:class:`ResultStore` on one SQLite file (WAL mode; safe for several readers and one writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    @classmethod
    def for_root(cls, root: str | Path) -> SQLiteStore:
        return cls(Path(root) / DEFAULT_DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: Iterable[Any]) -> int:
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            self._conn.commit()
            return int(cur.lastrowid or 0)

    # results -----------------------------------------------------------------------------
    def has_result(self, key: ResultKey) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM results WHERE video_hash=? AND detector=? AND version=? AND config_hash=? "
                "AND prompt_hash=?",
                (key.video_hash, key.detector, key.version, key.config_hash, key.prompt_hash),
            ).fetchone()
        return row is not None

    def put_result(self, key: ResultKey, result: DetectorResult) -> None:
        self._write(
            "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
        with self._lock:
            row = self._conn.execute(
                "SELECT score, flagged, events, stats, series, maps FROM results "
                "WHERE video_hash=? AND detector=? AND version=? AND config_hash=? AND prompt_hash=?",
                (key.video_hash, key.detector, key.version, key.config_hash, key.prompt_hash),
            ).fetchone()
        return None if row is None else _row_to_result(row)

    def latest_result(self, video_hash: str, detector: str) -> DetectorResult | None:
        """The most recently computed result of ``detector`` on a video, whatever its config."""
        with self._lock:
            row = self._conn.execute(
                "SELECT score, flagged, events, stats, series, maps FROM results "
                "WHERE video_hash=? AND detector=? ORDER BY created DESC LIMIT 1",
                (video_hash, detector),
            ).fetchone()
        return None if row is None else _row_to_result(row)

    # items and errors --------------------------------------------------------------------
    def put_item(self, item: ItemRecord) -> None:
        # A run that only finds stored results knows no frame count: keep what an earlier run
        # recorded for the same file instead of wiping it.
        keep = lambda col: f"{col} = COALESCE(excluded.{col}, CASE WHEN items.video_hash = excluded.video_hash THEN items.{col} END)"  # noqa: E731
        self._write(
            "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET "
            "video_hash = excluded.video_hash, checkpoint = excluded.checkpoint, prompt_id = excluded.prompt_id, "
            "seed = excluded.seed, updated = excluded.updated, prompt_hash = excluded.prompt_hash, "
            + ", ".join(keep(c) for c in ("num_frames", "fps", "width", "height")),
            (item.path, item.video_hash, item.checkpoint, item.prompt_id, item.seed,
             item.num_frames, item.fps, item.width, item.height, time.time(), item.prompt_hash),
        )

    def put_error(self, path: str, detector: str, message: str, checkpoint: str | None = None) -> None:
        self._write(
            "INSERT INTO errors (path, checkpoint, detector, message, created) VALUES (?,?,?,?,?)",
            (path, checkpoint, detector, message, time.time()),
        )

    def errors_frame(self) -> pd.DataFrame:
        with self._lock:
            # A bad file fails again on every run: show each (path, detector) once, newest message.
            return pd.read_sql_query(
                "SELECT path, checkpoint, detector, message, MAX(created) AS created FROM errors "
                "GROUP BY path, detector ORDER BY created", self._conn)

    def items_frame(self) -> pd.DataFrame:
        with self._lock:
            return pd.read_sql_query("SELECT * FROM items", self._conn)

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
        with self._lock:
            df = pd.read_sql_query(sql, self._conn, params=params)
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
        return self._write(
            f"INSERT INTO labels ({cols}, created) VALUES ({', '.join('?' * len(values))}, ?)",
            [*values, time.time()],
        )

    def delete_label(self, label_id: int) -> None:
        self._write("DELETE FROM labels WHERE id = ?", (label_id,))

    def labels_frame(self) -> pd.DataFrame:
        with self._lock:
            df = pd.read_sql_query("SELECT * FROM labels ORDER BY id", self._conn)
        df["payload"] = [json.loads(x) if isinstance(x, str) and x else None for x in df["payload"]]
        return df


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


def load_results(root: str | Path, checkpoint: str | None = None, detector: str | None = None,
                 with_arrays: bool = False) -> pd.DataFrame:
    """Stored results of checkpoint root ``root`` as a DataFrame (see :meth:`SQLiteStore.results_frame`)."""
    db = Path(root) / DEFAULT_DB_NAME if Path(root).is_dir() else Path(root)
    if not db.is_file():
        from evalkit.errors import LayoutError

        raise LayoutError(str(db), "no results store here; run `evalkit run ROOT` first")
    with SQLiteStore(db) as store:
        return store.results_frame(checkpoint=checkpoint, detector=detector, with_arrays=with_arrays)

"""The results store: one SQLite file per checkpoint root (``ROOT/evalkit.db`` by default), or
a PostgreSQL database a team shares (``--db postgresql://...`` or ``EVALKIT_DB``).

A result row is keyed by (video content hash, detector name, detector version, config hash), so
a re-run skips finished work and a changed config adds rows instead of overwriting. Per-frame
series, events and maps are stored too (the review widgets read them). Every write commits at
once: a run killed midway loses nothing already computed. Human labels live here as well; any
number of processes may add them at the same time.

The :class:`ResultStore` interface is what the runner, the report and the widgets use;
:func:`open_store` picks the backend from the ``db`` string. Both backends share the SQL below
(written with ``?`` placeholders) and differ only in their DDL and connection handling.

Schema versions (``evalkit_meta.schema_version``; a store without that table is version 1):

    1  evalkit 0.1.0: items, results, errors, labels
    2  + evalkit_meta; indexes on labels(video_hash) and errors(path, detector); labels.uid
       (unique, written by the client: a label write retried after a lost connection lands once)

Opening an older SQLite store copies it to ``evalkit.db.v<N>.bak`` and migrates it in one
transaction; a store newer than this code raises :class:`~evalkit.errors.StoreError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from evalkit._store_sql import (  # noqa: F401  (the store's public names live here)
    _MIGRATIONS,
    DB_ENV,
    DEFAULT_DB_NAME,
    SCHEMA_VERSION,
    ItemRecord,
    ResultKey,
    ResultStore,
    SQLiteStore,
    SQLStore,
    _migrate,
    prompt_digest,
)
from evalkit.errors import LayoutError, StoreError

__all__ = sorted(["DB_ENV", "DEFAULT_DB_NAME", "ItemRecord", "ResultKey", "ResultStore", "SCHEMA_VERSION",
                  "SQLStore", "SQLiteStore", "is_postgres", "load_results", "open_store", "prompt_digest",
                  "resolve_db"])


def is_postgres(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL)."""
    return str(db).startswith(("postgresql://", "postgres://"))


def resolve_db(db: str | Path | None = None, root: str | Path | None = None) -> str:
    """Which store to use: ``db`` if given, else ``$EVALKIT_DB``, else ``ROOT/evalkit.db``."""
    chosen = db or os.environ.get(DB_ENV)
    if chosen:
        return str(chosen)
    if root is None:
        raise StoreError("(no store)", f"expected a db argument, ${DB_ENV} or a checkpoint root, got none")
    root = Path(root)
    return str(root if root.is_file() else root / DEFAULT_DB_NAME)


def open_store(db: str | Path | None = None, root: str | Path | None = None, create: bool = True) -> SQLStore:
    """Open the store named by ``db`` (a SQLite path or a ``postgresql://`` URL; see
    :func:`resolve_db` for the default). With ``create=False`` a missing SQLite file raises
    :class:`~evalkit.errors.LayoutError` instead of being created.

    Raises:
        StoreError: the store is newer than this code, the PostgreSQL driver is missing or the
            server cannot be reached.
    """
    target = resolve_db(db, root)
    if is_postgres(target):
        from evalkit._store_postgres import PostgresStore

        return PostgresStore(target)
    if not create and not Path(target).is_file():
        raise LayoutError(target, "no results store here; run `evalkit run ROOT` first")
    return SQLiteStore(target)


def load_results(root: str | Path, checkpoint: str | None = None, detector: str | None = None,
                 with_arrays: bool = False, db: str | Path | None = None) -> pd.DataFrame:
    """Stored results of checkpoint root ``root`` as a DataFrame (see :meth:`SQLStore.results_frame`).

    ``root`` may also be a store file. ``db`` (default ``$EVALKIT_DB``, else ``ROOT/evalkit.db``)
    names the store; a shared store gives only the videos under ``root``.
    """
    shared = db or os.environ.get(DB_ENV)
    with open_store(db, root=root, create=False) as store:
        df = store.results_frame(checkpoint=checkpoint, detector=detector, with_arrays=with_arrays)
    if shared and Path(root).is_dir():
        prefix = str(Path(root).resolve()) + os.sep
        df = df[df["video"].str.startswith(prefix)].reset_index(drop=True)
    return df

"""Store upgrades lose nothing: a store written by evalkit 0.1.0 (schema version 1, by that
release's own store module, frozen in tests/legacy/store_v1.py) opens, migrates and keeps every
row and label."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit import DetectorResult, Event
from evalkit.store import SCHEMA_VERSION, ItemRecord, ResultKey, SQLiteStore, open_store

LEGACY = Path(__file__).parent / "legacy" / "store_v1.py"


def _legacy_module():
    if "evalkit_store_v1" not in sys.modules:
        spec = importlib.util.spec_from_file_location("evalkit_store_v1", LEGACY)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["evalkit_store_v1"]


def _write_v1_store(path: Path) -> None:
    v1 = _legacy_module()
    with v1.SQLiteStore(path) as store:
        rng = np.random.default_rng(0)
        for i in range(12):
            store.put_item(v1.ItemRecord(f"/root/ck{i % 3}/p{i}_s{i}.mp4", f"h{i}", f"ck{i % 3}", f"p{i}", i,
                                         30 + i, 24.0, 64, 48, prompt_hash=f"ph{i}"))
            for detector in ("framediff", "confetti"):
                store.put_result(v1.ResultKey(f"h{i}", detector, "1", "cfg"), DetectorResult(
                    score=float(rng.random()), flagged=bool(i % 2), series=rng.random(30 + i).astype(np.float32),
                    events=[Event(1, 4, "burst", 0.5)], stats={"i": i}, maps=rng.random((3, 4, 5)).astype(np.float16)))
            store.put_result(v1.ResultKey(f"h{i}", "alignment", "1", "cfg", f"ph{i}"),
                             DetectorResult(score=float("nan"), flagged=False, series=np.zeros(0, np.float32)))
        store.put_error("/root/ck0/bad.mp4", "framediff", "cannot decode", "ck0")
        store.put_error("/root/ck0/bad.mp4", "framediff", "cannot decode again", "ck0")
        for i in range(25):
            store.add_label(video_hash=f"h{i % 12}", path=f"/root/p{i}.mp4", reviewer=f"r{i % 3}", kind="span",
                            failure_mode="confetti", value="fail", start=i, end=i + 3,
                            note=f"<script>alert({i})</script>", payload={"i": i})
        store.delete_label(5)  # ids keep their gap


def _snapshot(path: Path) -> dict[str, pd.DataFrame]:
    """Every row of every table, read with plain sqlite3 (no evalkit code in between)."""
    with sqlite3.connect(path) as conn:
        return {t: pd.read_sql_query(f"SELECT * FROM {t} ORDER BY 1, 2", conn) for t in ("items", "results", "errors", "labels")}


def test_a_v1_store_migrates_and_keeps_every_row_and_label(tmp_path, reliability_counts):
    db = tmp_path / "evalkit.db"
    _write_v1_store(db)
    before = _snapshot(db)
    assert len(before["results"]) == 36 and len(before["labels"]) == 24 and len(before["errors"]) == 2
    with sqlite3.connect(db) as conn:
        assert "evalkit_meta" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    v1 = _legacy_module()
    with v1.SQLiteStore(db) as old:
        old_results = old.results_frame(with_arrays=True)
        old_labels = old.labels_frame()

    with open_store(db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        new_results = store.results_frame(with_arrays=True)
        new_labels = store.labels_frame()
        store.add_label(video_hash="h0", reviewer="new", kind="clip")  # ids continue after the old ones
        assert store.labels_frame()["id"].max() == 26
    after = _snapshot(db)
    lost = {t: len(before[t]) - len(after[t][before[t].columns].iloc[: len(before[t])].merge(before[t])) for t in before}
    reliability_counts(f"store migration v1 -> v{SCHEMA_VERSION}: rows before {({t: len(f) for t, f in before.items()})}, "
                       f"rows lost {sum(lost.values())}")
    for table in ("items", "results", "errors"):
        pd.testing.assert_frame_equal(after[table], before[table])
    assert after["labels"]["uid"].iloc[:24].isna().all() and after["labels"]["uid"].iloc[24]  # new column
    pd.testing.assert_frame_equal(after["labels"].drop(columns="uid").iloc[:24], before["labels"],
                                  check_dtype=False)  # row 25 has no start
    assert sum(lost.values()) == 0

    # what the API returns is the same, arrays included
    pd.testing.assert_frame_equal(new_labels, old_labels)
    assert len(new_results) == len(old_results) == 36
    for column in ("video", "detector", "score", "flagged", "events", "stats"):
        assert new_results[column].tolist() == old_results[column].tolist() or column == "score"
    np.testing.assert_array_equal(new_results["score"], old_results["score"])
    for a, b in zip(new_results["series"], old_results["series"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(new_results["maps"], old_results["maps"]):
        assert (a is None and b is None) or np.array_equal(a, b)

    backup = tmp_path / "evalkit.db.v1.bak"
    assert backup.is_file()
    for table, frame in _snapshot(backup).items():
        pd.testing.assert_frame_equal(frame, before[table])
    with sqlite3.connect(db) as conn:
        meta = dict(conn.execute("SELECT key, value FROM evalkit_meta"))
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert meta == {"schema_version": str(SCHEMA_VERSION), "migrated_from": "1"}
    assert {"labels_video", "errors_path", "labels_uid"} <= indexes


def test_the_v1_release_still_reads_a_migrated_store(tmp_path):
    """Version 2 only adds a table and indexes: a teammate on 0.1.0 keeps working."""
    db = tmp_path / "evalkit.db"
    _write_v1_store(db)
    with open_store(db) as store:
        store.put_item(ItemRecord("/root/new.mp4", "hn", "ck9", "pn"))
        store.put_result(ResultKey("hn", "framediff", "1", "cfg"), DetectorResult(0.5, False, np.ones(3, np.float32)))
    with _legacy_module().SQLiteStore(db) as old:
        assert "hn" in set(old.results_frame()["video_hash"]) and len(old.labels_frame()) == 24


def test_a_migration_that_fails_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    import evalkit.store as store_module

    db = tmp_path / "evalkit.db"
    _write_v1_store(db)
    before = _snapshot(db)
    monkeypatch.setitem(store_module._MIGRATIONS, 1, [*store_module._MIGRATIONS[1], "THIS IS NOT SQL"])
    with pytest.raises(sqlite3.OperationalError):
        SQLiteStore(db)
    with sqlite3.connect(db) as conn:
        assert "evalkit_meta" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    for table, frame in _snapshot(db).items():
        pd.testing.assert_frame_equal(frame, before[table])

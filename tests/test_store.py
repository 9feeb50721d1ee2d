"""The store API on both backends (SQLite and PostgreSQL; see conftest's ``store_db``)."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit import DetectorResult, Event
from evalkit.errors import LayoutError, StoreError
from evalkit.store import SCHEMA_VERSION, ItemRecord, ResultKey, SQLiteStore, load_results, open_store


def _result(score: float) -> DetectorResult:
    return DetectorResult(score=score, flagged=score > 1, series=np.arange(5, dtype=np.float32),
                          events=[Event(1, 3, "burst", 2.5)], stats={"n": np.int64(3), "x": np.float32(0.5)},
                          maps=np.ones((5, 4, 6), np.float16))


def test_round_trip_keys_and_arrays(store_db):
    with open_store(store_db) as store:
        key = ResultKey("h1", "confetti", "1", "cfgA")
        assert not store.has_result(key)
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1", 2, 5, 24.0, 64, 48))
        store.put_result(key, _result(2.0))
        assert store.has_result(key)
        assert not store.has_result(ResultKey("h1", "confetti", "2", "cfgA"))  # a new version recomputes
        assert not store.has_result(ResultKey("h1", "confetti", "1", "cfgB"))  # a new config recomputes
        back = store.get_result(key)
        assert back.score == 2.0 and back.flagged and back.events == [Event(1, 3, "burst", 2.5)]
        np.testing.assert_array_equal(back.series, np.arange(5))
        assert back.maps.shape == (5, 4, 6) and back.maps.dtype == np.float16
        assert back.stats == {"n": 3, "x": 0.5}
        assert store.latest_result("h1", "confetti").score == 2.0


def test_put_result_twice_replaces(store_db):
    with open_store(store_db) as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1"))
        key = ResultKey("h1", "confetti", "1", "cfgA")
        store.put_result(key, _result(1.0))
        store.put_result(key, _result(1.0 / 3.0))
        frame = store.results_frame(latest_only=False)
        assert len(frame) == 1 and frame.loc[0, "score"] == 1.0 / 3.0  # full float64 on both backends


def test_nan_score_is_stored_as_missing(store_db):
    with open_store(store_db) as store:
        key = ResultKey("h1", "blink", "1", "c")
        store.put_result(key, DetectorResult(score=float("nan"), flagged=False, series=np.zeros(0, np.float32)))
        assert np.isnan(store.get_result(key).score) and store.get_result(key).maps is None


def test_changed_config_adds_rows_and_latest_wins(store_db):
    with open_store(store_db) as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1"))
        store.put_result(ResultKey("h1", "confetti", "1", "cfgA"), _result(1.0))
        store.put_result(ResultKey("h1", "confetti", "1", "cfgB"), _result(3.0))
        everything = store.results_frame(latest_only=False)
        assert sorted(everything["config_hash"]) == ["cfgA", "cfgB"]
        latest = store.results_frame()
        assert len(latest) == 1 and latest.loc[0, "score"] == 3.0


def test_prompt_keyed_results_join_their_item_only(store_db):
    with open_store(store_db) as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1", prompt_hash="pa"))
        store.put_item(ItemRecord("b.mp4", "h1", "ck", "p2", prompt_hash="pb"))
        store.put_result(ResultKey("h1", "alignment", "1", "c", "pa"), _result(0.25))
        store.put_result(ResultKey("h1", "framediff", "1", "c"), _result(0.5))
        frame = store.results_frame()
        assert sorted(zip(frame["video"], frame["detector"])) == [
            ("a.mp4", "alignment"), ("a.mp4", "framediff"), ("b.mp4", "framediff")]
        assert list(store.results_frame(checkpoint="ck", detector="alignment")["video"]) == ["a.mp4"]


def test_labels_are_written_at_once(store_db):
    store = open_store(store_db)
    label_id = store.add_label(video_hash="h1", reviewer="ana", kind="span", failure_mode="confetti",
                               start=3, end=9, value="fail", note="<script>x</script>", payload={"k": 1})
    other = open_store(store_db)  # another process or a reopened notebook sees it without close()
    labels = other.labels_frame()
    assert labels.loc[0, "id"] == label_id and labels.loc[0, "end"] == 9 and labels.loc[0, "payload"] == {"k": 1}
    assert labels.loc[0, "note"] == "<script>x</script>"
    with pytest.raises(TypeError, match="colour"):
        store.add_label(colour="red")
    assert store.add_label(video_hash="h2", kind="clip") == label_id + 1
    store.delete_label(label_id)
    assert list(other.labels_frame()["video_hash"]) == ["h2"]
    store.close()
    other.close()


def test_errors_show_each_file_and_detector_once_newest_message(store_db):
    with open_store(store_db) as store:
        store.put_error("bad.mp4", "framediff", "first", "ck")
        store.put_error("other.mp4", "framediff", "other", "ck")
        store.put_error("bad.mp4", "framediff", "second", "ck")
        errors = store.errors_frame()
        assert list(errors["path"]) == ["other.mp4", "bad.mp4"] and list(errors["message"]) == ["other", "second"]


def test_load_results_without_store_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_DB", raising=False)
    with pytest.raises(LayoutError, match="evalkit.db"):
        load_results(tmp_path)


def test_labels_without_payload(store_db):
    with open_store(store_db) as store:
        store.add_label(video_hash="h1", reviewer="bo", kind="clip", failure_mode="blink", value="fail")
        assert store.labels_frame().loc[0, "payload"] is None


def test_item_metadata_survives_a_run_that_only_found_stored_results(store_db):
    with open_store(store_db) as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1", None, 120, 29.97, 176, 144))
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1"))  # cached: no decode, no metadata
        row = store.items_frame().iloc[0]
        assert row["num_frames"] == 120 and row["fps"] == 29.97
        store.put_item(ItemRecord("a.mp4", "h2", "ck", "p1"))  # the file changed: old metadata is wrong
        value = store.items_frame().iloc[0]["num_frames"]
        assert value is None or np.isnan(value)


def test_a_new_store_has_the_current_schema_version(store_db):
    with open_store(store_db) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with open_store(store_db) as again:  # reopening changes nothing
        assert again.schema_version() == SCHEMA_VERSION


def test_a_store_from_a_newer_evalkit_is_refused(store_db):
    with open_store(store_db) as store:
        store._execute("UPDATE evalkit_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"expected schema version <= {SCHEMA_VERSION}, got {SCHEMA_VERSION + 1}"):
        open_store(store_db)


def test_open_store_picks_the_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_DB", str(tmp_path / "team.db"))
    with open_store(root=tmp_path / "root") as store:  # the environment wins over the root's own file
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "team.db"
    with open_store(tmp_path / "mine.db", root=tmp_path / "root") as store:  # an explicit db wins over both
        assert store.path == tmp_path / "mine.db"


def test_unreachable_postgres_names_the_server_without_password(tmp_path):
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match=r"postgresql://ana:\*\*\*@.*cannot connect"):
        open_store(f"postgresql://ana:secret@/nodb?host={tmp_path}&connect_timeout=2")


def test_a_label_write_repeated_with_its_uid_lands_once(store_db, monkeypatch):
    """What a retry after a lost reply does: the same uid again adds no second row."""
    import uuid

    fixed = uuid.UUID("12345678123456781234567812345678")
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    with open_store(store_db) as store:
        first = store.add_label(video_hash="h1", reviewer="ana", kind="clip", value="fail")
        again = store.add_label(video_hash="h1", reviewer="ana", kind="clip", value="fail")
        assert first == again and len(store.labels_frame()) == 1


def test_postgres_reconnects_after_losing_its_connection(postgres_db):
    import psycopg

    with open_store(postgres_db) as store:
        store.add_label(video_hash="h1", reviewer="ana", kind="clip")
        with psycopg.connect(postgres_db, autocommit=True) as admin:  # the server drops the session
            admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
        store.add_label(video_hash="h2", reviewer="ana", kind="clip")  # reconnects, writes once
        assert list(store.labels_frame()["video_hash"]) == ["h1", "h2"]
        with psycopg.connect(postgres_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
        assert len(store.results_frame()) == 0 and len(store.labels_frame()) == 2  # reads too

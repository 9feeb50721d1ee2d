"""Every kind of bad input in the generated corpus (evalkit.datasets.bad_inputs) ends as
documented: a clear error record, a documented skip or a result, and the other videos finish."""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evalkit.batch import run_root
from evalkit.datasets.bad_inputs import HTML_NOTE, HTML_PROMPT, build_corpus, upright_marker
from evalkit.store import open_store
from evalkit.video import DecodeOptions, decode_video

DETECTORS = ["framediff", "confetti", "blink", "motion"]
NEEDS_PERSON = {"blink", "motion"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "root"
    kinds = build_corpus(root)
    summary = run_root(root, detectors=DETECTORS, workers=0)
    with open_store(root=root) as store:
        results = store.results_frame(latest_only=False)
        errors = store.errors_frame()
        items = store.items_frame()
    return root, kinds, summary, results, errors, items


def _outcome(kind, root, summary, results, errors, items) -> str:
    """What the run did with ``kind``, checked against what it should do; returns the outcome."""
    problems = [str(p) for p in summary.problems]
    for rel in kind.paths:
        path = str(root / rel)
        mine = results[results["video"] == path]
        failed = errors[errors["path"] == path]
        named = [p for p in problems if p.startswith(path)]
        if kind.expect in ("result", "skip"):
            assert failed.empty, f"{kind.name}: unexpected errors {failed['message'].tolist()}"
            assert sorted(mine["detector"]) == sorted(DETECTORS), f"{kind.name}: results {mine['detector'].tolist()}"
            for row in mine.itertuples():
                if row.detector in kind.skipped_by:
                    assert row.stats.get("skipped"), (kind.name, row.detector, row.stats)
                elif row.detector not in NEEDS_PERSON:  # the synthetic clips hold no person anyway
                    assert "skipped" not in row.stats and np.isfinite(row.score), (kind.name, row.detector, row.stats)
        elif kind.expect == "error":
            assert mine.empty, f"{kind.name}: results stored for a bad file"
            assert sorted(failed["detector"]) == sorted(DETECTORS), f"{kind.name}: errors {failed['detector'].tolist()}"
            for message in failed["message"]:
                assert message.startswith(path) and re.search(kind.reason, message), (kind.name, message)
        elif kind.expect in ("layout", "layout+run"):
            named = [p for p in problems if p.startswith(path)] or [p for p in problems if re.search(kind.reason, p)]
            assert any(re.search(kind.reason, p) for p in named), f"{kind.name}: problems {problems}"
            if kind.expect == "layout":
                assert not items["path"].str.startswith(path).any(), f"{kind.name}: {path} was scored"
                assert not errors["path"].str.startswith(path).any()
            elif rel.endswith(".mp4"):
                assert sorted(mine["detector"]) == sorted(DETECTORS)
        elif kind.expect == "label":
            with open_store(root=root) as store:
                label_id = store.add_label(path=path, video_hash=items.loc[items["path"] == path, "video_hash"].iloc[0],
                                           reviewer="mallory", kind="clip", note=HTML_NOTE, value="fail")
                stored = store.labels_frame().set_index("id").loc[label_id]
            assert stored["note"] == HTML_NOTE  # kept verbatim; every page escapes it (tests/test_browser.py)
        else:
            raise AssertionError(f"unknown expectation {kind.expect!r}")
    return kind.expect


def test_every_bad_input_kind_ends_as_documented(corpus, reliability_counts):
    root, kinds, summary, results, errors, items = corpus
    outcomes = Counter()
    failures = []
    for kind in kinds:
        try:
            outcomes[_outcome(kind, root, summary, results, errors, items)] += 1
        except AssertionError as exc:
            failures.append(f"{kind.name}: {exc}")
    line = (f"bad inputs: {len(kinds)} kinds tried; " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
            + f"; {len(failures)} not as documented")
    reliability_counts(line)
    print("\n" + line)
    assert not failures, "\n".join(failures)
    assert len(kinds) >= 20
    assert summary.exit_code == 1  # errors and layout problems are reported, not hidden


def test_the_good_videos_finish_beside_the_bad_ones(corpus):
    root, _, summary, results, _, _ = corpus
    for control in ("ckpt_a/good.mp4", "ckpt_b/good.mp4"):
        rows = results[results["video"] == str(root / control)]
        assert sorted(rows["detector"]) == sorted(DETECTORS)
        assert np.isfinite(rows.set_index("detector").loc["framediff", "score"])
    assert summary.computed > 0 and (root / "report.html").is_file()


def test_rotated_clips_come_out_upright(corpus):
    root = corpus[0]
    expected = upright_marker().astype(int)
    for degrees in (90, 180, 270):
        video = decode_video(root / "ckpt_a" / f"rotated_{degrees}.mp4", DecodeOptions(max_side=None))
        frame = video.numpy_hwc()[0].astype(int)
        assert frame.shape == expected.shape, (degrees, frame.shape)
        assert np.abs(frame - expected).mean() < 8, degrees  # H.264 noise only, not a turned picture
        assert video.source_size == (expected.shape[1], expected.shape[0])


def test_unusual_pictures_decode_to_rgb_frames_of_the_stated_size(corpus):
    root, _, _, _, _, items = corpus
    meta = items.set_index("path")
    a = root / "ckpt_a"
    assert meta.loc[str(a / "one_frame.mp4"), "num_frames"] == 1
    assert (meta.loc[str(a / "tiny_2x2.mp4"), ["width", "height"]] == [2, 2]).all()
    assert (meta.loc[str(a / "huge_8k.mp4"), ["width", "height"]] == [512, 288]).all()  # resized once, on decode
    assert decode_video(a / "huge_8k.mp4", DecodeOptions(max_side=None)).source_size == (7680, 4320)
    gray = decode_video(a / "grayscale.mp4").numpy_hwc()
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    for name in ("alpha.mov", "ten_bit.mp4", "vfr.mp4", "interlaced.mp4"):
        video = decode_video(a / name)
        assert video.frames.dtype.is_floating_point is False and video.frames.shape[1:] == (3, 48, 64), name
        assert video.num_frames == 8, name
    assert 1 <= meta.loc[str(a / "truncated_faststart.mp4"), "num_frames"] < 30


def test_prompts_survive_bad_neighbours_and_html_is_escaped_in_the_report(corpus):
    root = corpus[0]
    from evalkit.layout import scan_root

    layout = scan_root(root)
    by_path = {Path(i.path).name: i for i in layout.items if Path(i.path).parent.name == "ckpt_a"}
    assert by_path["html.mp4"].prompt == HTML_PROMPT
    assert by_path["dup.mp4"].prompt == "second wording"  # the later line wins, the duplicate is reported
    assert by_path["missing_prompt.mp4"].prompt is None
    assert by_path["good.mp4"].prompt == "a sliding gradient"
    report = (root / "report.html").read_text()
    assert "<script>alert(" not in report and "onerror=alert" not in report.replace("onerror=alert(2)&gt;", "")
    assert html.escape(HTML_PROMPT) in report

"""End to end: `evalkit run` on a small root of real clips; stored rows, export, report."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

import evalkit
from evalkit.batch import run_root
from evalkit.cli import main


def test_end_to_end_run_store_export_report(small_root, capsys):
    summary = run_root(small_root, detectors=["framediff"], workers=0)
    assert summary.computed == 4 and summary.cached == 0 and not summary.errors and summary.exit_code == 0

    df = evalkit.load_results(small_root, with_arrays=True)
    assert len(df) == 4 and set(df["checkpoint"]) == {"ckpt_a", "ckpt_b"}
    talk = df[(df["prompt_id"] == "talk") & (df["checkpoint"] == "ckpt_a")].iloc[0]
    assert talk["num_frames"] == 120 and talk["series"].shape == (120,)
    # the stored number is the detector's number on the same video, computed directly
    direct = evalkit.score(small_root / "ckpt_a" / "talk.mp4", detectors="framediff")
    assert np.isclose(direct.loc[0, "score"], talk["score"])
    assert np.isclose(talk["score"], np.nanmean(talk["series"]))

    assert main(["results", str(small_root), "--format", "jsonl"]) == 0
    exported = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(r["score"] for r in exported) == sorted(df["score"].tolist())

    report = (small_root / "report.html").read_text()
    assert "ckpt_a" in report and "ckpt_b" in report and "framediff" in report
    assert "plotly" in report.lower() and "data:image/jpeg;base64" in report
    assert "cyclists on a <b>street</b>" not in report  # prompt text is escaped
    assert html.escape("cyclists on a <b>street</b>") in report


def test_second_run_does_no_work_twice(small_root, monkeypatch):
    run_root(small_root, detectors=["framediff"], workers=0, write_report=False)
    import evalkit.runner as runner

    calls = []
    monkeypatch.setattr(runner, "decode_video", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    again = run_root(small_root, detectors=["framediff"], workers=0, write_report=False)
    assert again.computed == 0 and again.cached == 4 and calls == []


def test_each_video_decoded_once_for_all_detectors(small_root, monkeypatch):
    from evalkit.registry import register, _EXTRA
    from detectors_for_tests import Constant, Slow

    import evalkit.runner as runner

    real = runner.decode_video
    decoded: list[str] = []

    def counting(path, *a, **k):
        decoded.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(runner, "decode_video", counting)
    register("constant", Constant)
    register("slow", Slow)
    try:
        summary = run_root(small_root, detectors=["framediff", "constant", "slow"], workers=0, write_report=False)
    finally:
        _EXTRA.pop("constant"), _EXTRA.pop("slow")
    assert summary.computed == 12
    assert sorted(decoded) == sorted(set(decoded)) and len(decoded) == 4


def test_score_api_returns_dataframe(clips):
    df = evalkit.score([clips["carphone_pristine.mp4"], clips["bikes.mp4"]], detectors=["framediff"])
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and df["error"].isna().all()
    assert list(df["series"].map(len)) == [120, 250]


def test_root_given_relative_is_found_from_another_directory(small_root, monkeypatch):
    """`evalkit run demo` from the repository, then notebooks open `../demo` from notebooks/."""
    monkeypatch.chdir(small_root.parent)
    run_root(small_root.name, detectors=["framediff"], workers=0, write_report=False)
    (small_root.parent / "elsewhere").mkdir()
    monkeypatch.chdir(small_root.parent / "elsewhere")
    from evalkit.widgets import ReviewData

    assert len(ReviewData("../" + small_root.name).clips()) == 4
    assert all(v.startswith("/") for v in evalkit.load_results("../" + small_root.name)["video"])

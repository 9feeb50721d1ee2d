"""The scheduled job: growing roots, kill and resume, concurrent runs, regression alerts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from conftest import synthetic_frames
from evalkit.batch import LOCK_NAME, RootBusyError, parse_interval, run_root, watch
from evalkit.cli import main
from evalkit.store import SQLiteStore
from evalkit.video import write_video

TESTS = Path(__file__).parent
LAUNCH = ("import sys; from evalkit.registry import register; from detectors_for_tests import Slow; "
          "register('slow', Slow); from evalkit.cli import main; sys.exit(main(sys.argv[1:]))")


def _synthetic_root(root: Path, checkpoints: dict[str, float], clips: int = 4) -> Path:
    """Checkpoints of small synthetic clips; value = amount of added flicker (framediff rises with it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(clips)))
    for step, (name, flicker) in enumerate(checkpoints.items(), start=1):
        _add_checkpoint(root, name, step * 1000, flicker, clips)
    return root


def _add_checkpoint(root: Path, name: str, step: int, flicker: float, clips: int = 4) -> None:
    (root / name).mkdir()
    (root / name / "checkpoint.json").write_text(json.dumps({"step": step, "stage": "lowres"}))
    for i in range(clips):
        frames = synthetic_frames(12, 32, 48, seed=i).astype(np.int16)
        frames[:, :8, :8] = (step // 1000) * 40  # distinct content per checkpoint: identical files share results
        frames[1::2] += int(flicker)  # every other frame brighter: flicker
        write_video(root / name / f"p{i}.mp4", np.clip(frames, 0, 255).astype(np.uint8), fps=12)


def _spawn(root: Path, *extra: str, sleep_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "EVALKIT_TEST_SLEEP_S": str(sleep_s)}
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "run", str(root), "--detectors", "slow", "--workers", "0",
                             "--no-report", "--no-progress", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stored(root: Path, detector: str) -> int:
    with SQLiteStore(root / "evalkit.db") as store:
        return int((store.results_frame(detector=detector)["detector"] == detector).sum())


def test_identical_files_share_results(tmp_path):
    root = _synthetic_root(tmp_path / "r", {"c1": 0})
    (root / "copy").mkdir()
    for f in (root / "c1").glob("*.mp4"):
        (root / "copy" / f.name).write_bytes(f.read_bytes())
    summary = run_root(root, detectors=["framediff"], workers=0, write_report=False)
    assert summary.computed == 4 and summary.cached == 4  # keyed by content, not by path


def test_growing_root_only_new_checkpoint_is_evaluated(tmp_path):
    root = _synthetic_root(tmp_path / "r", {"c1": 0, "c2": 0})
    first = run_root(root, detectors=["framediff"], workers=0, write_report=False)
    assert first.computed == 8
    _add_checkpoint(root, "c3", 3000, 0)
    second = run_root(root, detectors=["framediff"], workers=0, write_report=False)
    assert second.computed == 4 and second.cached == 8


def test_killed_run_resumes_without_redoing_work(tmp_path):
    root = _synthetic_root(tmp_path / "r", {"c1": 0, "c2": 0})  # 8 videos, 1 s each
    proc = _spawn(root, sleep_s=1.0)
    deadline = time.time() + 60
    while time.time() < deadline and (not (root / "evalkit.db").exists() or _stored(root, "slow") < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _stored(root, "slow")
    assert 2 <= done_before < 8
    proc = _spawn(root)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{8 - done_before} results computed, {done_before} already stored" in out
    assert _stored(root, "slow") == 8


def test_second_concurrent_run_exits_with_clear_message(tmp_path, capsys):
    root = _synthetic_root(tmp_path / "r", {"c1": 0}, clips=2)
    with FileLock(str(root / LOCK_NAME)):
        with pytest.raises(RootBusyError, match="another `evalkit run`"):
            run_root(root, detectors=["framediff"], workers=0, wait_s=0.2)
        assert main(["run", str(root), "--detectors", "framediff", "--workers", "0"]) == 4
        assert "--wait" in capsys.readouterr().err


def test_two_runs_started_at_once_do_the_work_once(tmp_path):
    root = _synthetic_root(tmp_path / "r", {"c1": 0}, clips=3)
    a = _spawn(root, "--wait", "120", sleep_s=0.5)
    b = _spawn(root, "--wait", "120", sleep_s=0.5)
    outs = [p.communicate(timeout=180)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    computed = sorted(int(o.split(" results computed")[0].split()[-1]) for o in outs)
    assert computed == [0, 3]


def test_regression_alert_exit_code_report_and_hook(tmp_path, capsys):
    root = _synthetic_root(tmp_path / "r", {"c1": 0, "c2": 0, "c3": 60})
    marker = tmp_path / "hook.txt"
    hook = f"{sys.executable} -c \"import os,pathlib; pathlib.Path(r'{marker}').write_text(os.environ['EVALKIT_REGRESSIONS'])\""
    code = main(["run", str(root), "--detectors", "framediff", "--workers", "0", "--on-regression", hook])
    out = capsys.readouterr().out
    assert code == 3
    assert "REGRESSION framediff: c3 is worse than c2" in out and "4 paired clips" in out
    assert "c2 is worse than c1" not in out  # same clips, no alert
    assert "c3 is worse than c2" in marker.read_text()
    assert "Regression alerts" in (root / "report.html").read_text()


def test_watch_runs_repeatedly_and_picks_up_new_checkpoints(tmp_path):
    root = _synthetic_root(tmp_path / "r", {"c1": 0}, clips=2)
    seen = []

    def on_summary(summary):
        seen.append(summary.computed)
        if len(seen) == 1:
            _add_checkpoint(root, "c2", 2000, 0, clips=2)

    watch(root, every_s=0.01, iterations=3, on_summary=on_summary, detectors=["framediff"], workers=0, write_report=False)
    assert seen == [2, 2, 0]


def test_parse_interval():
    assert parse_interval("10m") == 600 and parse_interval("30s") == 30 and parse_interval("2h") == 7200
    with pytest.raises(ValueError, match="10m"):
        parse_interval("ten minutes")


def test_regressions_pair_clips_and_skip_the_image_stage_boundary():
    import pandas as pd

    from evalkit.aggregate import find_regressions

    rows = []
    for ck, base in (("img", 0.0), ("low", 5.0), ("mid", 5.0), ("high", 9.0)):
        for p in range(5):
            rows.append({"checkpoint": ck, "detector": "d", "prompt_id": f"p{p}", "seed": None,
                         "score": base + 0.1 * p, "flagged": False})
    df = pd.DataFrame(rows)
    stages = {"img": "image", "low": "lowres", "mid": "midres", "high": "highres"}
    found = find_regressions(df, ["img", "low", "mid", "high"], {"d": True}, stages=stages)
    assert [(r.previous, r.checkpoint, r.paired) for r in found] == [("mid", "high", 5)]
    assert found[0].delta == pytest.approx(4.0)
    better = find_regressions(df, ["img", "low", "mid", "high"], {"d": False}, stages=stages)
    assert better == []  # higher is better: rising scores are no regression

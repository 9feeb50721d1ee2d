"""The command line through main(argv), on real clips, with the framediff reference detector."""

from __future__ import annotations

import json
import shutil

import pytest

from evalkit.cli import main

CONTRACT = {"video", "detector", "score", "flagged", "events", "stats"}


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_score_jsonl_contract_and_bad_input(clips, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    code = main(["score", str(clips["carphone_pristine.mp4"]), str(bad), str(clips["bikes.mp4"]),
                 "--detectors", "framediff", "--format", "jsonl", "--max-side", "128"])
    records = _jsonl(capsys.readouterr().out)
    assert code == 1  # one input failed; the others were still scored
    assert [r["video"] for r in records] == [str(clips["carphone_pristine.mp4"]), str(bad), str(clips["bikes.mp4"])]
    good = [r for r in records if "error" not in r]
    assert len(good) == 2 and all(set(r) == CONTRACT for r in good)
    assert all(isinstance(r["score"], float) and isinstance(r["flagged"], bool) for r in good)
    for r in good:
        for e in r["events"]:
            assert set(e) == {"start", "end", "kind", "score"} and 0 <= e["start"] <= e["end"]
    (err,) = [r for r in records if "error" in r]
    assert set(err) == {"video", "detector", "error"} and str(bad) in err["error"]


def test_score_csv_to_file(clips, tmp_path):
    out = tmp_path / "o.csv"
    assert main(["score", str(clips["carphone_pristine.mp4"]), "--detectors", "framediff", "--format", "csv",
                 "-o", str(out)]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert {"video", "detector", "score", "flagged", "num_events"} <= set(header)


def test_unknown_detector_fails_at_once(clips, capsys):
    assert main(["score", str(clips["carphone_pristine.mp4"]), "--detectors", "framedif"]) == 2
    err = capsys.readouterr().err
    assert "Unknown detector 'framedif'" in err and "framediff" in err


def test_bad_set_option_fails_at_once(clips, capsys):
    assert main(["score", str(clips["carphone_pristine.mp4"]), "--detectors", "framediff",
                 "--set", "framediff.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_detectors_lists_needs_and_meaning(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    assert "framediff" in out and "needs" in out and "8-bit levels" in out


def test_run_then_results_export(small_root, capsys):
    assert main(["run", str(small_root), "--detectors", "framediff", "--workers", "0", "--max-side", "160"]) == 0
    first = capsys.readouterr().out
    assert "4 results computed, 0 already stored" in first
    assert main(["run", str(small_root), "--detectors", "framediff", "--workers", "0", "--max-side", "160"]) == 0
    assert "0 results computed, 4 already stored" in capsys.readouterr().out
    assert main(["results", str(small_root), "--checkpoint", "ckpt_b"]) == 0
    records = _jsonl(capsys.readouterr().out)
    assert len(records) == 2
    assert {r["prompt_id"] for r in records} == {"talk", "street"} and {r["checkpoint"] for r in records} == {"ckpt_b"}
    assert all(CONTRACT | {"checkpoint", "prompt_id"} <= set(r) for r in records)
    assert [r.get("seed") for r in records if r["prompt_id"] == "street"] == [1]


def test_bad_checkpoint_metadata_names_the_file_and_run_goes_on(small_root, capsys):
    (small_root / "ckpt_b" / "checkpoint.json").write_text('{"step": "soon", "stage": "lowres"}')
    (small_root / "ckpt_c").mkdir()
    (small_root / "ckpt_c" / "checkpoint.json").write_text("{not json")
    shutil.copy(small_root / "ckpt_a" / "talk.mp4", small_root / "ckpt_c" / "talk.mp4")
    code = main(["run", str(small_root), "--detectors", "framediff", "--workers", "0", "--max-side", "96",
                 "--no-report"])
    out = capsys.readouterr().out
    assert code == 1
    assert str(small_root / "ckpt_b" / "checkpoint.json") in out and '"step" must be a non-negative integer' in out
    assert str(small_root / "ckpt_c" / "checkpoint.json") in out and "not valid JSON" in out
    assert "2 results computed" in out  # ckpt_a still evaluated


def test_missing_root_is_a_usage_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope"), "--detectors", "framediff"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cuda_without_gpu_fails_at_once(clips, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["score", str(clips["carphone_pristine.mp4"]), "--detectors", "framediff", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err

"""Prompt alignment with a tiny randomly initialised CLIP built here (no real weights exist offline).

The scores of a random model mean nothing; these tests check the plumbing: wiring of frames to
prompts, batch invariance, determinism, agreement with torchmetrics' CLIPScore, long-text
handling, local-only loading and the missing-model error.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

transformers = pytest.importorskip("transformers")

from evalkit import ModelWeightsMissingError, Video, VideoInputs, get_detector  # noqa: E402
from evalkit.detectors._clip import MODEL_ENV, encode_texts, load_local_model, resolve_local_model  # noqa: E402
from evalkit.detectors.alignment import (  # noqa: E402
    AlignmentDetector,
    clip_score,
    frame_text_similarity,
    rank_checkpoints,
    sample_frame_indices,
)
from evalkit.detectors.alignment_metric import VideoCLIPScore  # noqa: E402

PROMPTS = ["the cat and the dog", "a red dog", "the cat"]
LONG = " ".join(["the cat and the dog ran"] * 20)  # about 120 tokens with this vocabulary


def _write_tiny_clip(path) -> None:
    """A 2-layer CLIP (32-px images, 16-d embeddings) with a byte-level BPE tokenizer of a few merges."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    path.mkdir(parents=True)
    chars = list(bytes_to_unicode().values())
    merges = ["t h", "th e</w>", "a n", "an d</w>", "c a", "ca t</w>", "d o", "do g</w>", "r e", "re d</w>", "r a", "ra n</w>"]
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77)
    tiny = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(tiny, vocab_size=len(tokens), max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(tiny, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    # A random CLIP's image-text cosines share one sign; make it positive so the clamp at 0 hides nothing.
    with torch.no_grad():
        if frame_text_similarity(_frames(0, (3, 2, 3, 32, 32)), PROMPTS, model, processor).mean() < 0:
            model.text_projection.weight.neg_()
    model.save_pretrained(path)
    processor.save_pretrained(path)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matmuls on a shared CPU: a second thread only adds contention (about 20x slower here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # torchmetrics only accepts paths naming a known family, hence "openai" in the name.
    path = tmp_path_factory.mktemp("weights") / "openai-tiny-clip"
    _write_tiny_clip(path)
    return path


@pytest.fixture(scope="module")
def clip(model_dir):
    return load_local_model(str(model_dir))


def _frames(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Smooth random colour fields in [0, 1], quantised to k/255 so uint8 round trips are exact."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((*shape[:-2], 4, 4), generator=g)
    fine = torch.nn.functional.interpolate(coarse.reshape(-1, 3, 4, 4), size=shape[-2:], mode="bilinear", align_corners=False)
    return (fine.reshape(shape) * 255).round() / 255


def _inputs(seed: int, prompt: str | None, num_frames: int = 12, fps: float = 4.0, size=(32, 32)) -> VideoInputs:
    frames = (_frames(seed, (num_frames, 3, *size)) * 255).round().to(torch.uint8)
    video = Video(f"synthetic_{seed}.mp4", frames, fps, np.arange(num_frames), size[::-1], fps, f"hash{seed}")
    return VideoInputs(video=video, prompt=prompt)


def test_missing_model_says_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert "EVALKIT_ALIGNMENT_MODEL" in AlignmentDetector.unavailable_reason()
    with pytest.raises(ModelWeightsMissingError, match=MODEL_ENV):
        get_detector("alignment")
    with pytest.raises(ModelWeightsMissingError, match="not a directory") as missing_dir:
        get_detector("alignment", model=str(tmp_path / "nowhere" / "clip"))
    assert "config.json" in str(missing_dir.value) and MODEL_ENV in str(missing_dir.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelWeightsMissingError, match="expected a model directory with config.json"):
        get_detector("alignment", model=str(tmp_path / "empty"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv(MODEL_ENV, "nobody/no-such-clip")
    reason = AlignmentDetector.unavailable_reason()
    assert "huggingface-cli download nobody/no-such-clip" in reason and str(tmp_path / "hub") in reason


def test_loads_from_env_dir_and_local_hf_cache_only(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(model_dir))
    assert AlignmentDetector.unavailable_reason() is None
    from_env = get_detector("alignment")
    assert from_env.model_path == model_dir and from_env.config["model"] == str(model_dir)
    # Results are keyed by the model used, however it was named.
    assert from_env.config_hash == get_detector("alignment", model=str(model_dir)).config_hash
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "other"))
    shutil.copytree(model_dir, tmp_path / "other")
    assert get_detector("alignment").config_hash != from_env.config_hash
    # A repo id resolves through the local cache layout (refs/main -> snapshots/<commit>/), offline.
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--tiny--clip"
    shutil.copytree(model_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_local_model("tiny/clip") == repo / "snapshots" / "abc123"


def test_wiring_detector_matches_functional_form(model_dir, clip):
    model, processor = clip
    det = get_detector("alignment", model=str(model_dir), frames_per_second=2.0, threshold=1e9)
    assert isinstance(det, AlignmentDetector) and det.higher_is_worse is False
    inputs = [_inputs(1, PROMPTS[0]), _inputs(2, None), _inputs(3, PROMPTS[1], num_frames=9, size=(40, 48))]
    results = det.score_batch(inputs)
    assert results[1].is_skipped and results[1].stats["skipped"] == "no prompt" and len(results[1].series) == 12
    for x, r in zip([inputs[0], inputs[2]], [results[0], results[2]]):
        idx = sample_frame_indices(x.video.num_frames, x.video.fps, 2.0, 32)
        assert r.stats["sampled_frames"] == idx.tolist() and r.series.shape == (x.video.num_frames,)
        assert np.isfinite(r.series[idx]).all() and np.isnan(np.delete(r.series, idx)).all()
        frames = x.video.float_frames()[torch.from_numpy(idx)]
        with torch.no_grad():
            expected = clip_score(frames[None], [x.prompt], model, processor)
        assert r.score == pytest.approx(float(expected), abs=1e-4)
        assert r.flagged and r.events and r.events[0].kind == "low_alignment"  # threshold above every score
    # Each video is scored against its own prompt: swapping prompts changes the scores.
    swapped = det.score_batch([_inputs(1, PROMPTS[1]), _inputs(3, PROMPTS[0], num_frames=9, size=(40, 48))])
    assert abs(swapped[0].score - results[0].score) > 1e-3 and abs(swapped[1].score - results[2].score) > 1e-3


def test_batch_invariance_and_determinism(model_dir):
    inputs = [_inputs(s, PROMPTS[s % 3], num_frames=8 + s) for s in range(4)]
    batched = get_detector("alignment", model=str(model_dir), batch_size=5).score_batch(inputs)
    fresh = get_detector("alignment", model=str(model_dir), batch_size=64)
    one_by_one = [fresh.score(x) for x in inputs]
    again = get_detector("alignment", model=str(model_dir), batch_size=5).score_batch(inputs)
    for b, o, a in zip(batched, one_by_one, again):
        np.testing.assert_allclose(b.series, o.series, atol=1e-4, equal_nan=True)
        assert b.score == pytest.approx(o.score, abs=1e-4)
        np.testing.assert_array_equal(b.series, a.series)  # same config, fresh instance: bit-identical
    assert len({round(r.score, 3) for r in batched}) == 4


def test_agrees_with_torchmetrics_clipscore(model_dir, clip):
    from torchmetrics.multimodal import CLIPScore

    model, processor = clip
    videos = _frames(7, (3, 5, 3, 32, 32))  # at the model's input size: identical preprocessing
    ours, reference = VideoCLIPScore(model, processor), CLIPScore(model_name_or_path=str(model_dir))
    for batch, prompts in [(videos[:2], PROMPTS[:2]), (videos[2:], PROMPTS[2:])]:
        ours.update(batch, prompts)
        reference.update(list(batch.flatten(0, 1) * 255), [p for p in prompts for _ in range(batch.shape[1])])
    raw = frame_text_similarity(videos, PROMPTS, model, processor)
    assert raw.min() < raw.max() and raw.mean() > 0  # the comparison is not hidden by the clamp at 0
    assert float(ours.compute()) == pytest.approx(float(reference.compute()), abs=1e-3)
    # Per image, the functional form equals torchmetrics' per-pair score.
    images = videos[:, 0]
    with torch.no_grad():
        per_image = clip_score(images, PROMPTS, model, processor)
        for image, prompt, ours_one in zip(images, PROMPTS, per_image):
            ref_one = CLIPScore(model_name_or_path=str(model_dir))(image * 255, prompt)
            assert float(ours_one) == pytest.approx(float(ref_one), abs=1e-3)
    # Frames at another size go through a torch bicubic resize instead of PIL's: close, not equal.
    big = _frames(8, (4, 3, 45, 60))
    with torch.no_grad():
        ref_big = CLIPScore(model_name_or_path=str(model_dir))(list(big * 255), [PROMPTS[0]] * 4)
        assert float(clip_score(big[None], PROMPTS[:1], model, processor)) == pytest.approx(float(ref_big), abs=0.1)


def test_long_prompt_truncated_with_warning_or_chunked(model_dir, clip, caplog):
    model, processor = clip
    tail_a, tail_b = LONG + " the dog", LONG + " a cat"  # differ only past the 77-token limit
    det = get_detector("alignment", model=str(model_dir))
    with caplog.at_level(logging.WARNING, logger="evalkit.detectors._clip"):
        res = det.score_batch([_inputs(1, tail_a), _inputs(1, tail_b), _inputs(1, PROMPTS[0])])
    assert sum("over the model's limit of 77" in m for m in caplog.messages) == 2
    assert res[0].stats["text_truncated"] and res[0].stats["text_tokens"] > 77
    assert not res[2].stats["text_truncated"] and res[2].stats["text_tokens"] < 77
    assert res[0].score == pytest.approx(res[1].score, abs=1e-4)  # truncation drops the differing tail ...
    # ... and keeps the end-of-text token: equal to encoding the first 75 content tokens by hand.
    tok = processor.tokenizer
    head = tok.decode(tok(tail_a, add_special_tokens=False)["input_ids"][:75])
    truncated, infos = encode_texts([tail_a, head], model, processor)
    torch.testing.assert_close(truncated[0], truncated[1])
    assert infos[0].truncated and not infos[1].truncated
    chunked = get_detector("alignment", model=str(model_dir), long_text="chunk").score_batch(
        [_inputs(1, tail_a), _inputs(1, tail_b)]
    )
    assert chunked[0].stats["text_chunks"] == 2 and not chunked[0].stats["text_truncated"]
    assert abs(chunked[0].score - chunked[1].score) > 1e-3


def test_sampling_is_in_seconds_not_frames():
    at_24 = sample_frame_indices(96, 24.0, 2.0, 32)  # 4 s
    at_8 = sample_frame_indices(32, 8.0, 2.0, 32)
    assert len(at_24) == len(at_8) == 8
    np.testing.assert_allclose(at_24 / 24.0, at_8 / 8.0, atol=0.1)
    assert len(sample_frame_indices(960, 24.0, 2.0, 32)) == 32 and len(sample_frame_indices(3, 24.0, 2.0, 32)) == 1


def test_rank_checkpoints_per_prompt():
    df = pd.DataFrame({
        "checkpoint": ["early", "early", "late", "late", "mid", "early", "late", "late"],
        "prompt_id": ["p1", "p1", "p1", "p1", "p1", "p2", "p2", "p2"],
        "detector": ["alignment"] * 7 + ["blink"],
        "score": [20.0, 22.0, 30.0, np.nan, 25.0, 28.0, 26.0, 99.0],
    })
    ranks = rank_checkpoints(df)
    p1 = ranks[ranks.prompt_id == "p1"].set_index("checkpoint")
    assert list(p1.index) == ["late", "mid", "early"] and list(p1["rank"]) == [1, 2, 3]
    assert p1.loc["early", "score"] == 21.0 and p1.loc["late", "n_videos"] == 1  # the NaN (skipped) row left out
    assert p1.loc["early", "gap_to_best"] == 9.0
    p2 = ranks[ranks.prompt_id == "p2"].set_index("checkpoint")
    assert p2.loc["early", "rank"] == 1 and p2.loc["late", "score"] == 26.0  # the blink row is not alignment
    assert rank_checkpoints(df, higher_is_better=False).set_index(["prompt_id", "checkpoint"]).loc[("p1", "early"), "rank"] == 1


def test_run_reads_prompts_jsonl_and_skips_unprompted_videos(model_dir, small_root, monkeypatch):
    """Through the runner: prompts come from ROOT/prompts.jsonl; a video whose id has no prompt is
    reported as skipped for this detector, not as an error."""
    from evalkit.batch import run_root

    monkeypatch.setenv(MODEL_ENV, str(model_dir))
    shutil.copy(small_root / "ckpt_a" / "talk.mp4", small_root / "ckpt_a" / "unlisted.mp4")
    summary = run_root(small_root, detectors=["alignment"], workers=0, write_report=False,
                       decode=__import__("evalkit").DecodeOptions(max_side=64, max_frames=24))
    # unlisted.mp4 is the same file as ckpt_a/talk.mp4 but has no prompt: a result of its own
    assert not summary.errors and summary.computed == 5
    df = __import__("evalkit").load_results(small_root, detector="alignment")
    unlisted = df[df["prompt_id"] == "unlisted"].iloc[0]
    assert np.isnan(unlisted["score"]) and unlisted["stats"]["skipped"] == "no prompt" and not unlisted["flagged"]
    scored = df[df["prompt_id"] != "unlisted"]
    assert scored["score"].notna().all() and len(scored) == 4

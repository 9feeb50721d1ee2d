"""``device="cuda"`` (``evalkit run --device cuda``) gives the CPU's results: the batched tensor
detectors and the alignment scorer, on the same inputs. Skipped where no CUDA device is visible
(CI and this project's machines); run on a GPU machine with ``pytest tests/test_cuda.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit import Video, VideoInputs, get_detector

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")


def _clip(seed: int, t: int, h: int = 96, w: int = 128) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a smooth texture panning 1 px/frame, a square moving 3 px/frame
    over it, and one-frame bright and dark specks on the square from frame 4."""
    rng = np.random.default_rng(seed)
    big = rng.random((h + 8 * t, w + 8 * t, 3)) * 0.6 + 0.2
    for axis in (0, 1):  # a 3-tap box blur each way: texture, not noise
        big = (np.roll(big, 1, axis) + big + np.roll(big, -1, axis)) / 3
    frames = []
    for k in range(t):
        f = big[10 : 10 + h, k : k + w].copy()
        side = h // 3
        f[side : 2 * side, 3 * k : 3 * k + side] = big[:side, :side]
        if k >= 4:
            ys, xs = side + rng.integers(0, side, 12), 3 * k + rng.integers(0, side, 12)
            f[ys, xs] = rng.choice([0.0, 1.0], (12, 1))
        frames.append(f)
    return (np.clip(np.stack(frames), 0, 1) * 255).round().astype(np.uint8)


def _inputs(frames: np.ndarray, fps: float, prompt: str | None = None, name: str = "clip") -> VideoInputs:
    t, h, w, _ = frames.shape
    video = Video(f"{name}.mp4", torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), fps, np.arange(t), (w, h), fps, name)
    return VideoInputs(video=video, prompt=prompt)


def _same(cpu, gpu) -> None:
    assert cpu.is_skipped == gpu.is_skipped
    assert gpu.score == pytest.approx(cpu.score, rel=1e-3, abs=1e-4)
    np.testing.assert_allclose(gpu.series, cpu.series, rtol=1e-3, atol=1e-4, equal_nan=True)
    if abs(cpu.score - 1.0) > 1e-2:  # not at the threshold, where rounding may tip it
        assert gpu.flagged == cpu.flagged


@pytest.mark.parametrize("name", ["confetti", "framediff", "temporal_flickering"])
def test_tensor_detectors_on_cuda_match_cpu(name):
    inputs = [_inputs(_clip(0, 16), 24.0, name="a"), _inputs(_clip(1, 11, 80, 112), 12.0, name="b")]
    cpu = get_detector(name, device="cpu").score_batch(inputs)
    gpu = get_detector(name, device="cuda").score_batch(inputs)
    assert len(cpu) == len(gpu) == 2
    for c, g in zip(cpu, gpu):
        _same(c, g)
    assert any(np.isfinite(r.series).any() for r in cpu)  # something was computed


def test_alignment_on_cuda_matches_cpu(tmp_path):
    pytest.importorskip("transformers")
    from tests.test_alignment import _write_tiny_clip

    path = tmp_path / "openai-tiny-clip"
    _write_tiny_clip(path)
    inputs = [_inputs(_clip(2, 12, 48, 80), 4.0, "the cat and the dog", "c"), _inputs(_clip(3, 9, 40, 64), 4.0, "a red dog", "d")]
    cpu = get_detector("alignment", device="cpu", model=str(path)).score_batch(inputs)
    gpu = get_detector("alignment", device="cuda", model=str(path)).score_batch(inputs)
    for c, g in zip(cpu, gpu):
        assert not c.is_skipped and not g.is_skipped
        assert g.score == pytest.approx(c.score, rel=1e-3, abs=1e-4)

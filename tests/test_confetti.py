"""Confetti detector: targets on a held-out labelled set of real clips, agreement with a slow
per-frame reference implementation, batch invariance, normalisation and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evalkit import get_detector
from evalkit.datasets.confetti import demo_clips, inject_sparkle, labelled_set, source_segment
from evalkit.datasets.confetti_eval import clip_inputs, confetti_report, flicker_report, run_confetti, run_flicker, FlickerThresholds
from evalkit.detectors.confetti import BLOCK, ConfettiDetector, confetti_maps, confetti_score
from evalkit.detectors.temporal_flickering import temporal_flickering
from evalkit.errors import ShapeError

torch.set_num_threads(min(2, torch.get_num_threads()))


# ---------------------------------------------------------------- labelled set (held out)


@pytest.fixture(scope="module")
def small_set():
    clips = labelled_set("test")
    return clips, run_confetti(clips)


def test_targets_on_held_out_labelled_set(small_set):
    clips, results = small_set
    assert sum(c.positive for c in clips) >= 6 and sum(not c.positive for c in clips) >= 8
    report = confetti_report(clips, results)
    assert report.auc >= 0.95, report
    assert report.fpr <= 0.05, report.fpr_by_kind
    assert report.bursts_localised >= 0.90, report


def test_results_follow_the_contract(small_set):
    clips, results = small_set
    for clip, result in zip(clips, results):
        t = len(clip.frames)
        assert result.series.shape == (t,) and result.series.dtype == np.float32
        assert np.isnan(result.series[0]) and np.isnan(result.series[-1])
        assert result.maps is not None and result.maps.dtype == np.float16 and result.maps.shape[0] == t
        assert 0.0 <= result.stats["moving_area_affected"] <= 1.0
        assert all(0 <= e.start <= e.end < t for e in result.events)
        # the score is the mean of the worst frames: never above the series' maximum
        assert result.score <= np.nanmax(result.series) + 1e-6


def test_baseline_misses_what_confetti_finds(small_set):
    clips, results = small_set
    tune = labelled_set("tune", per_source=2, max_frames=16)
    thresholds = FlickerThresholds.from_negatives(tune, run_flicker(tune))
    baseline = flicker_report(clips, run_flicker(clips), thresholds)
    ours = confetti_report(clips, results)
    assert ours.auc > baseline.auc


# ---------------------------------------------------------------- slow reference


def _pool2(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean((1, 3))


def _ref_search(ref, tgt, block, init, radius, scale, bias):
    """One level of block matching, block by block, candidate by candidate."""
    hb, wb = ref.shape[0] // block, ref.shape[1] // block
    h, w = tgt.shape
    steps = sorted(((a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)), key=lambda d: (d[0] ** 2 + d[1] ** 2, d))
    vec = np.zeros((hb, wb, 2))
    cost = np.zeros((hb, wb))
    ys0, xs0 = np.mgrid[0:block, 0:block]
    for i in range(hb):
        for j in range(wb):
            r = ref[i * block : (i + 1) * block, j * block : (j + 1) * block]
            best = (math.inf, None, None)
            for dy, dx in steps:
                vy, vx = init[i, j, 0] + dy, init[i, j, 1] + dx
                c = tgt[np.clip(ys0 + i * block + int(vy), 0, h - 1), np.clip(xs0 + j * block + int(vx), 0, w - 1)]
                sad = float(np.abs(r - c).mean())
                total = sad + bias * scale * math.hypot(vy, vx)
                if total < best[0]:
                    best = (total, (vy, vx), sad)
            vec[i, j], cost[i, j] = best[1], best[2]
    return vec, cost


def _ref_direction(ref, tgt, radius, bias=0.004):
    h, w = ref.shape
    r1, t1 = _pool2(ref), _pool2(tgt)
    r2, t2 = _pool2(r1), _pool2(t1)
    v, _ = _ref_search(r2, t2, BLOCK // 2, np.zeros((h // 16, w // 16, 2)), max(1, -(-radius // 4)), 4, bias)
    v = v.repeat(2, 0).repeat(2, 1) * 2
    v, _ = _ref_search(r1, t1, BLOCK // 2, v, 1, 2, bias)
    v, cost = _ref_search(ref, tgt, BLOCK, v * 2, 1, 1, bias)
    pad = np.pad(tgt, 1, mode="edge")
    win = np.stack([pad[a : a + h, b : b + w] for a in range(3) for b in range(3)])
    hi, lo = win.max(0), win.min(0)
    hb, wb = h // BLOCK, w // BLOCK
    residual = np.full((h, w), np.inf)
    for i in range(hb):
        for j in range(wb):
            ys, xs = np.mgrid[i * BLOCK : (i + 1) * BLOCK, j * BLOCK : (j + 1) * BLOCK]
            for oi, oj in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
                vy, vx = v[min(max(i + oi, 0), hb - 1), min(max(j + oj, 0), wb - 1)].astype(int)
                yy, xx = np.clip(ys + vy, 0, h - 1), np.clip(xs + vx, 0, w - 1)
                r = ref[ys, xs]
                e = np.maximum(r - hi[yy, xx], 0) + np.maximum(lo[yy, xx] - r, 0)
                residual[ys, xs] = np.minimum(residual[ys, xs], e)
    flat = np.sort(cost.ravel())
    noise = flat[(len(flat) - 1) // 2] * math.sqrt(math.pi) / 2  # torch.median: the lower middle
    return residual, np.hypot(v[..., 0], v[..., 1]), noise


def _ref_opening(x, kh, kw):
    def run(x, k, axis, op):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (k // 2, k // 2)
        p = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        return op([np.take(p, range(o, o + n), axis=axis) for o in range(k)], axis=0)

    axis, k = (1, kw) if kh == 1 else (0, kh)
    return run(run(x, k, axis, np.min), k, axis, np.max)


def reference_spots(luma: np.ndarray, fps: float, short: int, max_speed=1.0, min_speed=0.05, min_contrast=0.1, noise_factor=5.0, max_spot_size=0.025):
    """Per-frame Python loop over ``(T, h, w)`` luma already on the working grid."""
    t_len, h, w = luma.shape
    radius = max(2, math.ceil(max_speed * short / fps))
    k = max(3, int(round(max_spot_size * short))) | 1
    spots = np.zeros(luma.shape, bool)
    excess_all = np.zeros(luma.shape)
    for t in range(1, t_len - 1):
        e_next, s_next, n_next = _ref_direction(luma[t], luma[t + 1], radius)
        e_prev, s_prev, n_prev = _ref_direction(luma[t], luma[t - 1], radius)
        incoherent = np.minimum(e_next, e_prev)
        fast = np.maximum(s_next, s_prev) * fps / short > min_speed
        fast = np.pad(fast, 1, mode="edge")
        moving_blocks = np.stack([fast[a : a + h // BLOCK, b : b + w // BLOCK] for a in range(3) for b in range(3)]).any(0)
        moving = moving_blocks.repeat(BLOCK, 0).repeat(BLOCK, 1)
        floor = max(min_contrast, noise_factor * max(n_next, n_prev))
        excess = incoherent - np.maximum(_ref_opening(incoherent, 1, k), _ref_opening(incoherent, k, 1))
        spots[t] = (excess > floor) & moving
        excess_all[t] = excess
    return spots, excess_all


def _synthetic_scene(t_len=5, h=64, w=96, seed=0):
    """Smooth random texture, a square moving 3 px/frame over a background moving 1 px/frame,
    and a few one-frame specks on the square."""
    rng = np.random.default_rng(seed)
    big = rng.random((h + 64, w + 64))
    kernel = np.ones(3) / 3
    big = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, big)
    big = np.apply_along_axis(lambda c: np.convolve(c, kernel, "same"), 0, big)
    frames = []
    for t in range(t_len):
        f = big[20 : 20 + h, 20 + t : 20 + t + w].copy()
        f[16:48, 20 + 3 * t : 52 + 3 * t] = big[:32, :32]
        if t == 2:
            f[30, 30 + 3 * t] = f[25, 40 + 3 * t] = 1.0
            f[40, 28 + 3 * t] = 0.0
        frames.append(f)
    return np.stack(frames).astype(np.float32)


def test_matches_slow_per_frame_reference():
    luma = _synthetic_scene()
    frames = torch.from_numpy(luma)[None, :, None].expand(-1, -1, 3, -1, -1).contiguous()  # grey RGB
    maps = confetti_maps(frames, 25.0, work_short_side=64)
    ref_spots, ref_excess = reference_spots(luma, 25.0, 64)
    np.testing.assert_allclose(maps.excess[0].numpy(), ref_excess, atol=1e-4)
    assert np.array_equal(maps.spots[0].numpy(), ref_spots)
    assert ref_spots[2].sum() >= 3  # the specks are found, and nothing else is
    assert ref_spots[[1, 3]].sum() == 0


# ---------------------------------------------------------------- batching, normalisation, errors


@pytest.fixture(scope="module")
def two_clips():
    a, fps = source_segment("bikes.mp4", 256, 40, 9)
    b, _ = source_segment("bikes.mp4", 256, 150, 7)
    rng = np.random.default_rng(5)
    from evalkit.datasets.confetti import motion_masks

    b = inject_sparkle(b, motion_masks(b, fps), [(2, 5)], 0.02, rng)
    return a, b, fps


def _inputs(frames, fps):
    from evalkit.datasets.confetti import LabelledClip

    return clip_inputs(LabelledClip("x", frames, fps, False, "clean"))


def test_batch_invariance(two_clips):
    a, b, fps = two_clips
    small = {"work_short_side": 96, "threshold": 0.5}  # the mechanics, cheaply
    together = ConfettiDetector(chunk=5, **small).score_batch([_inputs(a, fps), _inputs(b, fps)])
    alone = [ConfettiDetector(**small).score(_inputs(a, fps)), ConfettiDetector(**small).score(_inputs(b, fps))]
    for x, y in zip(together, alone):
        assert x.score == pytest.approx(y.score, abs=1e-6)
        np.testing.assert_allclose(x.series, y.series, atol=1e-6)
        assert x.events == y.events
    assert together[1].score > together[0].score


def test_functional_form_matches_detector(two_clips):
    _, b, fps = two_clips
    frames = torch.from_numpy(b).permute(0, 3, 1, 2).float().div(255)[None]
    score = confetti_score(frames, fps, work_short_side=96)
    assert score.shape == (1,) and float(score[0]) > 0
    assert float(score[0]) == pytest.approx(ConfettiDetector(work_short_side=96).score(_inputs(b, fps)).score, rel=1e-5)


def test_score_is_normalised_for_resolution_and_fps():
    frames, fps = source_segment("bikes.mp4", 512, 100, 13)
    from evalkit.datasets.confetti import motion_masks

    sparkled = inject_sparkle(frames, motion_masks(frames, fps), [(1, 11)], 0.015, np.random.default_rng(2))
    import cv2

    small = np.stack([cv2.resize(f, (256, 108), interpolation=cv2.INTER_AREA) for f in sparkled])
    det = ConfettiDetector()
    full = det.score(_inputs(sparkled, fps)).score
    half_size = det.score(_inputs(small, fps)).score
    half_rate = det.score(_inputs(sparkled[::2], fps / 2)).score
    assert full > det.config["threshold"]
    assert 0.5 < half_size / full < 2.0
    assert 0.5 < half_rate / full < 2.0


def test_demo_clips_follow_severity():
    clean = demo_clips(0.0, np.random.default_rng(0))
    worst = demo_clips(1.0, np.random.default_rng(0))
    assert all(not c.truth["bursts"] for c in clean) and all(c.truth["bursts"] for c in worst)
    assert all(c.truth["density"] == 0 for c in clean) and all(c.truth["density"] > 0.02 for c in worst)
    assert all(c.frames.shape[0] / c.fps <= 6 and max(c.frames.shape[1:3]) <= 360 for c in worst)
    clip = worst[0]
    start, end = clip.truth["bursts"][0]
    window = slice(max(0, start - 3), min(len(clip.frames), end + 4))
    result = ConfettiDetector().score(_inputs(clip.frames[window], clip.fps))
    clean_result = ConfettiDetector().score(_inputs(clean[0].frames[window], clip.fps))
    assert result.flagged and not clean_result.flagged


def test_bad_input_and_short_videos():
    with pytest.raises(ShapeError, match="expected shape"):
        confetti_maps(torch.zeros(2, 5, 1, 32, 32), 25.0)
    with pytest.raises(ShapeError):
        confetti_maps(torch.zeros(1, 2, 3, 32, 32), 25.0)
    result = ConfettiDetector().score(_inputs(np.zeros((2, 32, 32, 3), np.uint8), 25.0))
    assert result.is_skipped and math.isnan(result.score)


def test_static_scene_scores_zero():
    still = np.repeat(source_segment("bikes.mp4", 256, 10, 1)[0], 5, axis=0)
    assert ConfettiDetector().score(_inputs(still, 25.0)).score == 0.0


def test_registry_and_baseline_formula():
    assert isinstance(get_detector("confetti"), ConfettiDetector)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.random((2, 4, 3, 8, 8)).astype(np.float32))
    expected = 1 - np.mean([np.abs(frames[:, t + 1].numpy() - frames[:, t].numpy()).mean((1, 2, 3)) for t in range(3)], axis=0)
    np.testing.assert_allclose(temporal_flickering(frames).numpy(), expected, rtol=1e-5)
    assert get_detector("temporal_flickering").higher_is_worse is False

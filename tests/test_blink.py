"""The blink detector: real blinks on real footage, the missing-blink flag on long clips, low
frame rates, several faces, and its statistics against slow reference formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import nbinom

from evalkit._types import FaceTrack
from evalkit.datasets import faces
from evalkit.datasets.face_eval import blink_matches, inputs_for, real_blink_counts
from evalkit.datasets.faces import real_blink_labels
from evalkit.datasets.footage import load_clip
from evalkit.detectors.blink import (
    BlinkConfig,
    BlinkDetector,
    blink_analysis,
    detection_probability,
    find_blinks,
    pooled_blink_rate,
    prob_at_most,
    rate_interval,
    seconds_to_judge,
)
from evalkit.errors import DetectorConfigError, ShapeError
from evalkit.registry import get_detector

TRUTH = list(faces.CARPHONE_BLINKS)


@pytest.fixture(scope="module")
def carphone():
    """carphone_pristine and its blink-free copy with their face meshes (computed once)."""
    frames, fps, _ = faces.carphone()
    free = faces.remove_blinks(frames)
    return {
        "frames": frames,
        "free": free,
        "fps": fps,
        "track": faces.cached_face_track(frames, "carphone"),
        "free_track": faces.cached_face_track(free, "carphone_blink_free"),
    }


def _score(frames, fps, landmarks, size=(176, 144), **config):
    return BlinkDetector(**config).score(inputs_for(frames, fps, FaceTrack(landmarks, size), "clip"))


@pytest.mark.slow
def test_finds_exactly_the_two_real_blinks(carphone):
    result = _score(carphone["frames"], carphone["fps"], carphone["track"].landmarks)
    assert result.stats["blink_count"] == 2
    assert blink_matches(result.events, TRUTH) == (2, 0, 0)
    assert all(80 <= d <= 900 for d in result.stats["blink_durations_ms"])
    assert result.stats["verdict"] == "too short to judge" and not result.flagged
    assert result.series.shape == (120,) and np.nanmin(result.series) < 0.6
    json.dumps(result.to_record())


@pytest.mark.slow
def test_blink_free_copy_has_no_blink_and_is_too_short_to_flag(carphone):
    result = _score(carphone["free"], carphone["fps"], carphone["free_track"].landmarks)
    assert result.stats["blink_count"] == 0
    assert not result.flagged and result.stats["judged"] is False


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [16, 24])
def test_missing_blink_flag_on_long_loops(carphone, seconds):
    fps = carphone["fps"]
    n = int(np.ceil(seconds * fps))
    source = faces.ping_pong_frames(carphone["frames"], n)
    real = _score(carphone["frames"][source], fps, carphone["track"].landmarks[source])
    free = _score(carphone["free"][source], fps, carphone["free_track"].landmarks[source])
    passes = faces.blink_passes(source)
    assert real.stats["blink_count"] == len(passes) and blink_matches(real.events, passes)[2] == 0
    assert not real.flagged and real.stats["verdict"] == "normal"
    assert free.flagged and free.stats["verdict"] == "missing blinks" and free.stats["blink_count"] == 0
    stretch = [e for e in free.events if e.kind == "blink_free"]
    assert len(stretch) == 1 and stretch[0].end - stretch[0].start + 1 >= 0.9 * n


@pytest.mark.slow
def test_low_fps_finds_sampled_blinks_and_no_false_ones(carphone):
    landmarks, fps = carphone["track"].landmarks, carphone["fps"]
    for phase in range(3):  # 10 fps, every phase
        keep = np.arange(phase, len(landmarks), 3)
        result = _score(carphone["frames"][keep], fps / 3, landmarks[keep])
        events = [type(e)(int(keep[e.start]), int(keep[e.end]), e.kind, e.score) for e in result.events]
        caught, _, false = blink_matches(events, TRUTH)
        assert false == 0
        if phase == 0:  # frames 42 and 93 (the closed eye) are kept
            assert caught == 2
    # At 10 fps half the blinks can fall between frames: judging needs about twice the time.
    assert result.stats["seconds_to_judge"] == pytest.approx(seconds_to_judge(0.05, 10.0, 1.7 * detection_probability(fps / 3)))
    assert result.stats["seconds_to_judge"] > 1.8 * seconds_to_judge()


@pytest.mark.slow
def test_two_faces_and_a_face_leaving(carphone):
    frames, fps = carphone["frames"], carphone["fps"]
    one = carphone["track"].landmarks[:, :1]
    shifted = one.copy()
    shifted[..., 0] += 0.3  # a second copy of the face beside the first
    both = _score(frames, fps, np.concatenate([one, shifted], axis=1))
    assert both.stats["num_faces"] == 2 and both.stats["blink_count"] == 4
    assert both.stats["face_seconds"] == pytest.approx(2 * len(frames) / fps)
    leaving = one.copy()
    leaving[60:85] = np.nan  # the face leaves the frame for 25 frames
    result = _score(frames, fps, leaving)
    assert result.stats["blink_count"] == 2
    assert result.stats["face_seconds"] == pytest.approx((len(frames) - 25) / fps)
    assert np.isnan(result.series[60:85]).all()


@pytest.fixture(scope="module")
def real_clips():
    """The hand-labelled real clips at <= 360 px with their face tracks (meshes cached):
    ``{file: (frames, fps, FaceTrack)}``."""
    out = {}
    for who, file in (("single_face", "single_face.mp4"), ("woman", "WolfgangLanger_Pexels.mp4")):
        frames, fps, _ = faces.real_face(who)
        out[file] = (frames, fps, faces.cached_face_track(frames, f"{who}_{faces.REAL_MAX_SIDE}"))
    frames, fps = load_clip("face_noface.mov", max_side=faces.REAL_MAX_SIDE)
    out["face_noface.mov"] = (frames, fps, faces.cached_face_track(frames, f"face_noface_{faces.REAL_MAX_SIDE}"))
    return out


def _score_real(real_clips, name):
    frames, fps, track = real_clips[name]
    return BlinkDetector().score(inputs_for(frames, fps, track, name))


@pytest.mark.slow
def test_real_man_blinks_once_and_his_face_leaves(real_clips):
    labels = real_blink_labels()
    for name in ("single_face.mp4", "face_noface.mov"):
        result = _score_real(real_clips, name)
        assert real_blink_counts(result, labels[name]) == (1, 0, 0) and result.stats["blink_count"] == 1, name
        assert not result.flagged and result.stats["verdict"] == "too short to judge"
    # face_noface: the face leaves after frame 71 (an animated title follows): not seen, not judged.
    frames, fps, _ = real_clips["face_noface.mov"]
    assert result.stats["face_seconds"] == pytest.approx(72 / fps, abs=1.5 / fps)
    assert np.isnan(result.series[73:]).all() and len(frames) == 169


@pytest.mark.slow
def test_real_woman_crying_and_laughing(real_clips):
    """Eyes shut for seconds while crying (a hand over one eye) and while laughing are not
    blinks and not judged; her real blinks are found (one quick half-closure at 24 fps is
    missed: its most closed frame reaches 0.64 of her open eye, above ``closed_ratio``)."""
    label = real_blink_labels()["WolfgangLanger_Pexels.mp4"]
    result = _score_real(real_clips, "WolfgangLanger_Pexels.mp4")
    caught, missed, false = real_blink_counts(result, label)
    assert false == 0 and caught >= 4 and result.stats["blink_count"] <= len(label["blinks"])
    closures = [e for e in result.events if e.kind == "long_closure"]
    for start, end in label["eyes_shut"]:
        assert any(e.start <= start + 20 and e.end >= end - 3 for e in closures), (start, end)
    assert result.stats["eyes_shut_seconds"] >= 6.0
    assert result.stats["face_seconds"] == pytest.approx(472 / 23.976 - result.stats["eyes_shut_seconds"], abs=0.1)
    assert result.stats["judged"] and not result.flagged and result.stats["verdict"] == "normal"


def test_eyes_kept_shut_are_not_judged(carphone):
    """Carphone's closed-eye frame held for 40 frames (1.3 s): a long closure, no blink, and
    those frames leave the face time."""
    landmarks, fps = carphone["track"].landmarks.copy(), carphone["fps"]
    landmarks[60:100] = landmarks[42]
    result = _score(carphone["frames"], fps, landmarks)
    shut = [e for e in result.events if e.kind == "long_closure"]
    assert len(shut) == 1 and shut[0].start <= 60 and shut[0].end >= 99
    assert not any(e.kind == "blink" and e.end >= 60 for e in result.events)
    assert result.stats["eyes_shut_seconds"] >= 40 / fps
    kept = _score(carphone["frames"], fps, landmarks, shut_ratio=None)
    assert kept.stats["face_seconds"] - result.stats["face_seconds"] == pytest.approx(result.stats["eyes_shut_seconds"])


def test_no_face_is_skipped():
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    result = _score(frames, 25.0, np.full((10, 2, 478, 3), np.nan, np.float32), size=(32, 32))
    assert result.is_skipped and math.isnan(result.score) and not result.flagged
    assert BlinkDetector().score(inputs_for(frames, 25.0, None, "x")).is_skipped


def test_bad_landmark_shape_names_the_file():
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ShapeError, match="clip face"):
        _score(frames, 25.0, np.zeros((4, 478, 3), np.float32), size=(32, 32))


def test_find_blinks_windows_scale_with_fps():
    open_eye = np.ones(40, np.float32)
    one_frame = open_eye.copy()
    one_frame[20] = 0.3  # at 8 fps a blink may be a single frame
    assert [b[:2] for b in find_blinks(one_frame, 8.0)[0]] == [(20, 20)]
    assert find_blinks(one_frame, 30.0)[0] == []  # one frame at 30 fps is under 80 ms
    long_closure = open_eye.copy()
    long_closure[10:25] = 0.1  # 15 frames at 8 fps: 1.9 s
    blinks, closures = find_blinks(long_closure, 8.0)
    assert blinks == [] and [c[:2] for c in closures] == [(10, 24)]
    shallow = open_eye.copy()
    shallow[20:22] = 0.7
    assert find_blinks(shallow, 30.0) == ([], [])
    at_edge = open_eye.copy()
    at_edge[-2:] = 0.2  # never seen reopening
    assert find_blinks(at_edge, 30.0) == ([], [])
    unseen = one_frame.copy()
    unseen[19] = np.nan  # the face was not seen just before
    assert find_blinks(unseen, 8.0) == ([], [])


@pytest.mark.parametrize("count,seconds", [(0, 5.0), (0, 20.0), (1, 20.0), (4, 60.0), (12, 30.0)])
def test_probability_matches_negative_binomial(count, seconds):
    # gamma(shape 10, scale 1.7/min) rates, Poisson counts: NB(n=10, p=1/(1+scale*minutes))
    p = 1.0 / (1.0 + 1.7 * seconds / 60.0)
    assert prob_at_most(count, seconds) == pytest.approx(nbinom.cdf(count, 10, p), rel=1e-9)


def test_time_to_judge_is_where_zero_blinks_become_improbable():
    t = seconds_to_judge(0.05)
    assert 12.0 < t < 12.6
    assert prob_at_most(0, t) == pytest.approx(0.05)


def test_rate_interval_matches_garwood_table():
    low, high = rate_interval(0, 60.0)
    assert low == 0.0 and high == pytest.approx(3.689, abs=1e-3)
    low, high = rate_interval(10, 60.0)
    assert (low, high) == pytest.approx((4.795, 18.390), abs=1e-3)


def test_pooled_rate_over_clips():
    clip = {"blink_count": 5, "face_seconds": 20.0, "detection_probability": 1.0}
    pooled = pooled_blink_rate([clip] * 6 + [{"skipped": "no frontal face"}])
    assert pooled["clips"] == 7 and pooled["clips_with_face"] == 6
    assert pooled["blinks_per_minute"] == pytest.approx(15.0)
    assert pooled["ci"][0] < 15.0 < pooled["ci"][1] and pooled["verdict"] == "consistent with human range"
    none = pooled_blink_rate([{"blink_count": 0, "face_seconds": 30.0}] * 6)
    assert none["blinks_per_minute"] == 0.0 and none["verdict"] == "below human range"
    # At 10 fps half the blinks are missed: the same count over half the effective time.
    low_fps = pooled_blink_rate([{**clip, "detection_probability": 0.5}] * 6)
    assert low_fps["blinks_per_minute"] == pytest.approx(30.0)
    assert pooled_blink_rate([])["verdict"] == "no face"


def test_pooled_rate_widens_for_uneven_clips():
    even = pooled_blink_rate([{"blink_count": 5, "face_seconds": 20.0}] * 4)
    uneven = pooled_blink_rate([{"blink_count": c, "face_seconds": 20.0} for c in (0, 0, 0, 20)])
    assert uneven["blinks_per_minute"] == even["blinks_per_minute"]
    assert uneven["dispersion"] > 1.0 and uneven["ci"][1] - uneven["ci"][0] > even["ci"][1] - even["ci"][0]


def test_functional_options_are_the_detector_config():
    """find_blinks / blink_analysis take BlinkConfig or keyword overrides of it, and reject a misspelt one."""
    dip = np.ones(40, np.float32)
    dip[20] = 0.65
    assert find_blinks(dip, 8.0) == ([], [])  # not below closed_ratio 0.6
    assert find_blinks(dip, 8.0, closed_ratio=0.7)[0] == find_blinks(dip, 8.0, BlinkConfig(closed_ratio=0.7))[0] == [(20, 20, pytest.approx(0.35))]
    with pytest.raises(DetectorConfigError, match="closed_ration.*Did you mean 'closed_ratio'"):
        find_blinks(dip, 8.0, closed_ration=0.7)
    with pytest.raises(DetectorConfigError, match="baseline.*Did you mean 'baseline_s'"):
        blink_analysis(np.full((4, 1, 478, 3), np.nan, np.float32), 8.0, baseline=2.0)


def test_registered_and_configurable():
    detector = get_detector("blink", closed_ratio=0.5)
    assert isinstance(detector, BlinkDetector) and detector.config["closed_ratio"] == 0.5
    assert detector.requires == frozenset({"face"})

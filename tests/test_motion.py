"""Motion detector: each check on synthetic pose tracks with known breaks (fast, no MediaPipe),
plus one lean run of MediaPipe pose over real footage and the dancing puppet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit import PoseTrack, Video, VideoInputs, get_detector
from evalkit.datasets.motion_eval import auc, localised
from evalkit.detectors.motion import MotionConfig, MotionDetector, judged_frames, motion_breakage, motion_checks, pose_jitter
from evalkit.errors import DetectorConfigError, ShapeError

W, H = 640, 480
# Rest pose of a frontal person, pixels: index -> (x, y)
_REST = {0: (320, 90), 11: (370, 150), 12: (270, 150), 13: (395, 225), 14: (245, 225), 15: (405, 295),
         16: (235, 295), 23: (350, 290), 24: (290, 290), 25: (355, 370), 26: (285, 370), 27: (358, 445),
         28: (282, 445)}
_NEAR = {**{i: 0 for i in range(1, 11)}, 17: 15, 19: 15, 21: 15, 18: 16, 20: 16, 22: 16, 29: 27, 31: 27, 30: 28, 32: 28}


def dancer(fps: float, seconds: float = 4.0, seed: int = 0, jitter_px: float = 1.0) -> np.ndarray:
    """``(T, 33, 4)`` normalised landmarks of a person swinging both arms, with pose-model jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(fps * seconds))) / fps
    pts = np.zeros((len(t), 33, 2))
    for i, p in _REST.items():
        pts[:, i] = p
    for side, (s, e, w) in {1: (11, 13, 15), -1: (12, 14, 16)}.items():
        angle = 0.6 * np.sin(2 * np.pi * 0.8 * t + (0 if side > 0 else 1.0))  # ~0.8 Hz arm swing
        for j in (e, w):
            d = pts[:, j] - pts[:, s]
            c, sn = np.cos(side * angle), np.sin(side * angle)
            pts[:, j] = pts[:, s] + np.stack([c * d[:, 0] - sn * d[:, 1], sn * d[:, 0] + c * d[:, 1]], -1)
    pts += np.array([20.0, 0.0]) * np.sin(2 * np.pi * 0.4 * t)[:, None, None]  # body sway
    for i, j in _NEAR.items():
        pts[:, i] = pts[:, j] + rng.normal(0, 4, 2)
    pts[:, 2], pts[:, 5] = pts[:, 0] + (12.0, -8.0), pts[:, 0] + (-12.0, -8.0)  # eyes: a head holds together
    pts += rng.normal(0, jitter_px, pts.shape)
    out = np.zeros((len(t), 33, 4), np.float32)
    out[..., 0], out[..., 1] = pts[..., 0] / W, pts[..., 1] / H
    out[..., 3] = 0.99
    return out


def _video(t: int, fps: float) -> Video:
    return Video(path="synthetic.mp4", frames=torch.zeros((t, 3, 2, 2), dtype=torch.uint8), fps=fps,
                 frame_indices=np.arange(t), source_size=(W, H), source_fps=fps, content_hash="x")


def run(lm: np.ndarray, fps: float, **config):
    return MotionDetector(**config).score(VideoInputs(video=_video(len(lm), fps), pose=PoseTrack(lm, (W, H))))


def _rotate_arm(lm: np.ndarray, shoulder: int, joints: list[int], frames: slice, angle) -> None:
    """Turn ``joints`` about the shoulder by ``angle`` (radians, scalar or per frame); lengths kept."""
    px = lm[frames, :, :2] * np.array([W, H])
    centre = px[:, shoulder : shoulder + 1]
    d = px[:, joints] - centre
    a = np.broadcast_to(np.asarray(angle, float), (len(d),))[:, None]
    rot = np.stack([np.cos(a) * d[..., 0] - np.sin(a) * d[..., 1], np.sin(a) * d[..., 0] + np.cos(a) * d[..., 1]], -1)
    lm[frames, joints, :2] = (centre + rot) / np.array([W, H])


def _found(result, kind: str, start: int, end: int) -> bool:
    return any(e.kind == kind and e.start <= end and e.end >= start for e in result.events)


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_clean_dance_is_not_flagged_at_any_fps(fps):
    r = run(dancer(fps, seed=int(fps)), fps)
    assert not r.flagged, (r.score, r.events)
    assert np.isfinite(r.series).mean() > 0.9 and r.stats["judged_frames"] == len(r.series)  # judged, not waved through
    assert r.series.shape == (int(round(4 * fps)),) and r.series.dtype == np.float32


def test_clean_scores_compare_across_fps():
    scores = [motion_breakage(dancer(f, seed=3), (W, H), f)[0] for f in (8.0, 12.0, 24.0, 30.0)]
    assert max(scores) - min(scores) < 0.4, scores


@pytest.mark.parametrize("fps", [12.0, 30.0])
def test_stretched_forearm(fps):
    lm = dancer(fps)
    a, b = int(1.5 * fps), int(2.5 * fps)
    forearm = lm[a:b, 15, :2] - lm[a:b, 13, :2]
    lm[a:b, [15, 17, 19, 21], :2] += 0.7 * forearm[:, None]  # 1.7x longer for a second
    r = run(lm, fps)
    assert r.flagged and _found(r, "stretch:left_forearm", a, b - 1), r.events
    assert "stretch" in r.stats["checks_fired"]


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_detached_forearm_snaps_and_stays(fps):
    """A pose model meeting a detached forearm reports the wrist elsewhere from one frame on
    (here: near the elbow, the long limb read as foreshortened), for as long as it lasts."""
    lm = dancer(fps)
    a, b = int(1.5 * fps), int(2.5 * fps)
    elbow = lm[a:b, 13, :2]
    lm[a:b, [15, 17, 19, 21], :2] = (elbow + 0.45 * (lm[a:b, 15, :2] - elbow))[:, None]
    r = run(lm, fps)
    assert r.flagged and _found(r, "jump:left_forearm", a - 1, a + 1), r.events


def test_gradual_foreshortening_is_not_a_jump():
    fps = 24.0
    lm = dancer(fps, jitter_px=0.5)
    t = np.arange(len(lm)) / fps
    share = 1.0 - 0.55 * np.clip(np.minimum(t - 1.0, 3.0 - t) / 0.6, 0, 1)  # turns to 45 % in 0.6 s, back
    for j in (15, 17, 19, 21):
        lm[:, j, :2] = lm[:, 13, :2] + share[:, None] * (lm[:, j, :2] - lm[:, 13, :2])
    checks = motion_checks(lm, (W, H), fps)
    assert np.nanmax(checks["jump"]["left_forearm"]) < 1.0, np.nanmax(checks["jump"]["left_forearm"])
    assert not run(lm, fps).flagged


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_stretch_the_model_spreads_over_both_bones(fps):
    """A pose model meeting one stretched bone often slides the elbow and spreads the stretch over
    both bones, each under ``stretch_ratio`` (1.3): here both grow 1.25x for a second. The arm
    as a whole is 1.25x its own length: ``stretch:left_arm``, at any frame rate."""
    lm = dancer(fps)
    a, b = int(1.5 * fps), int(2.5 * fps)
    shoulder = lm[a:b, 11:12, :2]
    lm[a:b, [13, 15, 17, 19, 21], :2] = shoulder + 1.25 * (lm[a:b, [13, 15, 17, 19, 21], :2] - shoulder)
    checks = motion_checks(lm, (W, H), fps)
    assert np.nanmax(checks["stretch"]["left_forearm"]) < 1.0 and np.nanmax(checks["stretch"]["left_upper_arm"]) < 1.0
    r = run(lm, fps)
    assert r.flagged and _found(r, "stretch:left_arm", a, b - 1), r.events
    assert not run(dancer(fps), fps).flagged


def test_elbow_sliding_along_the_arm_is_not_a_stretch():
    """The elbow is the pose model's least sure joint: sliding it lengthens one bone and
    shortens the other; the arm as a whole keeps its length."""
    fps = 24.0
    lm = dancer(fps)
    a, b = 40, 70
    s_, w_ = lm[a:b, 11, :2], lm[a:b, 15, :2]
    lm[a:b, 13, :2] = s_ + 0.8 * (w_ - s_)  # the elbow most of the way to the wrist
    checks = motion_checks(lm, (W, H), fps)
    assert np.nanmax(checks["stretch"]["left_upper_arm"]) < 1.0
    assert np.nanmax(checks["stretch"]["left_arm"]) < 1.0
    # a step, too: the upper arm jumps to 1.5x and stays, but the arm as a whole does not
    assert np.nanmax(checks["jump"]["left_upper_arm"]) < 1.0, np.nanmax(checks["jump"]["left_upper_arm"])


def test_stretch_found_on_limbs_the_model_reads_short():
    """MediaPipe reads some bodies' forearms at ~0.5 shoulder widths (under the generous human
    mean of 0.7): the reference floor must not hide a 1.6x stretch of such a forearm."""
    fps = 24.0
    lm = dancer(fps, jitter_px=0.5)
    elbow = lm[:, 13:14, :2].copy()
    lm[:, [15, 17, 19, 21], :2] = elbow + 0.7 * (lm[:, [15, 17, 19, 21], :2] - elbow)  # read short all along
    a, b = 36, 60
    lm[a:b, [15, 17, 19, 21], :2] = elbow[a:b] + 1.6 * (lm[a:b, [15, 17, 19, 21], :2] - elbow[a:b])
    r = run(lm, fps)
    assert _found(r, "stretch:left_forearm", a, b - 1), r.events


def test_single_frame_stretch_is_pose_jitter_not_breakage():
    lm = dancer(24.0)
    lm[50, [15, 17, 19, 21], :2] += 0.7 * (lm[50, 15, :2] - lm[50, 13, :2])
    assert not run(lm, 24.0).flagged


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_teleported_arm_jumps_and_stays(fps):
    lm = dancer(fps)
    a = int(2 * fps)
    _rotate_arm(lm, 12, [14, 16, 18, 20, 22], slice(a, None), 1.6)  # the arm jumps up, and stays
    r = run(lm, fps)
    assert r.flagged and (_found(r, "teleport:right_wrist", a - 2, a + 2) or _found(r, "teleport:right_elbow", a - 2, a + 2)), r.events


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_fast_smooth_swing_is_not_a_teleport(fps):
    """A wrist swung fast but smoothly (10 body sizes/s at its peak) moves more than the teleport
    step inside the windows: levels (medians) before and after a frame would read a jump, lines
    follow it."""
    from evalkit.detectors.motion import _jump

    lm = dancer(fps, seed=5)
    t = np.arange(len(lm)) / fps
    _rotate_arm(lm, 11, [13, 15, 17, 19, 21], slice(None), 0.9 * np.sin(2 * np.pi * 1.2 * t))
    wrist = lm[:, 15, :2] * np.array([W, H]) / 100.0  # body sizes (shoulder width 100 px)
    level_step, _ = _jump(wrist, max(3, int(round(0.3 * fps))))
    assert np.nanmax(level_step) > 0.6  # what a level-based test would have called a jump
    checks = motion_checks(lm, (W, H), fps)
    assert np.nanmax(checks["teleport"]["left_wrist"]) < 1.0
    r = run(lm, fps)
    assert not r.flagged, (r.score, r.events[:3])


def test_speed_beyond_human():
    fps = 30.0
    lm = dancer(fps)
    a = 60
    swing = np.r_[np.linspace(0, np.pi, 4), np.linspace(np.pi, 0, 4)]  # half a turn in 0.1 s and back
    _rotate_arm(lm, 11, [13, 15, 17, 19, 21], slice(a, a + 8), swing)
    r = run(lm, fps)
    assert _found(r, "speed:left_wrist", a, a + 8), r.events


def test_left_right_swap():
    fps = 24.0
    lm = dancer(fps)
    a, b = 40, 60
    left, right = [13, 15, 17, 19, 21], [14, 16, 18, 20, 22]
    lm[a:b, left + right] = lm[a:b, right + left].copy()
    r = run(lm, fps)
    assert _found(r, "swap:arms", a - 1, a + 1), r.events


def test_one_frame_label_flip_is_ignored():
    lm = dancer(24.0)
    left, right = [13, 15, 17, 19, 21], [14, 16, 18, 20, 22]
    lm[40, left + right] = lm[40, right + left].copy()  # MediaPipe's own glitch on real footage
    assert not run(lm, 24.0).flagged


_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(j, j + 1) for j in range(11, 33, 2)]


def _mirror_body(lm: np.ndarray, frames: slice, centre_x: float) -> None:
    """Mirror the whole body in the image about the vertical line at ``centre_x`` pixels, labels
    by image side (as a pose model labels a mirrored frontal body): a left/right swap."""
    lm[frames, :, 0] = (2 * centre_x - lm[frames, :, 0] * W) / W
    for a, b in _PAIRS:
        lm[frames, [a, b]] = lm[frames, [b, a]].copy()


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_mirrored_swap_of_a_tilted_asymmetric_dancer(fps):
    """The body mirrored for 0.8 s (one arm raised, shoulders tilted, the mirror line off the
    shoulders' midpoint, arms swinging): the exchange is found where it starts or ends."""
    lm = dancer(fps, seed=3)
    _rotate_arm(lm, 11, [13, 15, 17, 19, 21], slice(None), -0.9)  # left arm raised out
    px = lm[..., :2] * np.array([W, H])
    centre = np.array([320.0, 400.0])
    c, s = np.cos(0.07), np.sin(0.07)  # shoulders tilted 4 degrees
    d = px - centre
    lm[..., :2] = (centre + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)) / np.array([W, H])
    a, b = int(1.5 * fps), int(2.3 * fps)
    _mirror_body(lm, slice(a, b), 335.0)
    r = run(lm, fps)
    tol = max(1, int(round(0.1 * fps)))
    assert _found(r, "swap:arms", a - tol, a + tol) or _found(r, "swap:arms", b - tol, b + tol), r.events


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_short_label_flips_are_ignored(fps):
    """MediaPipe flips left and right for a frame or two on real footage (bikes.mp4): a run of
    flipped frames of a tenth of a second or less (one frame at 8 and 12 fps) is the model's."""
    left, right = [13, 15, 17, 19, 21], [14, 16, 18, 20, 22]
    n = max(1, int(0.1 * fps))
    for seed in range(3):
        lm = dancer(fps, seed=seed)
        a = int(1.5 * fps)
        lm[a : a + n, left + right] = lm[a : a + n, right + left].copy()
        r = run(lm, fps)
        assert not r.flagged, (fps, n, seed, r.score, r.events[:3])


def test_limb_dropout_while_body_visible():
    fps = 24.0
    lm = dancer(fps)
    a, b = 40, 52
    lm[a:b, [13, 15, 17, 19, 21], 3] = 0.05
    r = run(lm, fps)
    assert _found(r, "dropout:left_arm", a, b - 1), r.events
    lm1 = dancer(fps)
    lm1[a : a + 4, [13, 15, 17, 19, 21], 3] = 0.05  # a 0.17 s confidence dip: the model's, not a dropout
    assert not _found(run(lm1, fps), "dropout:left_arm", 0, len(lm1))
    lm2 = dancer(fps)
    lm2[a:, [13, 15, 17, 19, 21], 3] = 0.05  # leaves and never comes back: out of shot, not a dropout
    assert not _found(run(lm2, fps), "dropout:left_arm", a, len(lm2))


def test_elbow_folded_beyond_human_range():
    fps = 24.0
    lm = dancer(fps, jitter_px=0.3)
    a, b = 40, 56
    shoulder, elbow = lm[a:b, 11, :2], lm[a:b, 13, :2]
    lm[a:b, 15, :2] = elbow + 0.98 * (shoulder - elbow) + np.array([4.0 / W, 0])  # ~2 deg interior angle
    r = run(lm, fps)
    assert _found(r, "angle:left_elbow", a, b - 1), r.events


def test_shot_cut_is_not_a_teleport():
    fps = 24.0
    lm = dancer(fps)
    lm[48:, :, 0] -= 250.0 / W  # the whole person elsewhere: a new shot
    assert not run(lm, fps).flagged


def test_checks_cover_every_part_and_shape():
    lm = dancer(12.0)
    checks = motion_checks(lm, (W, H), 12.0)
    assert set(checks) == {"stretch", "jump", "speed", "accel", "teleport", "swap", "dropout", "angle", "cut"}
    assert not checks["cut"]  # no person mask, no cut check
    assert all(s.shape == (len(lm),) for parts in checks.values() for s in parts.values())
    with_mask = motion_checks(lm, (W, H), 12.0, limb_mask=_solid_limbs(len(lm)))
    assert set(with_mask["cut"]) == {"left_forearm", "right_forearm", "left_shin", "right_shin"} and all(s.shape == (len(lm),) for s in with_mask["cut"].values())
    with pytest.raises(ShapeError, match="limb_mask"):
        motion_checks(lm, (W, H), 12.0, limb_mask=_solid_limbs(len(lm) - 1))
    jitter = pose_jitter(lm, (W, H), 12.0)
    assert 0 < jitter["shoulders"] < 0.05


def test_functional_options_are_the_detector_config():
    """The functional forms take MotionConfig or keyword overrides of it, reject a misspelt one, and
    take the judged frames from a caller that has them (the detector computes them once per clip)."""
    lm = _broken_arm(12.0)
    by_keyword = motion_breakage(lm, (W, H), 12.0, max_speed=2.0)
    by_config = motion_breakage(lm, (W, H), 12.0, None, MotionConfig(max_speed=2.0))
    assert by_keyword[0] == by_config[0] != motion_breakage(lm, (W, H), 12.0)[0]
    judged, _ = judged_frames(lm, (W, H), 12.0)
    given = motion_checks(lm, (W, H), 12.0, judged=judged)
    for check, parts in motion_checks(lm, (W, H), 12.0).items():
        for part, sev in parts.items():
            np.testing.assert_array_equal(given[check][part], sev)
    with pytest.raises(ShapeError, match="judged"):
        motion_checks(lm, (W, H), 12.0, judged=judged[:-1])
    with pytest.raises(DetectorConfigError, match="jump_ration.*Did you mean 'jump_ratio'"):
        motion_checks(lm, (W, H), 12.0, jump_ration=1.2)
    with pytest.raises(DetectorConfigError, match="judge_window.*Did you mean 'judge_window_s'"):
        judged_frames(lm, (W, H), 12.0, judge_window=2.0)


def test_no_person_and_bad_shapes():
    lm = np.full((20, 33, 4), np.nan, np.float32)
    r = run(lm, 24.0)
    assert r.is_skipped and np.isnan(r.score) and r.series.shape == (20,)
    with pytest.raises(ShapeError, match="expected"):
        motion_checks(np.zeros((5, 17, 4)), (W, H), 24.0)
    with pytest.raises(ShapeError, match="synthetic.mp4"):
        MotionDetector().score(VideoInputs(video=_video(10, 24.0), pose=PoseTrack(dancer(24.0)[:5], (W, H))))


def _broken_arm(fps: float, **kw) -> np.ndarray:
    """A dancer whose left forearm is stretched 1.8x from 1.5 s on (flagged when judged)."""
    lm = dancer(fps, **kw)
    a = int(1.5 * fps)
    elbow = lm[a:, 13, :2].copy()
    lm[a:, [15, 17, 19, 21], :2] = elbow[:, None] + 1.8 * (lm[a:, [15, 17, 19, 21], :2] - elbow[:, None])
    return lm


def test_incoherent_skeleton_is_not_judged():
    """A skeleton put on a non-person (cartoon, door): head and shoulders rescale every frame. Its
    'breakage' is not judged; the stats say why."""
    fps = 24.0
    assert run(_broken_arm(fps), fps).flagged  # judged when credible
    lm = _broken_arm(fps)
    rng = np.random.default_rng(5)
    scale = np.exp(rng.normal(0, 0.3, len(lm)))[:, None]  # head and shoulders out of step, per frame
    nose, mid = lm[:, 0, :2], 0.5 * (lm[:, 11, :2] + lm[:, 12, :2])
    for j in (2, 5):
        lm[:, j, :2] = nose + scale * (lm[:, j, :2] - nose)
    for j in (11, 12):
        lm[:, j, :2] = mid + (lm[:, j, :2] - mid) / scale
    r = run(lm, fps)
    assert r.is_skipped and not r.flagged and r.stats["judged_frames"] == 0, r.stats
    assert r.stats["not_judged"]["incoherent"] > 0.9


def test_unsure_torso_is_not_judged():
    fps = 12.0
    lm = _broken_arm(fps)
    lm[:, [11, 12], 3] = 0.5  # the model is unsure of the shoulders all along
    r = run(lm, fps)
    assert r.is_skipped and not r.flagged and r.stats["not_judged"]["torso_unsure"] > 0.9, r.stats


def test_invented_leg_is_not_judged():
    """Legs the model invents under an upper-body subject: rarely visible, flickering. A flicker
    is no dropout; the same dropout on a leg seen all along is one."""
    fps = 24.0
    lm = dancer(fps)
    a, b = 40, 46
    lm[:, 25:33, 3] = np.where(np.arange(len(lm)) % 36 < 10, 0.9, 0.4)[:, None]  # seen 28 % of the time
    lm[a:b, 25:33:2, 3] = 0.05
    r = run(lm, fps)
    assert not any(e.kind.endswith("leg") or "knee" in e.kind or "ankle" in e.kind for e in r.events), r.events
    lm2 = dancer(fps)
    lm2[a:b, 25:33:2, 3] = 0.05
    assert _found(run(lm2, fps), "dropout:left_leg", a, b - 1)


def test_side_view_without_hips_keeps_the_body_size():
    """Turning sideways collapses the shoulder width; without hips in shot the head holds the
    body size, so the arms do not read as stretched."""
    fps = 24.0
    lm = dancer(fps, jitter_px=0.5)
    lm[:, 23:33, 3] = 0.1  # hips and legs out of shot
    t = np.arange(len(lm))
    turn = np.clip((t - 66) / 6, 0, 1)[:, None]  # over 0.25 s the shoulders close to 30 %
    mid = 0.5 * (lm[:, 11, :2] + lm[:, 12, :2])
    for side in (0, 1):  # each shoulder moves in, its arm with it
        shift = -0.7 * turn * (lm[:, 11 + side, :2] - mid)
        lm[:, [11 + side, 13 + side, 15 + side, 17 + side, 19 + side, 21 + side], :2] += shift[:, None]
    r = run(lm, fps)
    assert not any(e.kind.startswith("stretch") for e in r.events), r.events


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_person_nearing_the_camera_is_not_stretched(fps):
    """A dancer walks up to the camera until head and shoulders leave the top of the frame while
    the legs stay in: sizes are measured on both sides of a frame, not carried over from the
    frames before the shoulders left (the legs read 1.5-2x their length with a stale size)."""
    for grow, seconds in ((2.0, 0.5), (2.0, 1.0), (3.0, 1.0)):
        lm = dancer(fps)
        t = np.arange(len(lm)) / fps
        scale = grow ** np.clip((t - 1.0) / seconds, 0, 1)
        feet = np.array([320.0, 470.0])
        lm[..., :2] = (feet + (lm[..., :2] * np.array([W, H]) - feet) * scale[:, None, None]) / np.array([W, H])
        assert (lm[-1, [0, 11, 12], 1] < 0).all()  # the head and shoulders are out of shot at the end
        r = run(lm, fps)
        assert not r.flagged, (grow, seconds, r.score, r.events[:3])


def _turning(fps: float, arms: str, turns_per_s: float, seconds: float = 4.0) -> np.ndarray:
    """``(T, 33, 4)`` a person turning on the spot twice from 1 s on (orthographic, labels by
    anatomy, 1 px jitter); ``arms`` "out" (held out sideways), "down" or "mixed" (one of each)."""
    rng = np.random.default_rng(0)
    body = {0: (0, 90, 25), 11: (50, 150, 0), 12: (-50, 150, 0), 23: (30, 290, 0), 24: (-30, 290, 0),
            25: (35, 370, 0), 26: (-35, 370, 0), 27: (38, 445, 0), 28: (-38, 445, 0)}
    out_ = {13: (125, 150, 0), 14: (-125, 150, 0), 15: (195, 150, 0), 16: (-195, 150, 0)}
    down = {13: (60, 225, 0), 14: (-60, 225, 0), 15: (65, 295, 0), 16: (-65, 295, 0)}
    body.update({"out": out_, "down": down, "mixed": {13: out_[13], 15: out_[15], 14: down[14], 16: down[16]}}[arms])
    t = np.arange(int(round(fps * seconds))) / fps
    theta = 2 * np.pi * np.clip((t - 1.0) * turns_per_s, 0, 2.0)
    lm = np.zeros((len(t), 33, 4), np.float32)
    for i in range(33):
        x, y, z = body[_NEAR.get(i, i)]
        if i in (2, 5):  # eyes beside the nose
            x, y = x + (12 if i == 2 else -12), y - 8
        xr, zr = x * np.cos(theta) + z * np.sin(theta), -x * np.sin(theta) + z * np.cos(theta)
        lm[:, i, 0] = (320 + xr + rng.normal(0, 1, len(t))) / W
        lm[:, i, 1] = (y + rng.normal(0, 1, len(t))) / H
        lm[:, i, 2] = -zr / W
        lm[:, i, 3] = np.where((zr < -10) & (np.abs(xr) < 45), 0.5, 0.99)  # behind the torso: unsure
    return lm


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_turning_on_the_spot_is_not_breakage(fps):
    """Two turns (a pirouette) at 1 and 2 turns/s: the limbs foreshorten, the shoulders close
    and reopen and left and right pass behind each other; none of it is breakage."""
    for arms in ("out", "down", "mixed"):
        for speed in (1.0, 2.0):
            r = run(_turning(fps, arms, speed), fps)
            assert not r.flagged, (arms, speed, r.score, r.events[:3])


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_arms_crossing_in_front_are_not_a_swap(fps):
    """Both forearms swing across the chest (each wrist ends on the other side), hold 1 s and
    swing back, in 0.2 s: the wrists change sides continuously, which is no left/right swap."""
    lm = dancer(fps)
    t = np.arange(len(lm)) / fps
    s = np.clip((t - 1.5) / 0.2, 0, 1) - np.clip((t - 2.5) / 0.2, 0, 1)
    s = (0.5 - 0.5 * np.cos(np.pi * s))[:, None]
    px = lm[..., :2] * np.array([W, H])
    for side, (sh, el, wr, hand) in ((1, (11, 13, 15, (17, 19, 21))), (-1, (12, 14, 16, (18, 20, 22)))):
        elbow = px[:, sh] + np.array([-side * 10.0, 70.0])
        wrist = elbow + np.array([-side * 70.0, -5.0 + side * 4.0])  # the forearm keeps its length
        px[:, el] = (1 - s) * px[:, el] + s * elbow
        px[:, [wr, *hand]] = ((1 - s) * px[:, wr] + s * wrist)[:, None]
    lm[..., :2] = px / np.array([W, H])
    assert (lm[int(2.0 * fps), 15, 0] < lm[int(2.0 * fps), 16, 0])  # the wrists have crossed
    r = run(lm, fps)
    assert not r.flagged, (r.score, r.events[:3])


def test_registered_under_dance_alias():
    d = get_detector("dance")
    assert isinstance(d, MotionDetector) and d.requires == frozenset({"pose"})


# ---- real pose: MediaPipe over real footage and a small held-out puppet set ------------------
# Seeds 3000-3005 were never used to tune (tuning: 0-59): five broken clips (every kind, the
# first twice) and a clean dance, 12 fps, 2.5 s, so the whole module stays under ~40 s.

HELD_OUT = {"stretch": 3000, "detach": 3001, "teleport": 3002, "swap": 3003, "stretch2": 3004, None: 3005}


@pytest.fixture(scope="module")
def real_poses():
    from evalkit.datasets import body
    from evalkit.datasets.footage import load_clip
    from evalkit.datasets.motion_eval import retime
    from evalkit.landmarks import extract_pose

    bikes, fps = load_clip("bikes.mp4", max_side=360)
    cyclist, cyc_fps = retime(bikes[75:175], fps, 12.0)  # the cyclist, at 12 fps
    rig = body.astronaut_rig()
    out = {"bikes": (cyclist, cyc_fps, extract_pose(cyclist), None)}
    bunny = load_clip("bigbuckbunny.mp4", max_side=360, max_frames=75)[0]  # a cartoon rabbit, 3 s at 25 fps
    out["bunny"] = (bunny, 25.0, extract_pose(bunny), None)  # version 2 read a teleported wrist at 1.4 s
    for kind, seed in HELD_OUT.items():
        frames, truth = body.make_clip(np.random.default_rng(seed), 12.0, 2.5, kind and kind.rstrip("2"), rig=rig)
        out[kind or "clean"] = (frames, 12.0, extract_pose(frames), truth)
    return out


def _score_pose(frames, fps, pose):
    return MotionDetector().score(VideoInputs(video=_video(len(frames), fps), pose=pose))


@pytest.mark.slow
def test_real_cyclist_is_not_flagged(real_poses):
    frames, fps, pose, _ = real_poses["bikes"]
    assert pose.present.mean() > 0.5
    r = _score_pose(frames, fps, pose)
    assert not r.flagged, (r.score, r.events)


@pytest.mark.slow
def test_cartoon_is_not_flagged(real_poses):
    """MediaPipe confidently puts a skeleton on the animated rabbit; it must not read as a broken body."""
    frames, fps, pose, _ = real_poses["bunny"]
    assert pose.present.mean() > 0.5  # the model does see a "person"
    r = _score_pose(frames, fps, pose)
    assert not r.flagged, (r.score, r.events, r.stats)
    assert r.is_skipped or r.stats["judged_frames"] < pose.present.sum()  # the gate is what stops it


@pytest.mark.slow
def test_mediapipe_tracks_the_puppet(real_poses):
    from evalkit.datasets import body

    frames, fps, pose, truth = real_poses["clean"]
    assert pose.present.mean() > 0.9
    err = np.nanmedian(body.tracking_error(pose.landmarks, truth, pose.image_size), axis=0)
    assert err[:3].max() < 0.3, err  # nose and shoulders within 0.3 shoulder widths


def _held_out_results(real_poses):
    neg = [_score_pose(*real_poses[k][:3]) for k in ("bikes", "clean", "bunny")]
    pos = {k: _score_pose(*real_poses[k][:3]) for k in HELD_OUT if k}
    found = {k: localised(r, real_poses[k][3], 12.0) for k, r in pos.items()}
    return neg, pos, found


@pytest.mark.slow
def test_targets_on_held_out_puppets(real_poses):
    """Issue targets on clips never tuned on: negatives not flagged (FPR <= 5 %), AUC >= 0.9,
    the broken range found for detached, teleported and swapped limbs."""
    neg, pos, found = _held_out_results(real_poses)
    assert not any(r.flagged for r in neg), [(r.score, r.events) for r in neg]
    # a negative not judged (skipped) scores 0, as in the validation
    assert auc([r.score for r in pos.values()], [np.nan_to_num(r.score) for r in neg]) >= 0.9
    assert all(found[k] for k in ("detach", "teleport", "swap")), {k: (found[k], r.score, r.events[:3]) for k, r in pos.items()}


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known gap: MediaPipe reads a 1.45-1.8x stretched puppet limb as 1.0-1.4x, "
                   "near its own frame-to-frame noise on the puppet at 8-12 fps (docs/motion.md); strict: passing "
                   "means update the docs")
def test_stretched_limbs_localised_on_held_out_puppets(real_poses):
    _, _, found = _held_out_results(real_poses)
    assert found["stretch"] and found["stretch2"]


@pytest.mark.parametrize("frames", [1, 2, 5, 8])
def test_clips_shorter_than_the_windows(frames):
    """The curriculum's image stage holds a still for 8 frames at 8 fps: shorter than every window."""
    lm = dancer(8.0, seconds=frames / 8.0)
    assert len(lm) == frames
    score, series = motion_breakage(lm, (W, H), 8.0)
    assert series.shape == (frames,)
    assert not (np.isfinite(score) and score >= 1.0)


def test_oracle_tracks_from_puppet_truth():
    """``motion_eval --oracle``: the puppet's own keypoints with real-footage jitter, as a pose
    track. The checks find stretched and detached forearms on it and leave clean dances alone."""
    from evalkit.datasets import body
    from evalkit.datasets.motion_eval import oracle_landmarks

    rig = body.astronaut_rig()
    fps = 12.0
    flagged_clean, found = [], []
    for seed in range(4):
        for kind in (None, "stretch", "detach"):
            frames, truth = body.make_clip(np.random.default_rng(seed), fps, 3.5, kind, 1.0, rig=rig)
            lm = oracle_landmarks(truth, frames.shape[2:0:-1], 0.02, np.random.default_rng(seed))
            assert lm.shape == (len(frames), 33, 4) and (lm[:, [0, 2, 5, 11, 12, 13, 14, 15, 16], 3] == 0.95).all()
            w, h = frames.shape[2:0:-1]
            video = Video(path="puppet.mp4", frames=torch.zeros((len(lm), 3, 2, 2), dtype=torch.uint8), fps=fps,
                          frame_indices=np.arange(len(lm)), source_size=(w, h), source_fps=fps, content_hash="x")
            r = MotionDetector().score(VideoInputs(video=video, pose=PoseTrack(lm, (w, h))))
            assert np.isfinite(r.series).mean() > 0.9  # judged
            if kind is None:
                flagged_clean.append(r.flagged)
            else:
                found.append(localised(r, truth, fps))
    assert not any(flagged_clean)
    assert sum(found) >= 6, found  # of 8


def test_line_fits_measure_a_step_on_a_moving_joint():
    """``_jump_linear``: a joint moving at constant speed shows no step and no spread; the same
    motion with a 1.0 jump at frame 20 shows a 1.0 step there, and a gap of missing frames is
    bridged by the frames that remain."""
    from evalkit.detectors.motion import _jump_linear

    t = np.arange(40, dtype=float)
    ramp = np.stack([0.05 * t, -0.02 * t], -1)
    step, spread = _jump_linear(ramp, 5)
    assert np.nanmax(step) < 1e-9 and np.nanmax(spread) < 1e-9
    assert np.isnan(step[:3]).all()  # fewer than half of the window before the first frames
    jumped = ramp.copy()
    jumped[20:, 0] += 1.0
    jumped[25:27] = np.nan
    step, spread = _jump_linear(jumped, 5)
    assert abs(step[20] - 1.0) < 1e-9 and spread[20] < 1e-9
    assert np.nanargmax(step) == 20 and step[10] < 1e-9


def test_mask_study_sees_background_through_a_forearm():
    """``motion_mask_study.forearm_mask_series`` on a drawn person mask: a solid forearm shows no
    gap and the mask running on past the wrist; a forearm cut in the middle shows the gap."""
    import cv2

    from evalkit.datasets.motion_mask_study import forearm_mask_series

    lm = np.full((2, 33, 4), 0.5, np.float32)
    lm[:, :, 3] = 0.9
    elbow, wrist = (100, 100), (200, 100)
    lm[:, 13, :2], lm[:, 15, :2] = np.array(elbow) / (W, H), np.array(wrist) / (W, H)
    masks = np.zeros((2, H, W), np.float16)
    for t in range(2):
        img = np.zeros((H, W), np.uint8)
        cv2.line(img, elbow, (240, 100), 1, 20)  # forearm and hand
        if t == 1:
            img[:, 130:170] = 0  # cut through the forearm
        masks[t] = img
    gap, overrun = forearm_mask_series(lm, masks, "left")
    assert gap[0] == 0.0 and 0.3 < gap[1] < 0.7, gap
    assert 0.4 <= overrun[0] <= 0.6, overrun  # the hand: 40 px (+ the line's 10 px cap) past a 100 px forearm
    lm[:, 16, 3] = 0.3  # an unsure wrist is not measured
    assert np.isnan(forearm_mask_series(lm, masks, "right")[0]).all()


def _solid_limbs(t: int) -> np.ndarray:
    """A person-mask profile ``(T, 8, 21)`` of limbs that are person from end to end."""
    from evalkit.landmarks import LIMB_MASK_BONES, LIMB_MASK_SAMPLES

    return np.ones((t, len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES), np.float16)


def _forearm_cut(profile: np.ndarray, frames: slice, elbow_end: float = 1.0) -> None:
    """Background across the middle of the left forearm (bone 2) in ``frames``; ``elbow_end``: the
    mask at the elbow's end of the bone."""
    profile[frames, 2, 6:15] = 0.0
    profile[frames, 2, :3] = elbow_end


@pytest.mark.parametrize("fps", [8.0, 12.0, 24.0, 30.0])
def test_forearm_cut_off_is_found_from_the_mask(fps):
    """A forearm whose middle shows background for 0.3 s (a detached forearm the pose model keeps
    at its usual length) is a ``cut`` of that forearm, at any frame rate; the pose alone is clean."""
    lm = dancer(fps)
    t = len(lm)
    start, stop = int(1.5 * fps), int(1.8 * fps)
    profile = _solid_limbs(t)
    _forearm_cut(profile, slice(start, stop))
    profile[start:stop, 2, 16:] = 0.0  # the wrist's end may be background too (the model's wrist in the gap)
    clean = MotionDetector().score(VideoInputs(video=_video(t, fps), pose=PoseTrack(lm, (W, H), _solid_limbs(t))))
    assert not clean.flagged, (clean.score, clean.events)
    r = MotionDetector().score(VideoInputs(video=_video(t, fps), pose=PoseTrack(lm, (W, H), profile)))
    assert r.flagged and _found(r, "cut:left_forearm", start, stop - 1), r.events
    assert all(e.kind == "cut:left_forearm" for e in r.events), r.events
    assert "cut" in r.stats["checks_fired"]


@pytest.mark.parametrize("fps", [8.0, 30.0])
def test_what_is_not_a_cut(fps):
    """Not cuts: a gap in one frame (the mask's own flicker); a bone whose elbow end is background
    too (the pose model's elbow off the body, not a forearm carried away from it); points outside
    the frame (unknown, not background); a gap on a joint the model is unsure of."""
    lm = dancer(fps)
    t = len(lm)
    mid = int(2 * fps)
    one_frame = _solid_limbs(t)
    _forearm_cut(one_frame, slice(mid, mid + 1))
    off_arm = _solid_limbs(t)
    _forearm_cut(off_arm, slice(mid, mid + int(0.5 * fps)), elbow_end=0.0)
    outside = _solid_limbs(t)
    outside[mid : mid + int(0.5 * fps), 2, 6:] = np.nan
    unsure = _solid_limbs(t)
    _forearm_cut(unsure, slice(mid, mid + int(0.5 * fps)))
    lm_unsure = lm.copy()
    lm_unsure[mid : mid + int(0.5 * fps), 15, 3] = 0.7  # under vis_high: length-like checks skip it
    for name, landmarks, profile in [("one frame", lm, one_frame), ("elbow off the body", lm, off_arm),
                                     ("outside", lm, outside), ("unsure wrist", lm_unsure, unsure)]:
        r = MotionDetector().score(VideoInputs(video=_video(t, fps), pose=PoseTrack(landmarks, (W, H), profile)))
        assert not any(e.kind.startswith("cut") for e in r.events), (name, r.events)


def test_limb_mask_profile_samples_the_person_mask_along_each_bone():
    """``limb_mask_profile`` on a drawn mask: a solid forearm is person end to end, a forearm cut
    through the middle shows background there, points outside the frame are unknown (NaN)."""
    import cv2

    from evalkit.landmarks import LIMB_MASK_BONES, LIMB_MASK_SAMPLES, limb_mask_profile

    lm = np.full((33, 4), 0.5, np.float32)
    lm[:, 3] = 0.9
    lm[13, :2], lm[15, :2] = np.array((100, 100)) / (W, H), np.array((200, 100)) / (W, H)  # left elbow, wrist
    lm[14, :2], lm[16, :2] = np.array((500, 100)) / (W, H), np.array((700, 100)) / (W, H)  # right wrist off frame
    img = np.zeros((H, W), np.uint8)
    cv2.line(img, (100, 100), (220, 100), 1, 20)
    cv2.line(img, (500, 100), (639, 100), 1, 20)
    solid = limb_mask_profile(img.astype(np.float32), lm)
    assert solid.shape == (len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES) and solid.dtype == np.float16
    left, right = LIMB_MASK_BONES.index((13, 15)), LIMB_MASK_BONES.index((14, 16))
    assert (solid[left] == 1).all(), solid[left]
    img[:, 130:170] = 0
    cut = limb_mask_profile(img.astype(np.float32), lm)[left]
    assert cut[0] == 1 and cut[-1] == 1 and (cut[7:14] == 0).all(), cut
    r = limb_mask_profile(img.astype(np.float32), lm)[right]
    assert (r[:10] == 1).all() and np.isnan(r[-5:]).all(), r


def test_shin_cut_off_is_found_from_the_mask():
    lm = dancer(24.0)
    t = len(lm)
    profile = _solid_limbs(t)
    profile[40:50, 7, 6:15] = 0.0  # right shin (bone 7): background across its middle for 0.4 s
    r = MotionDetector().score(VideoInputs(video=_video(t, 24.0), pose=PoseTrack(lm, (W, H), profile)))
    assert _found(r, "cut:right_shin", 40, 49) and all(e.kind == "cut:right_shin" for e in r.events), r.events


@pytest.mark.slow
def test_mediapipe_mask_profile_leaves_the_landmarks_unchanged():
    """Turning the person mask on (``pose_limb_mask``) adds the profile and leaves MediaPipe's
    landmarks bit for bit the same, so tracks made without it keep their meaning."""
    from evalkit.datasets import body
    from evalkit.landmarks import LIMB_MASK_BONES, LIMB_MASK_SAMPLES, LandmarkOptions, extract_pose

    frames, _ = body.make_clip(np.random.default_rng(3), 12.0, 1.0, "detach")
    with_mask = extract_pose(frames)
    without = extract_pose(frames, LandmarkOptions(pose_limb_mask=False))
    assert without.limb_mask is None
    assert with_mask.limb_mask.shape == (len(frames), len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES)
    np.testing.assert_array_equal(with_mask.landmarks, without.landmarks)
    forearms = with_mask.limb_mask[:, 2:4].astype(float)
    assert np.nanmedian(forearms) > 0.5  # the puppet's arms are person in its mask


# ---------------------------------------------------------------------------------------------
# Version 10: a second pose model and the two-model rule


def _pair(first: np.ndarray, second: np.ndarray, fps: float, **config):
    det = MotionDetector(**config)
    return det.score_tracks(fps, len(first), PoseTrack(first, (W, H)), PoseTrack(second, (W, H)))


def _on_left_arm(kind: str) -> bool:
    from evalkit.detectors.motion import _limb_of

    return _limb_of(kind.split(":")[1]) == "left_arm"


def _second_model_view(lm: np.ndarray, seed: int = 7) -> np.ndarray:
    """The same body as another model reads it: its own jitter, the 16 points MoveNet lacks unseen."""
    out = lm.copy()
    out[..., :2] += np.random.default_rng(seed).normal(0, 1.5 / W, out[..., :2].shape)
    lacking = [i for i in range(33) if i not in (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)]
    out[:, lacking, 3] = 0.0
    out[..., 2] = np.nan  # no depth, as MoveNet
    return out


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_breakage_both_models_see_is_flagged(fps):
    broken = _broken_arm(fps)
    r = _pair(broken, _second_model_view(broken), fps)
    assert r.flagged and all(_on_left_arm(e.kind) for e in r.events), (r.score, r.events)
    assert {e.kind for e in run(broken, fps).events} <= {e.kind for e in r.events}


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_breakage_one_model_alone_reads_is_tracker_uncertainty_under_the_confirmed_rule(fps):
    """Version 10's rule: one tracker stretches the forearm, the other sees the arm whole: reported,
    not flagged. (The weighted rule counts this pair: the whole arm lies within 0.55 body sizes of
    the stretched one and moves as ordinarily as any arm, evidence 0.5: see the tests below.)"""
    clean = dancer(fps)
    broken = _broken_arm(fps)
    for first, second, lone in ((broken, _second_model_view(clean), "first"), (clean, _second_model_view(broken), "second")):
        r = _pair(first, second, fps, two_model_rule="confirmed")
        assert not r.flagged, (r.score, r.events)
        uncertain = r.stats["tracker_uncertain"]
        assert uncertain and all(u["model"] == lone and _on_left_arm(u["kind"]) for u in uncertain), uncertain
        assert r.stats["uncertain_frames"] > 0
    alone = run(broken, fps)
    assert alone.flagged  # the same track alone is flagged: the rule is what holds it back


def test_two_models_on_a_clean_dance():
    clean = dancer(12.0)
    r = _pair(clean, _second_model_view(clean), 12.0)
    assert not r.flagged and r.stats["tracker_uncertain"] == [] and r.stats["uncertain_frames"] == 0


def test_confirmed_checks_cap_each_by_the_others_evidence():
    from evalkit.detectors.motion import confirmed_checks

    t = 20
    strong = np.zeros(t)
    strong[8:11] = 4.0
    half = np.zeros(t)
    half[9] = 1.5
    first = {"jump": {"left_forearm": strong, "right_forearm": np.zeros(t)}}
    second = {"teleport": {"left_wrist": half}, "cut": {}}
    both = confirmed_checks(first, second, 10.0)
    # min(4, 1.5) within confirm_tolerance_s (0.15 s -> 2 frames) of the other's evidence
    assert both["jump"]["left_forearm"][7:13].tolist() == [0.0, 1.5, 1.5, 1.5, 0.0, 0.0]
    assert np.isnan(both["jump"]["right_forearm"]).all()  # the other model judged nothing on that arm
    assert both["teleport"]["left_wrist"][9] == 1.5  # and the other way round


def _arm_elsewhere(lm: np.ndarray, fps: float, shift=(-260.0, 0.0)) -> np.ndarray:
    """The left elbow and wrist (with the hand points) put ``shift`` px away from 1.5 s on: a
    tracker that follows something else than the arm (260 px is about 2.5 body sizes here)."""
    out = lm.copy()
    a = int(1.5 * fps)
    out[a:, [13, 15, 17, 19, 21], 0] += shift[0] / W
    out[a:, [13, 15, 17, 19, 21], 1] += shift[1] / H
    return out


def _stretched_by(fps: float, factor: float) -> np.ndarray:
    lm = dancer(fps)
    a = int(1.5 * fps)
    elbow = lm[a:, 13, :2].copy()
    lm[a:, [15, 17, 19, 21], :2] = elbow[:, None] + factor * (lm[a:, [15, 17, 19, 21], :2] - elbow[:, None])
    return lm


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_weighted_rule_counts_breakage_the_other_model_reads_below_its_threshold(fps):
    """Version 11: one model reads the forearm stretched 1.8x, the other the same arm 1.2x (under
    every threshold): both see the limb in about the same place doing something out of the
    ordinary, so the weighted rule flags it on that arm, where version 10's rule did not."""
    first, second = _broken_arm(fps), _second_model_view(_stretched_by(fps, 1.2))
    assert not run(second, fps).flagged  # the second model alone reads nothing
    r = _pair(first, second, fps)
    assert r.flagged and all(_on_left_arm(e.kind) for e in r.events), (r.score, r.events)
    assert not _pair(first, second, fps, two_model_rule="confirmed").flagged


@pytest.mark.parametrize("fps", [8.0, 24.0])
def test_weighted_rule_holds_back_what_the_models_put_in_different_places(fps):
    """One model's arm jumps 2.5 body sizes away and stays (teleport, jump), the other keeps it on
    the body: the models disagree about where the limb is, so it is tracker uncertainty (with how
    far apart they put it), not breakage; the same track alone is flagged."""
    clean = dancer(fps)
    lost = _arm_elsewhere(clean, fps)
    assert run(lost, fps).flagged
    for first, second, lone in ((lost, _second_model_view(clean), "first"), (clean, _second_model_view(lost), "second")):
        r = _pair(first, second, fps)
        assert not r.flagged, (r.score, r.events)
        uncertain = r.stats["tracker_uncertain"]
        assert uncertain and all(u["model"] == lone and _on_left_arm(u["kind"]) for u in uncertain), uncertain
        assert all(u["apart"] is not None and u["apart"] > 2.0 for u in uncertain), uncertain


def test_weighted_checks_scale_by_the_others_evidence_and_agreement():
    from evalkit.detectors.motion import weighted_checks

    t = 20
    own = np.zeros(t)
    own[8:11] = 4.0
    other = np.zeros(t)
    other[9] = 0.25  # half of support_full (0.5)
    apart = np.full(t, 0.5)  # within agree_within (1.0)
    apart[12] = 1.5  # half way to disagree_at (2.0), 2 frames from the reading's end
    first = {"jump": {"left_forearm": own, "right_forearm": np.full(t, 4.0), "left_shin": np.full(t, 4.0)}}
    second = {"teleport": {"left_wrist": other, "right_wrist": np.ones(t)}, "cut": {}}
    disagreement = {"left_arm": apart, "right_arm": np.full(t, np.nan)}
    both = weighted_checks(first, second, disagreement, 10.0)
    # within confirm_tolerance_s (2 frames at 10 fps): evidence 0.25 / 0.5; agreement 0.5 where
    # frame 12 lies in the window
    np.testing.assert_allclose(both["jump"]["left_forearm"][7:13], [0.0, 2.0, 2.0, 1.0, 0.0, 0.0])
    assert (both["jump"]["right_forearm"] == 0).all()  # the other model reads that arm, but never places it
    assert np.isnan(both["jump"]["left_shin"]).all()  # the other model judged nothing on that leg
    # the other way round: 0.25 x (4 / support_full_second -> 1) x agreement
    assert both["teleport"]["left_wrist"][9] == pytest.approx(0.25)
    # the second model's readings need support_full_second (0.7) of the first model's evidence
    weak = {"jump": {"left_forearm": np.full(t, 0.35)}}
    assert weighted_checks(weak, second, disagreement, 10.0)["teleport"]["left_wrist"][9] == pytest.approx(0.25 * 0.5)
    assert weighted_checks(second, weak, disagreement, 10.0)["teleport"]["left_wrist"][9] == pytest.approx(0.25 * 0.7)
    with pytest.raises(Exception, match="two_model_rule"):
        _pair(dancer(8.0), _second_model_view(dancer(8.0)), 8.0, two_model_rule="both")


def test_second_model_option_is_checked():
    with pytest.raises(ValueError, match="movenet-lightning"):
        from evalkit.detectors.motion import second_pose_tracks

        second_pose_tracks(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), "openpose", 8.0)


@pytest.fixture(scope="module")
def movenet_poses(real_poses):
    """MoveNet lightning's tracks of the same clips as ``real_poses`` (skips without its weights)."""
    from evalkit.movenet import movenet_pose_track
    from tests.test_movenet import _weights_or_skip

    _weights_or_skip("lightning")
    return {k: movenet_pose_track(v[0], "lightning", "cpu") for k, v in real_poses.items()}


def _held_out_with(real_poses, movenet_poses, pose: str):
    def score(k):
        frames, fps, mp, _ = real_poses[k]
        det = MotionDetector()
        if pose == "movenet":
            return det.score_tracks(fps, len(frames), movenet_poses[k])
        return det.score_tracks(fps, len(frames), mp, movenet_poses[k])

    neg = [score(k) for k in ("bikes", "clean", "bunny")]
    pos = {k: score(k) for k in HELD_OUT if k}
    return neg, pos, {k: localised(r, real_poses[k][3], 12.0) for k, r in pos.items()}


@pytest.mark.slow
def test_two_model_rule_on_real_footage_and_held_out_puppets(real_poses, movenet_poses):
    """Version 11: the cyclist, the clean puppet and the cartoon are not flagged under the weighted
    rule, and it localises the stretch, detach, teleport and swap (version 10's rule: the teleport
    only)."""
    neg, pos, found = _held_out_with(real_poses, movenet_poses, "both")
    assert not any(r.flagged for r in neg), [(r.score, r.events) for r in neg]
    assert all(found[k] for k in ("stretch", "detach", "teleport", "swap")), {k: (r.score, r.events[:3]) for k, r in pos.items()}


@pytest.mark.slow
@pytest.mark.parametrize("pose", ["movenet", "both"])
@pytest.mark.xfail(strict=True, reason="not resolved by a second model (issue #19, docs/motion.md versions 10-11): on these "
                   "two stretched puppets MoveNet alone localises 1 of 2 (and flags the clean one), the weighted rule 1 of 2 "
                   "(stretch2 scores 0.96), version 10's rule and MediaPipe 0 of 2; on fresh18-20 the weighted rule localises "
                   "0.66/0.72/0.75, version 10's 0.31/0.41/0.38, MoveNet alone 0.66/0.63/0.63, MediaPipe 0.66/0.53/0.59 (target 0.8)")
def test_stretched_limbs_localised_with_a_second_model(real_poses, movenet_poses, pose):
    _, _, found = _held_out_with(real_poses, movenet_poses, pose)
    assert found["stretch"] and found["stretch2"]


@pytest.mark.slow
def test_small_person_in_a_wide_shot_is_judged():
    """Version 10: a real person a quarter of the frame high (carphone, 8 fps, carried across a
    640x360 frame): MediaPipe on the whole frame does not judge him; on MoveNet's person crops it
    does, and he is not flagged."""
    from evalkit.datasets.motion_eval import wide_clips
    from evalkit.landmarks import extract_pose
    from evalkit.movenet import movenet_keypoints, movenet_pose_track, pose_on_person_crops
    from tests.test_movenet import _weights_or_skip

    _weights_or_skip("lightning")
    name, frames, fps = next(c for c in wide_clips() if c[0] == "wide-carphone/8fps")
    whole = MotionDetector().score_tracks(fps, len(frames), extract_pose(frames))
    assert whole.is_skipped, (whole.score, whole.stats)
    keypoints = movenet_keypoints(frames, "lightning", "cpu")
    crops = pose_on_person_crops(frames, keypoints, fps=fps)
    assert crops is not None and crops.present.mean() > 0.9
    r = MotionDetector().score_tracks(fps, len(frames), crops, movenet_pose_track(frames, keypoints=keypoints))
    assert not r.is_skipped and r.stats["judged_frames"] >= 0.8 * len(frames) and not r.flagged, (r.score, r.stats)


@pytest.mark.slow
def test_run_path_judges_a_small_person_on_movenets_crops():
    """Version 12: what ``evalkit run`` does with ``second_model`` set. The detector gets the runner's
    whole-frame pose track (nobody found in the wide shot) and the decoded frames; it runs MoveNet
    once, judges the small person on MediaPipe's pose over MoveNet's crops, and does not flag him."""
    from evalkit.datasets.motion_eval import wide_clips
    from evalkit.landmarks import extract_pose
    from tests.test_movenet import _weights_or_skip

    _weights_or_skip("lightning")
    name, frames, fps = next(c for c in wide_clips() if c[0] == "wide-carphone/8fps")
    t, h, w, _ = frames.shape
    video = Video(path=f"{name}.mp4", frames=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), fps=fps,
                  frame_indices=np.arange(t), source_size=(w, h), source_fps=fps, content_hash="wide")
    whole = extract_pose(frames)
    alone = MotionDetector().score(VideoInputs(video=video, pose=whole))
    assert alone.is_skipped, (alone.score, alone.stats)
    r = MotionDetector(second_model="movenet-lightning").score(VideoInputs(video=video, pose=whole))
    assert not r.is_skipped and r.stats["judged_frames"] >= 0.8 * t and not r.flagged, (r.score, r.stats)
    assert r.stats["judged_frames_second"] > 0


@pytest.mark.slow
def test_detector_runs_the_second_model_on_the_videos_frames():
    """``second_model`` set: the detector runs MoveNet on the decoded frames itself and judges
    under the two-model rule; the carphone man is judged and not flagged."""
    from evalkit.datasets.footage import load_clip
    from evalkit.datasets.motion_eval import retime
    from evalkit.landmarks import extract_pose
    from tests.test_movenet import _weights_or_skip

    _weights_or_skip("lightning")
    phone, fps = load_clip("carphone_pristine.mp4")
    frames, fps = retime(phone, fps, 8.0)
    t, h, w, _ = frames.shape
    video = Video(path="carphone.mp4", frames=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), fps=fps,
                  frame_indices=np.arange(t), source_size=(w, h), source_fps=fps, content_hash="c")
    det = MotionDetector(second_model="movenet-lightning")
    r = det.score(VideoInputs(video=video, pose=extract_pose(frames)))
    assert not r.is_skipped and not r.flagged, (r.score, r.stats)
    assert r.stats["judged_frames_second"] > 0 and "tracker_uncertain" in r.stats
    assert det.config_hash != MotionDetector().config_hash

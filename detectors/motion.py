"""Body-motion breakage: kinematic implausibility of the person in MediaPipe pose tracks.

Input layout: pose landmarks ``(T, 33, 4)`` (x, y normalised to ``[0, 1]``, z in x's scale,
visibility), the frame size ``(W, H)`` and the frame rate. Everything is measured in *body
sizes* (shoulder width, or 0.75 x torso length when the hips show and the shoulders are
foreshortened; a rolling median over ``size_window_s``, only where the frame measures it, and
near the end of a run of such frames never from one side alone: version 9) and in *seconds*, so
clips at 8, 12, 24 or 30 fps and any resolution compare.

Checks, each a per-frame, per-part severity where 1.0 sits at its threshold:

- ``stretch``: a bone (upper arm, forearm, thigh, shin, neck) longer than its own reference
  (its 60th percentile in the clip, at least ``reference_floor`` x a human proportion) by
  ``stretch_ratio`` while its whole limb is longer than its own by ``chain_ratio``, or a whole
  limb (``left_arm`` ...: the sum of its two bones) longer than its own by ``limb_stretch_ratio``,
  held over ``stretch_hold_s``;
- ``jump``: a limb bone's length changes in a step by ``jump_ratio`` (either way) and keeps its
  new length: medians over ``jump_window_s`` before and after a frame, against the spread
  inside them (a limb turning out of the image plane shortens gradually); the whole limb must
  step too (``jump_chain_share`` of the bone's step, in log), and the step must hold for
  ``jump_persist_s``;
- ``speed`` / ``accel``: a joint, relative to the shoulders, faster than ``max_speed`` body
  sizes/s or accelerating beyond ``max_accel`` sizes/s^2, over a ``baseline_s`` time step;
- ``teleport``: a joint whose path over ``teleport_window_s`` before and after a frame, each
  fitted by a straight line, disagrees at the frame by ``teleport_step`` sizes plus
  ``teleport_spread`` x how far the joint strays from those lines (it jumps, then moves on);
- ``swap``: left and right limbs exchange places (plainly or mirrored about the body axis) and
  keep the exchange: each joint's straight line over the ``swap_window_s`` before a frame, carried
  over the next ``min_duration_s``, explains where both sides are by ``swap_gain`` sizes better
  with the labels crossed than kept (in the body's own frame, so a mirror is exact whatever the
  shoulders' tilt); a flip shorter than ``min_duration_s`` is the pose model's and is dropped;
- ``dropout``: a limb vanishes (visibility < ``vis_low``) for ``dropout_min_s``..``dropout_max_s``
  while the shoulders stay visible and the limb was and is again visible inside the frame;
- ``angle``: an elbow or knee folded tighter than the human range (3-D interior angle below
  ``min_joint_angle_deg``), sustained;
- ``cut`` (needs :attr:`evalkit.PoseTrack.limb_mask`, MediaPipe's person mask sampled along the
  limbs): a forearm or shin (``cut_bones``) whose middle shows background over ``cut_gap`` of its
  length while its root end (the elbow, the knee) is person and both joints are confident, held
  for ``cut_hold_s``: a limb cut off and carried away, which the pose alone often reads at its
  usual length.

Only a credible body is judged (``judged_frames``: shoulders confidently visible, head and
shoulders holding together; a skeleton on a cartoon or a door is not judged) and only limbs seen
in ``limb_min_share`` of those frames (not legs the model invents under an upper body).
Length checks use confident joints only (visibility >= ``vis_high``), speed, acceleration and
teleport joints from ``vis_track``. The
track is cut where the person is missing or the whole body jumps (a shot cut), and no
check compares frames across a cut.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from evalkit._types import DetectorResult, Event, PoseTrack, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._events import series_events
from evalkit.errors import ShapeError

log = logging.getLogger(__name__)

NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 11, 12, 23, 24
# name: (joint a, joint b, human length in shoulder widths, a generous mean over people)
BONES: dict[str, tuple[int, int, float]] = {
    "left_upper_arm": (11, 13, 0.85), "right_upper_arm": (12, 14, 0.85),
    "left_forearm": (13, 15, 0.70), "right_forearm": (14, 16, 0.70),
    "left_thigh": (23, 25, 1.10), "right_thigh": (24, 26, 1.10),
    "left_shin": (25, 27, 1.05), "right_shin": (26, 28, 1.05),
}
JOINTS: dict[str, int] = {
    "nose": 0, "left_elbow": 13, "right_elbow": 14, "left_wrist": 15, "right_wrist": 16,
    "left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28,
}
LIMBS: dict[str, tuple[int, int]] = {"arms": (13, 15), "legs": (25, 27)}  # left joints; right = +1
LIMB_PARTS: dict[str, tuple[int, int]] = {
    "left_arm": (13, 15), "right_arm": (14, 16), "left_leg": (25, 27), "right_leg": (26, 28),
}
HINGES: dict[str, tuple[int, int, int]] = {
    "left_elbow": (11, 13, 15), "right_elbow": (12, 14, 16), "left_knee": (23, 25, 27), "right_knee": (24, 26, 28),
}
CHECKS = ("stretch", "jump", "speed", "accel", "teleport", "swap", "dropout", "angle", "cut")

DEFAULTS: dict[str, Any] = {
    "threshold": 1.0,
    "min_visibility": 0.6,
    "size_window_s": 1.0,
    "min_duration_s": 0.15,
    "baseline_s": 0.1,
    "stretch_ratio": 1.3,
    "chain_ratio": 1.15,
    "limb_stretch_ratio": 1.2,
    "stretch_hold_s": 0.3,
    "neck_ratio": 1.4,
    "max_speed": 16.0,
    "max_accel": 360.0,
    "teleport_window_s": 0.5,
    "teleport_step": 0.6,
    "teleport_spread": 2.5,
    "jump_window_s": 0.3,
    "jump_ratio": 1.3,
    "jump_persist_s": 0.1,
    "jump_chain_share": 0.5,
    "reference_floor": 0.7,
    "swap_gain": 0.4,
    "swap_window_s": 0.1,
    "swap_axis_s": 0.1,
    "cut_gap": 0.2,
    "cut_hold_s": 0.1,
    "cut_min_length": 0.2,
    "cut_root": True,
    "cut_bones": ("left_forearm", "right_forearm", "left_shin", "right_shin"),
    "vis_low": 0.3,
    "vis_high": 0.8,
    "vis_track": 0.6,
    "dropout_min_s": 0.25,
    "dropout_max_s": 1.5,
    "frame_margin": 0.03,
    "min_joint_angle_deg": 20.0,
    "cut_jump": 1.5,
    "merge_gap_s": 0.25,
    "judge_window_s": 1.0,
    "judge_min_share": 0.5,
    "max_incoherence": 0.25,
    "limb_min_share": 0.4,
}


def _frames(seconds: float, fps: float, minimum: int = 1) -> int:
    return max(minimum, int(round(seconds * fps)))


def _rolling(x: np.ndarray, win: int, how: str = "median") -> np.ndarray:
    """Centred rolling nan-median / nan-max over axis 0 of ``(T, ...)``; NaN outside the track."""
    if win <= 1:
        return x.copy()
    left = (win - 1) // 2
    pad = np.full((win - 1, *x.shape[1:]), np.nan, x.dtype)
    padded = np.concatenate([pad[:left], x, pad[left:]])
    view = sliding_window_view(padded, win, axis=0)  # (T, ..., win)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"median": np.nanmedian, "max": np.nanmax, "min": np.nanmin}[how](view, axis=-1)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``out[t] = x[t - k]`` with NaN where ``t - k`` is outside."""
    out = np.full_like(x, np.nan)
    if k >= 0:
        out[k:] = x[: len(x) - k]
    else:
        out[:k] = x[-k:]
    return out


def _windows(values: np.ndarray, win: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``win`` frames before and from each frame of ``values`` ``(T, D)``: ``(before, after)``
    ``(T, D, win)`` (NaN outside the track) and ``(T,)`` whether both hold at least half their
    frames, and two: one frame is no evidence of a level or a line."""
    t = len(values)
    pad = np.full((win, values.shape[1]), np.nan)
    before = sliding_window_view(np.concatenate([pad, values[:-1]]), win, axis=0)[:t]
    after = sliding_window_view(np.concatenate([values, pad[:-1]]), win, axis=0)
    counts = [np.isfinite(w[:, 0]).sum(-1) for w in (before, after)]
    enough = np.logical_and.reduce([(c * 2 >= win) & (c >= 2) for c in counts])
    return before, after, enough


def _jump(values: np.ndarray, win: int) -> tuple[np.ndarray, np.ndarray]:
    """How far ``values`` ``(T, D)`` (NaN where unknown) jump at each frame and stay: the distance
    between the medians of the ``win`` frames before and from ``t``, and the spread (median
    distance to their own median, both windows summed) inside them. NaN where either window
    holds fewer than half its frames: a median of one or two frames is no evidence of a level."""
    before, after, enough = _windows(values, win)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mb, ma = np.nanmedian(before, -1), np.nanmedian(after, -1)
        spread = np.nanmedian(np.linalg.norm(before - mb[..., None], axis=1), -1) + np.nanmedian(
            np.linalg.norm(after - ma[..., None], axis=1), -1)
    step = np.linalg.norm(ma - mb, axis=-1)
    return np.where(enough, step, np.nan), np.where(enough, spread, np.nan)


def _fit_line(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares line through windows ``y`` ``(T, D, win)`` (NaN: unknown frames) at frame times
    ``x`` ``(win,)``: value at ``x = 0`` ``(T, D)``, slope per frame ``(T, D)`` and the median
    distance of the window's known frames to the line ``(T,)``."""
    known = np.isfinite(y).all(1, keepdims=True).astype(float)  # (T, 1, win)
    yy = np.nan_to_num(y)
    s0, s1, s2 = known.sum(-1), (known * x).sum(-1), (known * x * x).sum(-1)
    sy, sxy = (known * yy).sum(-1), (known * x * yy).sum(-1)
    den = s0 * s2 - s1 * s1
    slope = np.where(den > 1e-9, (s0 * sxy - s1 * sy) / np.where(den > 1e-9, den, 1.0), 0.0)
    icpt = (sy - slope * s1) / np.maximum(s0, 1e-9)
    res = np.linalg.norm(y - (icpt[..., None] + slope[..., None] * x), axis=1)  # (T, win)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return icpt, slope, np.nanmedian(res, -1)


def _line_ends(values: np.ndarray, win: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Straight lines (:func:`_fit_line`) through the ``win`` frames before and from each frame of
    ``values`` ``(T, D)``: where each line reaches the boundary ``t - 0.5``, ``(before, after)``
    ``(T, D)``, the median distance of each window's frames to its line ``(before, after)`` ``(T,)``,
    and ``(T,)`` whether both windows hold enough frames (:func:`_windows`)."""
    before, after, enough = _windows(values, win)
    frame_times = np.arange(win, dtype=float)
    ib, _, rb = _fit_line(before, frame_times - win + 0.5)  # frame times relative to the boundary t - 0.5
    ia, _, ra = _fit_line(after, frame_times + 0.5)
    return ib, ia, rb, ra, enough


def _line_ahead(values: np.ndarray, win: int, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the straight line through the ``win`` frames before each frame ``t`` of ``values``
    ``(T, D)`` puts frames ``t .. t + ahead - 1``: ``(T, ahead, D)``, and ``(T,)`` whether the
    window held enough frames (half, and two)."""
    before, _, _ = _windows(values, win)
    count = np.isfinite(before[:, 0]).sum(-1)
    icpt, slope, _ = _fit_line(before, np.arange(win, dtype=float) - win)  # x = 0 at frame t
    pred = icpt[:, None] + slope[:, None] * np.arange(ahead, dtype=float)[None, :, None]
    return pred, (count * 2 >= win) & (count >= 2)


def _jump_linear(values: np.ndarray, win: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_jump`, but each window is a straight line (:func:`_line_ends`) instead of a
    level: the step is the distance between the two lines at the boundary (``t - 0.5``), the spread
    the summed median distance of each window's frames to its line. Smooth motion inside the
    windows is explained by the lines, not counted as spread."""
    ib, ia, rb, ra, enough = _line_ends(values, win)
    step = np.linalg.norm(ia - ib, axis=-1)
    return np.where(enough, step, np.nan), np.where(enough, rb + ra, np.nan)


_CROSSED = [2, 3, 0, 1]  # joints (l, l2, r, r2) -> the other side's (r, r2, l, l2)
_MIRRORED = np.array([-1.0, 1.0])  # body frame (along, across the shoulders): a mirror negates "along"


def _label_distances(seen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``(3, ..., 4)`` distances of the joints ``seen`` ``(..., 4, 2)`` (left l, l2, right r, r2, in
    the body frame) to ``ref`` with the labels kept, crossed, and crossed and mirrored."""
    crossed = ref[..., _CROSSED, :]
    return np.stack([np.linalg.norm(seen - r, axis=-1) for r in (ref, crossed, crossed * _MIRRORED)])


def _short_flips(q: np.ndarray, hold: int, gain: float) -> np.ndarray:
    """``(T,)`` bool: frames of a run shorter than ``hold`` frames whose labels are crossed against
    the frames on both sides of it (``q`` ``(T, 4, 2)``, as for :func:`_label_distances`): the pose
    model's own left/right flip. The run must sit ``gain`` sizes a frame nearer the crossed labels,
    and, for runs of two frames or more (where the line between the sides leans to one of them),
    the two sides must not be exchanged against each other: the labels come back."""
    flips = np.zeros(len(q), bool)
    for n in range(1, hold):
        before, after = _shift(q, 1), _shift(q, -n)  # the frames just before and just after a run from t
        kept = crossed = 0.0
        for i in range(n):  # frame t + i against the line between the run's two sides
            d = _label_distances(_shift(q, -i), before + (i + 1) / (n + 1) * (after - before)).sum(-1)
            kept, crossed = kept + d[0], crossed + np.minimum(d[1], d[2])
        ends = _label_distances(after, before).sum(-1)
        comes_back = (n == 1) | (ends[0] < np.minimum(ends[1], ends[2]) + 2 * gain)
        starts = np.flatnonzero((kept > 2 * crossed) & (kept - crossed > 2 * n * gain) & comes_back)
        for k in range(n):
            flips[np.clip(starts + k, 0, len(q) - 1)] = True
    return flips


def _swap_severity(q: np.ndarray, ok: np.ndarray, shot: np.ndarray, win: int, hold: int, gain: float) -> np.ndarray:
    """``(T,)``: how much better both sides of a limb pair ``q`` ``(T, 4, 2)`` (body frame, sizes;
    ``ok`` ``(T,)`` where known; ``shot`` ``(T,)`` where the windows lie in one shot) are explained from ``t`` on with their labels crossed, in units of
    ``gain`` sizes: each joint's straight line over the ``win`` frames before ``t``, carried over
    ``hold`` frames, against where the joints are; the smaller of the two sides' gains. Flips
    shorter than the hold are the caller's to remove from ``ok`` (:func:`_short_flips`)."""
    q = np.where(ok[:, None, None], q, np.nan)
    fits = [_line_ahead(q[:, j], win, hold) for j in range(4)]
    pred = np.stack([f[0] for f in fits], 2)  # (T, hold, 4, 2)
    seen = np.stack([_shift(q, -k) for k in range(hold)], 1)  # (T, hold, 4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d = np.nanmean(_label_distances(seen, pred).reshape(3, len(q), hold, 2, 2).sum(-1), axis=2)  # (3, T, sides)
    held = np.isfinite(seen[..., 0]).all(-1).sum(1) >= max(2, (hold + 1) // 2)  # two frames: one is no state
    sev = np.min(d[0] - np.minimum(d[1], d[2]), axis=1) / gain
    return np.where(fits[0][1] & held & shot, sev, np.nan)


def body_size(points: np.ndarray, visible: np.ndarray, fps: float, window_s: float = 1.0) -> np.ndarray:
    """``(T,)`` body size in pixels: max(shoulder width, 0.75 torso length, 1.5 nose-to-shoulders),
    rolling median. The head term holds the size on a side view without hips in shot, where the
    shoulder width collapses (frontal, nose-to-shoulders is ~0.5 shoulder widths: it never leads)."""
    shoulder = np.linalg.norm(points[:, L_SHOULDER] - points[:, R_SHOULDER], axis=-1)
    shoulder = np.where(visible[:, L_SHOULDER] & visible[:, R_SHOULDER], shoulder, np.nan)
    mid_s = 0.5 * (points[:, L_SHOULDER] + points[:, R_SHOULDER])
    mid_h = 0.5 * (points[:, L_HIP] + points[:, R_HIP])
    torso = np.linalg.norm(mid_s - mid_h, axis=-1)
    torso = np.where(visible[:, L_HIP] & visible[:, R_HIP], torso, np.nan)
    neck = np.linalg.norm(points[:, NOSE] - mid_s, axis=-1)
    neck = np.where(visible[:, NOSE] & visible[:, L_SHOULDER] & visible[:, R_SHOULDER], neck, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        size = np.nanmax(np.stack([shoulder, 0.75 * torso, 1.5 * neck]), axis=0)
    # Only where the frame measures a size, and near the end of a run of measured frames not from
    # one side alone: a centred window there holds one side only, and its median lags a size that
    # changes fast (the frames before the shoulders leave the top of the shot as the person nears
    # the camera read the legs 1.1-3.2x long with the smaller, older size). There the size is also
    # taken from a window with both sides (shrunk to fit) and the larger of the two kept: at a
    # track's start the one-sided window is the steadier (bikes.mp4: the model's size still settling)
    win = _frames(window_s, fps, 3) | 1
    balanced = _balanced_median(size, win // 2)
    return np.where(np.isfinite(balanced), np.fmax(_rolling(size, win), balanced), np.nan)


def _balanced_median(x: np.ndarray, half: int) -> np.ndarray:
    """``(T,)`` rolling nan-median of ``x`` ``(T,)`` over up to ``half`` frames each side, shrunk
    where needed so that each side holds at least half its frames; NaN where ``x`` is."""
    t = np.arange(len(x))
    known = np.concatenate([[0], np.cumsum(np.isfinite(x))])  # known[i]: measured frames before i
    out = x.copy()
    for h in range(1, half + 1):
        left = known[t] - known[np.maximum(t - h, 0)]  # frames t-h .. t-1
        right = known[np.minimum(t + 1 + h, len(x))] - known[t + 1]  # frames t+1 .. t+h
        ok = np.isfinite(x) & (2 * left >= h) & (2 * right >= h)
        out = np.where(ok, _rolling(x, 2 * h + 1), out)
    return out


def segment_ids(points: np.ndarray, present: np.ndarray, size: np.ndarray, cut_jump: float) -> np.ndarray:
    """``(T,)`` int segment of each frame (-1 where absent): a new one after a gap or a whole-body jump."""
    mid = 0.5 * (points[:, L_SHOULDER] + points[:, R_SHOULDER])
    jump = np.linalg.norm(mid - _shift(mid, 1), axis=-1) / size
    starts = present & (~_shift(present.astype(float), 1).astype(bool) | (np.nan_to_num(jump) > cut_jump))
    starts[0] = present[0]
    seg = np.cumsum(starts) - 1
    return np.where(present, seg, -1)


def _same_segment(seg: np.ndarray, k: int) -> np.ndarray:
    """``(T,)`` bool: frames ``t`` and ``t - k`` lie in one segment."""
    prev = _shift(seg.astype(float), k)
    return (seg >= 0) & (prev == seg)


def pose_jitter(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, min_visibility: float = 0.6) -> dict[str, float]:
    """Median per-frame jitter of each joint in body sizes: ``|p_t - (p_{t-1} + p_{t+1}) / 2|``.

    On still or smoothly moving bodies this is the pose model's own noise (an upper bound)."""
    points, visible = _pixels(landmarks, image_size, min_visibility)
    points = points[..., :2]
    size = body_size(points, visible, fps)
    resid = np.linalg.norm(points - 0.5 * (_shift(points, 1) + _shift(points, -1)), axis=-1) / size[:, None]
    ok = visible & (_shift(visible.astype(float), 1) == 1) & (_shift(visible.astype(float), -1) == 1) & np.isfinite(resid)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, j in {"shoulders": [11, 12], **{k: [v] for k, v in JOINTS.items()}}.items():
            vals = resid[:, j][ok[:, j]]
            out[name] = float(np.median(vals)) if vals.size else float("nan")
    return out


def judged_frames(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, **options: Any) -> tuple[np.ndarray, dict[str, float]]:
    """``(T,)`` bool: frames where the pose evidence is credible enough to judge a body, and why
    not elsewhere (``{"torso_unsure": share, "incoherent": share}`` of the person's frames).

    Credible: over ``judge_window_s`` around a frame, both shoulders are confidently visible
    (>= ``vis_high``) in at least ``judge_min_share`` of the frames, and the head and shoulders
    hold together: the median change of the eye distance and the shoulder width (in log, over
    ``baseline_s``) stays under ``max_incoherence``. A skeleton the model puts on a cartoon, a
    door or a tree rescales its head and shoulders from frame to frame; a real or a broken body
    does not (breakage moves limbs, not the eyes against the shoulders)."""
    o = {**DEFAULTS, **options}
    points, _ = _pixels(landmarks, image_size, o["min_visibility"])
    vis = np.nan_to_num(landmarks[..., 3], nan=0.0)
    present = ~np.isnan(landmarks[:, 0, 0])
    win = _frames(o["judge_window_s"], fps, 3) | 1
    sure = (np.minimum(vis[:, L_SHOULDER], vis[:, R_SHOULDER]) >= o["vis_high"]) & present
    share = _rolling_mean(sure.astype(float), win)
    torso_ok = share >= o["judge_min_share"]
    k = _frames(o["baseline_s"], fps)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eye = np.log(np.linalg.norm(points[:, 2, :2] - points[:, 5, :2], axis=-1))
        log_sw = np.log(np.linalg.norm(points[:, L_SHOULDER, :2] - points[:, R_SHOULDER, :2], axis=-1))
    change = np.abs(log_eye - _shift(log_eye, k)) + np.abs(log_sw - _shift(log_sw, k))
    change = np.where(np.isfinite(change), change, np.nan)
    coherent = np.nan_to_num(_rolling(change, win), nan=np.inf) <= o["max_incoherence"]
    judged = present & torso_ok & coherent
    n = max(int(present.sum()), 1)
    why = {"torso_unsure": float((present & ~torso_ok).sum() / n), "incoherent": float((present & torso_ok & ~coherent).sum() / n)}
    return judged, why


def _rolling_mean(x: np.ndarray, win: int) -> np.ndarray:
    """Centred rolling mean of ``(T,)`` over ``win`` frames (shorter at the ends)."""
    # Cumulative sums, not np.convolve(..., "same"): that returns max(T, win) values, so a clip
    # shorter than the window came back one frame too long.
    half = win // 2
    csum = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    t = np.arange(len(x))
    lo, hi = np.clip(t - half, 0, len(x)), np.clip(t + half + 1, 0, len(x))
    return (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)


def _inside(landmarks: np.ndarray, margin: float) -> np.ndarray:
    """``(T, 33)`` bool: the landmark lies inside the frame by ``margin`` (a share of its size)."""
    x, y = landmarks[..., 0], landmarks[..., 1]
    return (x > margin) & (x < 1 - margin) & (y > margin) & (y < 1 - margin)


def _pixels(landmarks: np.ndarray, image_size: tuple[int, int], min_visibility: float, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in pixels ``(T, 33, 3)`` and ``(T, 33)`` visible (confident and inside the frame)."""
    if landmarks.ndim != 3 or landmarks.shape[1:] != (33, 4):
        raise ShapeError("pose landmarks", "(T, 33, 4)", landmarks.shape)
    w, h = image_size
    points = landmarks[..., :3].astype(np.float64) * np.array([w, h, w])
    visible = (np.nan_to_num(landmarks[..., 3], nan=0.0) >= min_visibility) & _inside(landmarks, margin)
    return points, visible


def motion_checks(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, limb_mask: np.ndarray | None = None,
                  **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per-check, per-part severities ``{check: {part: (T,) float}}``, 1.0 at the threshold, NaN
    where undefined. ``landmarks``: ``(T, 33, 4)`` MediaPipe pose; ``image_size``: ``(W, H)``;
    ``limb_mask``: optional ``(T, 8, S)`` person-mask profile along the limb bones
    (:attr:`evalkit.PoseTrack.limb_mask`); without it the ``cut`` check has no parts."""
    o = {**DEFAULTS, **options}
    points, visible = _pixels(landmarks, image_size, o["min_visibility"], o["frame_margin"])
    # A pose model's own glitches (a joint or a left/right label flipping for a frame or two and
    # back) are shorter than min_duration_s: a running median over that time removes them and
    # keeps anything that lasts.
    despike = max(3, _frames(o["min_duration_s"], fps) | 1)
    visible = _rolling(visible.astype(float), despike) > 0.5
    xy = np.where(visible[..., None], _rolling(np.where(visible[..., None], points[..., :2], np.nan), despike), np.nan)
    # judge only a credible body (judged_frames) and the limbs the model sees for most of it
    present, _ = judged_frames(landmarks, image_size, fps, **o)
    visible &= present[:, None]
    xy = np.where(present[:, None, None], xy, np.nan)
    limb_ok = _limbs_judged(visible, present, o["limb_min_share"])
    size = body_size(xy, visible, fps, o["size_window_s"])
    seg = segment_ids(xy, present & ~np.isnan(size), size, o["cut_jump"])
    sustain = _frames(o["min_duration_s"], fps) | 1
    out: dict[str, dict[str, np.ndarray]] = {c: {} for c in CHECKS}
    mid = 0.5 * (xy[:, L_SHOULDER] + xy[:, R_SHOULDER])
    rel = (xy - mid[:, None]) / size[:, None, None]  # (T, 33, 2) body frame, in sizes

    # Length checks (stretch, jump) need confident joints: limbs the model is unsure of (out of
    # shot, under clothes, arms folded up to a camera) wander at visibilities under vis_high
    vis_smooth = _rolling(np.nan_to_num(landmarks[..., 3], nan=0.0), despike)
    sure = visible & (vis_smooth >= o["vis_high"])
    # Where a joint is matters less than how long a bone is: speed, acceleration and teleport take
    # joints from vis_track (an arm thrown in front of the body reads 0.6-0.8); the teleport test's
    # own spread term keeps a wandering unsure joint from counting as a jump
    tracked = visible & (vis_smooth >= o["vis_track"])

    # stretch: bone length against its own clip reference and human proportions. A limb bone
    # must also lengthen its whole limb (shoulder-elbow-wrist, hip-knee-ankle): an elbow the
    # model slides along the arm (its least reliable joint) lengthens one bone and shortens the
    # other, while a stretched bone lengthens the limb too
    def stretch_ratio(length: np.ndarray, nominal: float) -> np.ndarray:
        ref = np.full_like(length, np.nan)
        for s in np.unique(seg[seg >= 0]):  # one reference per shot: a handful of segments
            vals = length[seg == s]
            if np.isfinite(vals).sum() >= sustain:
                ref[seg == s] = max(float(np.nanpercentile(vals, 60)), o["reference_floor"] * nominal)
        return _rolling(length / ref, hold)

    hold = _frames(o["stretch_hold_s"], fps, 3) | 1
    bone_len = lambda a, b: np.linalg.norm(xy[:, a] - xy[:, b], axis=-1) / size  # noqa: E731
    # each limb as a whole (root-hinge-tip, its two bones summed), against its own reference: the
    # bones' stretch gate, the whole-limb stretch and the jump's limb step all read it
    chains, chain_log_ratio, limb_names = {}, {}, dict(zip((j[1] for j in HINGES.values()), LIMB_PARTS))
    for root, hinge, tip in HINGES.values():
        ok = sure[:, root] & sure[:, hinge] & sure[:, tip]
        chains[hinge] = np.where(ok, bone_len(root, hinge) + bone_len(hinge, tip), np.nan)
        chain_nominal = sum(n for x, y, n in BONES.values() if {x, y} <= {root, hinge, tip})
        chain_log_ratio[hinge] = np.log(stretch_ratio(chains[hinge], chain_nominal))
    bones = {**BONES, "neck": (NOSE, -1, 0.55)}
    for name, (a, b, nominal) in bones.items():
        if b < 0:
            ok = sure[:, a] & visible[:, L_SHOULDER] & visible[:, R_SHOULDER]
            length = np.linalg.norm(xy[:, a] - mid, axis=-1) / size
            out["stretch"][name] = np.log(stretch_ratio(np.where(ok, length, np.nan), nominal)) / math.log(o["neck_ratio"])
            continue
        hinge = next(j[1] for j in HINGES.values() if a in j and b in j)
        ok = np.isfinite(chains[hinge])  # the limb's three joints confident
        sev_bone = np.log(stretch_ratio(np.where(ok, bone_len(a, b), np.nan), nominal)) / math.log(o["stretch_ratio"])
        out["stretch"][name] = np.fmin(sev_bone, chain_log_ratio[hinge] / math.log(o["chain_ratio"]))
    # the whole limb longer than its own by limb_stretch_ratio (version 8), whichever bone grew: the
    # model often spreads one stretched bone over both by sliding the elbow, so that neither bone
    # reaches stretch_ratio. The sum of the two bones does not change when the elbow bends.
    for hinge, limb in limb_names.items():
        out["stretch"][limb] = chain_log_ratio[hinge] / math.log(o["limb_stretch_ratio"])

    # speed / accel / teleport of joints relative to the shoulders
    k = _frames(o["baseline_s"], fps)
    dt = k / fps
    both = lambda j, kk: tracked[:, j] & _shift(tracked[:, j].astype(float), kk).astype(bool) & _same_segment(seg, kk)  # noqa: E731
    win = _frames(o["teleport_window_s"], fps, 3)  # a line needs three frames a side
    in_shot = _same_segment(seg, win) & _same_segment(seg, -(win - 1))
    for name, j in JOINTS.items():
        p = rel[:, j]
        speed = np.linalg.norm(p - _shift(p, k), axis=-1) / dt
        out["speed"][name] = np.where(both(j, k), speed / o["max_speed"], np.nan)
        acc = np.linalg.norm(_shift(p, -k) - 2 * p + _shift(p, k), axis=-1) / dt**2
        acc_ok = both(j, k) & both(j, -k)
        out["accel"][name] = _rolling(np.where(acc_ok, acc / o["max_accel"], np.nan), 3)
        # teleport: the joint's path before and after a frame, each a straight line over the window,
        # disagree at the frame. Lines, not levels: a fast smooth swing moves a lot inside the
        # windows, and levels (medians) read that as a jump (version 4 flagged 27 % of clean
        # dances tracked perfectly, datasets/motion_eval.py --oracle)
        step, spread = _jump_linear(np.where(tracked[:, j, None], p, np.nan), win)
        out["teleport"][name] = np.where(in_shot, step / (o["teleport_step"] + o["teleport_spread"] * spread), np.nan)

    # jump: a limb bone's length (log) changes in a step and keeps its new length. Turning a limb
    # out of the image plane shortens it gradually, with the spread inside the windows to match;
    # a pose model that meets a stretched or detached forearm typically reports the wrist
    # elsewhere (often closer to the elbow, reading the long limb as foreshortened) from one
    # frame to the next. Confident joints only: unsure ones wander (a person holding a camera)
    jump_win = _frames(o["jump_window_s"], fps, 3)  # a spread needs three frames a side
    jump_shot = _same_segment(seg, jump_win) & _same_segment(seg, -(jump_win - 1))
    # the whole limb must step too (by a share of the bone's step in log): an elbow the model
    # slides along the arm lengthens one bone and shortens the other, a stretched or detached
    # bone lengthens the limb. One step series per limb, shared by its two bones.
    limb_sev = {}
    for hinge, chain in chains.items():
        cstep, cspread = _jump(np.log(np.maximum(chain, 1e-3))[:, None], jump_win)
        limb_sev[hinge] = np.where(jump_shot, cstep / (o["jump_chain_share"] * math.log(o["jump_ratio"]) + 3.0 * cspread), np.nan)
    for name, (a, b, _) in BONES.items():
        log_len = np.where(sure[:, a] & sure[:, b], np.log(np.maximum(bone_len(a, b), 1e-3)), np.nan)
        step, spread = _jump(log_len[:, None], jump_win)
        sev = np.where(jump_shot, step / (math.log(o["jump_ratio"]) + 3.0 * spread), np.nan)
        hinge = next(j[1] for j in HINGES.values() if a in j and b in j)
        sev = np.fmin(sev, limb_sev[hinge])
        out["jump"][name] = _rolling(sev, _frames(o["jump_persist_s"], fps) | 1)

    # swap: left and right exchange (plainly, or mirrored about the body axis) and keep the exchange.
    # Each joint's straight line over the frames before t, carried over the next min_duration_s,
    # against where the joints are then, with the labels kept and crossed: an exchange is both
    # sides sitting where the other side's line goes. Lines, not the frame before: a dancer's arms
    # move between frames at 8-12 fps as far as a swap moves them. In the body's own frame (u along
    # the shoulders, v across them) a body mirrored by the image or about its own axis has u negated
    # and v kept, whatever the tilt of the shoulders. Positions before the running median, which
    # mixes the frames on both sides of the exchange.
    raw = np.where(visible[..., None], points[..., :2], np.nan)
    axis = raw[:, L_SHOULDER] - raw[:, R_SHOULDER]
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
    axis = _rolling(axis, _frames(o["swap_axis_s"], fps, 3) | 1)  # the shoulders' own jitter turns the frame
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
    across = np.stack([-axis[:, 1], axis[:, 0]], -1)
    raw_rel = (raw - 0.5 * (raw[:, L_SHOULDER] + raw[:, R_SHOULDER])[:, None]) / size[:, None, None]
    in_body = np.stack([np.sum(raw_rel * axis[:, None], -1), np.sum(raw_rel * across[:, None], -1)], -1)  # (T, 33, 2)
    swap_win = _frames(o["swap_window_s"], fps, 2)
    swap_hold = _frames(o["min_duration_s"], fps, 2)
    swap_shot = _same_segment(seg, swap_win) & _same_segment(seg, -(swap_hold - 1))
    for name, (jl, jl2) in LIMBS.items():
        joints = [jl, jl2, jl + 1, jl2 + 1]
        q = in_body[:, joints]
        # a flip shorter than min_duration_s is the pose model's (real footage has them): its frames
        # are used neither as history nor as a swap
        ok = tracked[:, joints].all(-1) & ~_short_flips(q, swap_hold, o["swap_gain"])
        out["swap"][name] = _swap_severity(q, ok, swap_shot, swap_win, swap_hold, o["swap_gain"])

    # dropout: a limb vanishes while the shoulders stay, inside the frame, and comes back
    inside = _inside(landmarks, o["frame_margin"])
    torso_seen = visible[:, L_SHOULDER] & visible[:, R_SHOULDER]
    vis = np.nan_to_num(landmarks[..., 3], nan=0.0)
    # two frames at least: a limb missing from one frame at 8 fps is a flicker, not a dropout
    lo, hi = _frames(o["dropout_min_s"], fps, 2), _frames(o["dropout_max_s"], fps)
    for name, (j1, j2) in LIMB_PARTS.items():
        gone = (np.minimum(vis[:, j1], vis[:, j2]) < o["vis_low"]) & torso_seen & inside[:, j2]
        seen = (np.minimum(vis[:, j1], vis[:, j2]) >= o["vis_high"]) & inside[:, j2]
        seen = _rolling(seen.astype(float), lo | 1, "min") > 0.5  # seen steadily, not a flicker
        sev = np.zeros(len(vis))
        edges = np.flatnonzero(np.diff(np.r_[0, gone.astype(np.int8), 0]))
        for s, e in zip(edges[::2], edges[1::2]):  # runs of a handful per clip, not frames
            if lo <= e - s <= hi and s > 0 and e < len(vis) and seen[max(0, s - hi) : s].any() and seen[e : e + hi].any() \
                    and seg[s - 1] == seg[min(e, len(vis) - 1)] >= 0:
                sev[s:e] = 1.0 + (e - s) / max(hi, 1)
        out["dropout"][name] = np.where(present, sev, np.nan)

    # angle: hinge folded beyond the human range
    for name, (a, b, c) in HINGES.items():
        u, v = points[:, a] - points[:, b], points[:, c] - points[:, b]
        cos = np.sum(u * v, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-6)
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        ok = visible[:, a] & visible[:, b] & visible[:, c]
        sev = np.where(ok, o["min_joint_angle_deg"] / np.maximum(angle, 1e-3), np.nan)
        out["angle"][name] = _rolling(sev, sustain)
    # cut: the person mask shows background across the middle of a bone whose root end (elbow,
    # knee) is person, held over cut_hold_s: a limb cut off and carried away from its joint (a
    # forearm floating off the elbow). The pose alone reads that only as a length step, often not
    # even that: the model keeps the forearm at its usual length. The far end may be background:
    # the model often puts the wrist in the gap.
    if limb_mask is not None:
        out["cut"] = _cut_severity(limb_mask, points, sure, size, fps, o)
    # not judged: frames without a credible body, limbs the model invents (rarely visible)
    for check, parts in out.items():
        for part, sev in parts.items():
            keep = present & limb_ok[_limb_of(part)]
            parts[part] = np.where(keep, sev, np.nan)
    return out


def _cut_severity(limb_mask: np.ndarray, points: np.ndarray, sure: np.ndarray, size: np.ndarray, fps: float,
                  o: dict[str, Any]) -> dict[str, np.ndarray]:
    """``{bone: (T,)}`` severity of the ``cut`` check from the mask profile ``(T, 8, S)``: the share
    of the bone's middle (0.15-0.85 of its length) where the mask is background, over ``cut_gap``,
    where both joints are confident (``sure``), the bone is at least ``cut_min_length`` body sizes
    long and its root end (the elbow of a forearm) is person; held for ``cut_hold_s`` (>= 2 frames).
    Bones: ``cut_bones``."""
    from evalkit.landmarks import LIMB_MASK_BONES

    t, n_bones, n_samples = limb_mask.shape
    if t != len(points) or n_bones != len(LIMB_MASK_BONES):
        raise ShapeError("pose limb_mask", f"({len(points)}, {len(LIMB_MASK_BONES)}, S)", limb_mask.shape)
    along = np.round(np.linspace(0.0, 1.0, n_samples), 6)  # 17 / 20 is not quite 0.85
    middle, root = (along >= 0.15) & (along <= 0.85), along < 0.15
    prof = limb_mask.astype(np.float32)
    hold = _frames(o["cut_hold_s"], fps, 2)
    out = {}
    for name in o["cut_bones"]:
        a, b, _ = BONES[name]
        p = prof[:, LIMB_MASK_BONES.index((a, b))]
        known = np.isfinite(p[:, middle])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gap = (np.nan_to_num(p[:, middle], nan=1.0) < 0.5).sum(-1) / np.maximum(known.sum(-1), 1)
            attached = np.nanmax(p[:, root], -1) >= 0.5
        length = np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=-1) / size
        ok = sure[:, a] & sure[:, b] & (known.sum(-1) * 3 >= 2 * middle.sum()) & (length >= o["cut_min_length"])
        if o["cut_root"]:
            ok &= attached
        sev = np.where(ok, gap / o["cut_gap"], np.nan)
        held = _held(np.nan_to_num(sev, nan=0.0), hold)
        out[name] = np.where(np.isfinite(sev) | (held > 0), held, np.nan)
    return out


def _held(x: np.ndarray, k: int) -> np.ndarray:
    """``(T,)``: at each frame the largest level that ``x`` ``(T,)`` keeps over some ``k``-frame run
    containing the frame (a morphological opening); 0 where no run fits."""
    t = len(x)
    if t < k:
        return np.zeros_like(x)
    low = sliding_window_view(x, k).min(-1)  # (T - k + 1,): runs starting at i
    padded = np.concatenate([np.full(k - 1, -np.inf), low, np.full(k - 1, -np.inf)])
    return np.maximum(sliding_window_view(padded, k).max(-1), 0.0)


def _limb_of(part: str) -> str:
    """The limb a part belongs to (``left_arm`` ...), ``"arms"`` / ``"legs"`` for swaps, else ``"body"``."""
    if part in ("arms", "legs"):
        return part
    side = part.split("_")[0]
    if any(w in part for w in ("arm", "elbow", "wrist")):
        return f"{side}_arm"
    if any(w in part for w in ("thigh", "shin", "knee", "ankle", "leg")):
        return f"{side}_leg"
    return "body"


def _limbs_judged(visible: np.ndarray, judged: np.ndarray, min_share: float) -> dict[str, bool]:
    """Whether each limb is seen (all its joints visible) in ``min_share`` of the judged frames.
    A limb the model invents (out of shot, under an upper-body subject) is not judged."""
    n = max(int(judged.sum()), 1)
    ok = {name: bool((visible[:, [j1 - 2, j1, j2]].all(-1) & judged).sum() / n >= min_share)
          for name, (j1, j2) in LIMB_PARTS.items()}
    return {**ok, "arms": ok["left_arm"] and ok["right_arm"], "legs": ok["left_leg"] and ok["right_leg"], "body": True}


def motion_series(checks: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """``(T,)`` worst severity over all checks and parts (NaN where nothing was defined)."""
    stack = np.stack([s for parts in checks.values() for s in parts.values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(stack, axis=0).astype(np.float32)


def motion_breakage(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, limb_mask: np.ndarray | None = None,
                    **options: Any) -> tuple[float, np.ndarray]:
    """Functional form: ``(score, series (T,))``; score = worst per-frame severity (>= 1: broken).
    ``limb_mask``: optional ``(T, 8, S)`` person-mask profile (:attr:`evalkit.PoseTrack.limb_mask`)."""
    series = motion_series(motion_checks(landmarks, image_size, fps, limb_mask=limb_mask, **options))
    score = float(np.nanmax(series)) if np.isfinite(series).any() else float("nan")
    return score, series


class MotionDetector(BaseDetector):
    name: ClassVar[str] = "motion"
    failure_mode: ClassVar[str] = "dance-motion breakage: stretched, detached, teleported or swapped limbs"
    requires: ClassVar[frozenset[str]] = frozenset({"pose"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "9"
    score_meaning: ClassVar[str] = (
        "Worst kinematic violation of the tracked person as a multiple of its threshold "
        "(bone stretch, bone-length jump, joint speed, jump-and-stay, left/right swap, limb dropout, joint angle, "
        "limb cut off in the person mask); "
        ">= 1 is broken."
    )
    default_config: ClassVar[dict[str, Any]] = dict(DEFAULTS)

    def score(self, inputs: VideoInputs) -> DetectorResult:
        video, pose = inputs.video, inputs.pose
        t = video.num_frames
        if pose is None or not isinstance(pose, PoseTrack):
            return DetectorResult.skipped("no pose track", t)
        if pose.landmarks.shape[0] != t:
            raise ShapeError(f"{video.path} pose landmarks", f"({t}, 33, 4)", pose.landmarks.shape)
        if not pose.present.any():
            return DetectorResult.skipped("no person found", t)
        opts = {k: v for k, v in self.config.items() if k != "threshold"}
        checks = motion_checks(pose.landmarks, pose.image_size, video.fps, limb_mask=pose.limb_mask, **opts)
        series = motion_series(checks)
        judged, why = judged_frames(pose.landmarks, pose.image_size, video.fps, **opts)
        judge_stats = {"person_frames": int(pose.present.sum()), "judged_frames": int(judged.sum()),
                       "not_judged": {k: round(v, 3) for k, v in why.items()}}
        if not np.isfinite(series).any():
            result = DetectorResult.skipped("not judged: no credible body in the pose track (torso unsure or "
                                            "head and shoulders incoherent)", t)
            result.stats.update(judge_stats)
            return result
        threshold = float(self.config["threshold"])
        gap = _frames(self.config["merge_gap_s"], video.fps)
        events: list[Event] = []
        fired: dict[str, int] = {}
        for check, parts in checks.items():
            for part, sev in parts.items():
                found = series_events(sev, threshold, gap, f"{check}:{part}")
                if found:
                    events.extend(found)
                    fired[check] = fired.get(check, 0) + len(found)
        events.sort(key=lambda e: (e.start, -e.score))
        score = float(np.nanmax(series))
        stats = {
            "checks_fired": sorted(fired),
            "events_per_check": fired,
            "worst_per_check": {c: _nanmax(p) for c, p in checks.items()},
            **judge_stats,
            "fps": float(video.fps),
        }
        return DetectorResult(score=score, flagged=score >= threshold, series=series, events=events, stats=stats)


def _nanmax(parts: dict[str, np.ndarray]) -> float | None:
    vals = np.concatenate([v[np.isfinite(v)] for v in parts.values()] or [np.empty(0)])
    return float(vals.max()) if vals.size else None

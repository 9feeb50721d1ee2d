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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from evalkit._types import DetectorResult, Event, PoseTrack, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._config import with_options
from evalkit.detectors._events import series_events
from evalkit.errors import DetectorConfigError, ShapeError

log = logging.getLogger(__name__)

NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 11, 12, 23, 24
# name: (joint a, joint b, human length in shoulder widths, a generous mean over people)
BONES: dict[str, tuple[int, int, float]] = {
    "left_upper_arm": (11, 13, 0.85), "right_upper_arm": (12, 14, 0.85),
    "left_forearm": (13, 15, 0.70), "right_forearm": (14, 16, 0.70),
    "left_thigh": (23, 25, 1.10), "right_thigh": (24, 26, 1.10),
    "left_shin": (25, 27, 1.05), "right_shin": (26, 28, 1.05),
}
NECK_NOMINAL = 0.55  # nose to the shoulders' midpoint, in shoulder widths
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

@dataclass(frozen=True)
class MotionConfig:
    """The motion detector's options, the one definition of their defaults (:class:`MotionDetector`
    and the functional forms :func:`motion_checks`, :func:`judged_frames`, :func:`motion_breakage`).
    Times are in seconds and lengths in body sizes, so that frame rates and resolutions compare."""

    threshold: float = 1.0  # a severity >= this is broken (every check's severity is 1.0 at its own threshold)
    min_visibility: float = 0.6  # a joint below this visibility is not seen
    size_window_s: float = 1.0  # rolling median of the body size
    # a pose model's own glitches are shorter: the positions' running median, the shortest swap
    # and the hold of the angle check
    min_duration_s: float = 0.15
    baseline_s: float = 0.1  # time step of speed and acceleration (and of the judge's head-shoulder change)
    stretch_ratio: float = 1.3  # a bone this much longer than its own reference is stretched...
    chain_ratio: float = 1.15  # ...while its whole limb is this much longer than its own
    limb_stretch_ratio: float = 1.2  # a whole limb this much longer than its own, whichever bone grew
    stretch_hold_s: float = 0.3  # stretch is a rolling median over this long
    neck_ratio: float = 1.4  # nose-to-shoulders stretch
    max_speed: float = 16.0  # body sizes per second, relative to the shoulders
    max_accel: float = 360.0  # body sizes per second squared
    teleport_window_s: float = 0.5  # the straight lines before and after a frame
    teleport_step: float = 0.6  # body sizes the two lines disagree by at the frame...
    teleport_spread: float = 2.5  # ...plus this many times how far the joint strays from them
    jump_window_s: float = 0.3  # the medians of a bone's length before and after a frame
    jump_ratio: float = 1.3  # a bone's length steps by this (either way) and keeps it
    jump_persist_s: float = 0.1  # the step must hold this long
    jump_chain_share: float = 0.5  # the whole limb must step by this share of the bone's step (in log)
    reference_floor: float = 0.7  # a bone's own reference is at least this times its human proportion
    swap_gain: float = 0.4  # body sizes by which the crossed labels must explain both sides better
    swap_window_s: float = 0.1  # the straight line of each joint before a frame
    swap_axis_s: float = 0.1  # running median of the shoulder axis (the body frame of the swap)
    cut_gap: float = 0.2  # share of a bone's middle showing background in the person mask
    cut_hold_s: float = 0.1
    cut_min_length: float = 0.2  # body sizes: shorter bones are not judged
    cut_root: bool = True  # the bone's root end (elbow, knee) must be person
    cut_bones: tuple[str, ...] = ("left_forearm", "right_forearm", "left_shin", "right_shin")
    vis_low: float = 0.3  # a limb under this visibility has gone (dropout)
    vis_high: float = 0.8  # confident joints: length checks, the judge's shoulders, a limb seen
    vis_track: float = 0.6  # joints for speed, acceleration, teleport and swap
    dropout_min_s: float = 0.25
    dropout_max_s: float = 1.5
    frame_margin: float = 0.03  # a joint this close to the frame's edge (share of its size) is not seen
    min_joint_angle_deg: float = 20.0  # an elbow or knee folded tighter than this
    cut_jump: float = 1.5  # a whole-body jump of this many body sizes between frames is a shot cut
    merge_gap_s: float = 0.25  # events of one check and part closer than this merge
    judge_window_s: float = 1.0  # window of the judge's credible-body test
    judge_min_share: float = 0.5  # both shoulders confident in this share of the window
    max_incoherence: float = 0.25  # median log change of eye distance plus shoulder width over baseline_s
    limb_min_share: float = 0.4  # a limb seen in less of the judged frames is not judged
    # Version 10: a second, independent pose model ("movenet-lightning", "movenet-thunder"; "" for
    # MediaPipe alone) and how the two are combined (two_model_rule): "confirmed" (version 10: a
    # check counts only as far as the other model also reads breakage on the same limb within
    # confirm_tolerance_s) or "weighted" (version 11, weighted_checks): a check counts as far as the
    # other model supports it, by its own evidence on the limb (in full from support_full for the
    # first model's readings, support_full_second for the second's: MoveNet is the jumpier on real
    # people and the thresholds are MediaPipe's) and by seeing the limb where this one does (in
    # full within agree_within body sizes, not at all from disagree_at)
    second_model: str = ""
    confirm_tolerance_s: float = 0.15
    two_model_rule: str = "weighted"
    support_full: float = 0.5
    support_full_second: float = 0.7
    agree_within: float = 1.0
    disagree_at: float = 2.0


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


def body_size(points: np.ndarray, visible: np.ndarray, fps: float, window_s: float = MotionConfig.size_window_s) -> np.ndarray:
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


def pose_jitter(landmarks: np.ndarray, image_size: tuple[int, int], fps: float,
                min_visibility: float = MotionConfig.min_visibility) -> dict[str, float]:
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


def judged_frames(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, config: MotionConfig | None = None,
                  **options: Any) -> tuple[np.ndarray, dict[str, float]]:
    """``(T,)`` bool: frames where the pose evidence is credible enough to judge a body, and why
    not elsewhere (``{"torso_unsure": share, "incoherent": share}`` of the person's frames).
    ``landmarks``: ``(T, 33, 4)``; ``config`` and ``options`` (overrides of its fields) as for
    :func:`motion_checks`.

    Credible: over ``judge_window_s`` around a frame, both shoulders are confidently visible
    (>= ``vis_high``) in at least ``judge_min_share`` of the frames, and the head and shoulders
    hold together: the median change of the eye distance and the shoulder width (in log, over
    ``baseline_s``) stays under ``max_incoherence``. A skeleton the model puts on a cartoon, a
    door or a tree rescales its head and shoulders from frame to frame; a real or a broken body
    does not (breakage moves limbs, not the eyes against the shoulders)."""
    o = with_options(MotionConfig, config, options, "judged_frames")
    points, _ = _pixels(landmarks, image_size, o.min_visibility)
    vis = np.nan_to_num(landmarks[..., 3], nan=0.0)
    present = ~np.isnan(landmarks[:, 0, 0])
    win = _frames(o.judge_window_s, fps, 3) | 1
    sure = (np.minimum(vis[:, L_SHOULDER], vis[:, R_SHOULDER]) >= o.vis_high) & present
    share = _rolling_mean(sure.astype(float), win)
    torso_ok = share >= o.judge_min_share
    k = _frames(o.baseline_s, fps)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eye = np.log(np.linalg.norm(points[:, 2, :2] - points[:, 5, :2], axis=-1))
        log_sw = np.log(np.linalg.norm(points[:, L_SHOULDER, :2] - points[:, R_SHOULDER, :2], axis=-1))
    change = np.abs(log_eye - _shift(log_eye, k)) + np.abs(log_sw - _shift(log_sw, k))
    change = np.where(np.isfinite(change), change, np.nan)
    coherent = np.nan_to_num(_rolling(change, win), nan=np.inf) <= o.max_incoherence
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
                  config: MotionConfig | None = None, *, judged: np.ndarray | None = None,
                  **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per-check, per-part severities ``{check: {part: (T,) float}}``, 1.0 at the threshold, NaN
    where undefined or not judged.

    Args:
        landmarks: ``(T, 33, 4)`` MediaPipe pose (x, y normalised, z, visibility).
        image_size: ``(W, H)`` of the frames.
        fps: frame rate.
        limb_mask: optional ``(T, 8, S)`` person-mask profile along the limb bones
            (:attr:`evalkit.PoseTrack.limb_mask`); without it the ``cut`` check has no parts.
        config: the detector's options (None: the defaults of :class:`MotionConfig`).
        judged: ``(T,)`` bool, the frames :func:`judged_frames` finds credible, when the caller
            has them already (None: computed here).
        options: overrides of fields of ``config`` by name.

    Raises:
        ShapeError: ``landmarks``, ``limb_mask`` or ``judged`` is not shaped as above.
        DetectorConfigError: an option is not a field of :class:`MotionConfig`.
    """
    o = with_options(MotionConfig, config, options, "motion_checks")
    if judged is None:
        judged, _ = judged_frames(landmarks, image_size, fps, o)
    judged = np.asarray(judged, bool)
    if judged.shape != (len(landmarks),):
        raise ShapeError("motion_checks judged", f"({len(landmarks)},)", judged.shape)
    return _checks_on(_prepare_pose(landmarks, image_size, fps, judged, o), landmarks, fps, limb_mask, o)


def _checks_on(pose: _Pose, landmarks: np.ndarray, fps: float, limb_mask: np.ndarray | None,
               o: MotionConfig) -> dict[str, dict[str, np.ndarray]]:
    """:func:`motion_checks` on a track already prepared (:func:`_prepare_pose`)."""
    limbs = _limb_lengths(pose)
    out: dict[str, dict[str, np.ndarray]] = {c: {} for c in CHECKS}
    out["stretch"] = _stretch_check(pose, limbs, fps, o)
    out["speed"], out["accel"], out["teleport"] = _joint_motion_checks(pose, fps, o)
    out["jump"] = _jump_check(pose, limbs, fps, o)
    out["swap"] = _swap_check(pose, fps, o)
    out["dropout"] = _dropout_check(landmarks, pose, fps, o)
    out["angle"] = _angle_check(pose, o)
    if limb_mask is not None:
        out["cut"] = _cut_check(limb_mask, pose, fps, o)
    return _judged_only(out, pose)


@dataclass(frozen=True, eq=False)
class _Pose:
    """One pose track made ready for the checks (:func:`_prepare_pose`). ``T`` frames, 33 joints.

    Attributes:
        points: ``(T, 33, 3)`` float64 raw landmarks in pixels.
        visible: ``(T, 33)`` bool: confident, inside the frame, steadily so (despiked), on judged frames.
        xy: ``(T, 33, 2)`` despiked positions in pixels, NaN where not ``visible``.
        judged: ``(T,)`` bool, the frames judged (:func:`judged_frames`).
        limb_ok: ``{limb: bool}`` limbs seen in enough of the judged frames (:func:`_limbs_judged`).
        size: ``(T,)`` body size in pixels (:func:`body_size`).
        seg: ``(T,)`` int shot segment (:func:`segment_ids`), -1 where absent.
        mid: ``(T, 2)`` the shoulders' midpoint in pixels.
        rel: ``(T, 33, 2)`` positions relative to ``mid``, in body sizes.
        sure: ``(T, 33)`` bool, joints confident enough to measure a length (``vis_high``).
        tracked: ``(T, 33)`` bool, joints confident enough to follow (``vis_track``).
        sustain: frames of ``min_duration_s`` (odd).
    """

    points: np.ndarray
    visible: np.ndarray
    xy: np.ndarray
    judged: np.ndarray
    limb_ok: dict[str, bool]
    size: np.ndarray
    seg: np.ndarray
    mid: np.ndarray
    rel: np.ndarray
    sure: np.ndarray
    tracked: np.ndarray
    sustain: int


def _prepare_pose(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, judged: np.ndarray,
                  o: MotionConfig) -> _Pose:
    """``(T, 33, 4)`` landmarks and ``(T,)`` judged frames -> :class:`_Pose`: pixels,
    despiked positions and visibility, body size, shot segments and the confident joints."""
    points, visible = _pixels(landmarks, image_size, o.min_visibility, o.frame_margin)
    # A pose model's own glitches (a joint or a left/right label flipping for a frame or two and
    # back) are shorter than min_duration_s: a running median over that time removes them and
    # keeps anything that lasts.
    despike = max(3, _frames(o.min_duration_s, fps) | 1)
    visible = _rolling(visible.astype(float), despike) > 0.5
    xy = np.where(visible[..., None], _rolling(np.where(visible[..., None], points[..., :2], np.nan), despike), np.nan)
    # judge only a credible body (judged_frames) and the limbs the model sees for most of it
    visible &= judged[:, None]
    xy = np.where(judged[:, None, None], xy, np.nan)
    limb_ok = _limbs_judged(visible, judged, o.limb_min_share)
    size = body_size(xy, visible, fps, o.size_window_s)
    seg = segment_ids(xy, judged & ~np.isnan(size), size, o.cut_jump)
    mid = 0.5 * (xy[:, L_SHOULDER] + xy[:, R_SHOULDER])
    rel = (xy - mid[:, None]) / size[:, None, None]  # (T, 33, 2) body frame, in sizes
    # Length checks (stretch, jump) need confident joints: limbs the model is unsure of (out of
    # shot, under clothes, arms folded up to a camera) wander at visibilities under vis_high
    vis_smooth = _rolling(np.nan_to_num(landmarks[..., 3], nan=0.0), despike)
    sure = visible & (vis_smooth >= o.vis_high)
    # Where a joint is matters less than how long a bone is: speed, acceleration and teleport take
    # joints from vis_track (an arm thrown in front of the body reads 0.6-0.8); the teleport test's
    # own spread term keeps a wandering unsure joint from counting as a jump
    tracked = visible & (vis_smooth >= o.vis_track)
    return _Pose(points=points, visible=visible, xy=xy, judged=judged, limb_ok=limb_ok, size=size, seg=seg,
                 mid=mid, rel=rel, sure=sure, tracked=tracked, sustain=_frames(o.min_duration_s, fps) | 1)


def _bone_length(pose: _Pose, a: int, b: int) -> np.ndarray:
    """``(T,)`` distance between joints ``a`` and ``b``, in body sizes."""
    return np.linalg.norm(pose.xy[:, a] - pose.xy[:, b], axis=-1) / pose.size


def _hinge_of(a: int, b: int) -> int:
    """The hinge joint (elbow, knee) of the limb that bone ``a``-``b`` belongs to."""
    return next(j[1] for j in HINGES.values() if a in j and b in j)


def _limb_lengths(pose: _Pose) -> dict[int, np.ndarray]:
    """``{hinge: (T,)}`` each limb as a whole (root-hinge-tip, its two bones summed, in body
    sizes) where its three joints are confident, NaN elsewhere. The bones' stretch gate, the
    whole-limb stretch and the jump's limb step all read it."""
    limbs = {}
    for root, hinge, tip in HINGES.values():
        ok = pose.sure[:, root] & pose.sure[:, hinge] & pose.sure[:, tip]
        limbs[hinge] = np.where(ok, _bone_length(pose, root, hinge) + _bone_length(pose, hinge, tip), np.nan)
    return limbs


def _own_ratio(length: np.ndarray, nominal: float, pose: _Pose, hold: int, reference_floor: float) -> np.ndarray:
    """``(T,)`` a length ``(T,)`` (body sizes) over its own reference, a rolling median over
    ``hold`` frames. The reference is its 60th percentile in each shot (segments with at least
    ``pose.sustain`` measured frames), at least ``reference_floor`` x the human ``nominal``."""
    seg = pose.seg
    ref = np.full_like(length, np.nan)
    for s in np.unique(seg[seg >= 0]):  # one reference per shot: a handful of segments
        vals = length[seg == s]
        if np.isfinite(vals).sum() >= pose.sustain:
            ref[seg == s] = max(float(np.nanpercentile(vals, 60)), reference_floor * nominal)
    return _rolling(length / ref, hold)


def _stretch_check(pose: _Pose, limbs: dict[int, np.ndarray], fps: float, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{part: (T,)}`` severity of the ``stretch`` check for each bone, the neck and each whole
    limb, from :func:`_limb_lengths` ``limbs``.

    A bone's length against its own clip reference and human proportions. A limb bone must also
    lengthen its whole limb (shoulder-elbow-wrist, hip-knee-ankle): an elbow the model slides
    along the arm (its least reliable joint) lengthens one bone and shortens the other, while a
    stretched bone lengthens the limb too."""
    hold = _frames(o.stretch_hold_s, fps, 3) | 1
    limb_log_ratio = {}
    for root, hinge, tip in HINGES.values():
        limb_nominal = sum(n for x, y, n in BONES.values() if {x, y} <= {root, hinge, tip})
        limb_log_ratio[hinge] = np.log(_own_ratio(limbs[hinge], limb_nominal, pose, hold, o.reference_floor))
    out = {}
    for name, (a, b, nominal) in BONES.items():
        ok = np.isfinite(limbs[_hinge_of(a, b)])  # the limb's three joints confident
        length = np.where(ok, _bone_length(pose, a, b), np.nan)
        sev_bone = np.log(_own_ratio(length, nominal, pose, hold, o.reference_floor)) / math.log(o.stretch_ratio)
        out[name] = np.fmin(sev_bone, limb_log_ratio[_hinge_of(a, b)] / math.log(o.chain_ratio))
    ok = pose.sure[:, NOSE] & pose.visible[:, L_SHOULDER] & pose.visible[:, R_SHOULDER]
    neck = np.where(ok, np.linalg.norm(pose.xy[:, NOSE] - pose.mid, axis=-1) / pose.size, np.nan)
    out["neck"] = np.log(_own_ratio(neck, NECK_NOMINAL, pose, hold, o.reference_floor)) / math.log(o.neck_ratio)
    # the whole limb longer than its own by limb_stretch_ratio (version 8), whichever bone grew: the
    # model often spreads one stretched bone over both by sliding the elbow, so that neither bone
    # reaches stretch_ratio. The sum of the two bones does not change when the elbow bends.
    for hinge, limb in zip(limb_log_ratio, LIMB_PARTS):
        out[limb] = limb_log_ratio[hinge] / math.log(o.limb_stretch_ratio)
    return out


def _followed(pose: _Pose, j: int, k: int) -> np.ndarray:
    """``(T,)`` bool: joint ``j`` is tracked at ``t`` and ``t - k``, in one shot."""
    tracked = pose.tracked[:, j]
    return tracked & _shift(tracked.astype(float), k).astype(bool) & _same_segment(pose.seg, k)


def _joint_motion_checks(pose: _Pose, fps: float, o: MotionConfig) -> tuple[dict[str, np.ndarray], ...]:
    """``({joint: (T,)}, ...)`` severities of the ``speed``, ``accel`` and ``teleport`` checks of
    each of :data:`JOINTS`, relative to the shoulders (``pose.rel``, body sizes)."""
    speed_out, accel_out, teleport_out = {}, {}, {}
    k = _frames(o.baseline_s, fps)
    dt = k / fps
    win = _frames(o.teleport_window_s, fps, 3)  # a line needs three frames a side
    in_shot = _same_segment(pose.seg, win) & _same_segment(pose.seg, -(win - 1))
    for name, j in JOINTS.items():
        p = pose.rel[:, j]
        speed = np.linalg.norm(p - _shift(p, k), axis=-1) / dt
        speed_out[name] = np.where(_followed(pose, j, k), speed / o.max_speed, np.nan)
        acc = np.linalg.norm(_shift(p, -k) - 2 * p + _shift(p, k), axis=-1) / dt**2
        acc_ok = _followed(pose, j, k) & _followed(pose, j, -k)
        accel_out[name] = _rolling(np.where(acc_ok, acc / o.max_accel, np.nan), 3)
        # teleport: the joint's path before and after a frame, each a straight line over the window,
        # disagree at the frame. Lines, not levels: a fast smooth swing moves a lot inside the
        # windows, and levels (medians) read that as a jump (version 4 flagged 27 % of clean
        # dances tracked perfectly, datasets/motion_eval.py --oracle)
        step, spread = _jump_linear(np.where(pose.tracked[:, j, None], p, np.nan), win)
        teleport_out[name] = np.where(in_shot, step / (o.teleport_step + o.teleport_spread * spread), np.nan)
    return speed_out, accel_out, teleport_out


def _jump_check(pose: _Pose, limbs: dict[int, np.ndarray], fps: float, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{bone: (T,)}`` severity of the ``jump`` check, from :func:`_limb_lengths` ``limbs``.

    A limb bone's length (log) changes in a step and keeps its new length. Turning a limb out of
    the image plane shortens it gradually, with the spread inside the windows to match; a pose
    model that meets a stretched or detached forearm typically reports the wrist elsewhere (often
    closer to the elbow, reading the long limb as foreshortened) from one frame to the next.
    Confident joints only: unsure ones wander (a person holding a camera)."""
    jump_win = _frames(o.jump_window_s, fps, 3)  # a spread needs three frames a side
    jump_shot = _same_segment(pose.seg, jump_win) & _same_segment(pose.seg, -(jump_win - 1))
    # the whole limb must step too (by a share of the bone's step in log): an elbow the model
    # slides along the arm lengthens one bone and shortens the other, a stretched or detached
    # bone lengthens the limb. One step series per limb, shared by its two bones.
    limb_sev = {}
    for hinge, limb in limbs.items():
        cstep, cspread = _jump(np.log(np.maximum(limb, 1e-3))[:, None], jump_win)
        limb_sev[hinge] = np.where(jump_shot, cstep / (o.jump_chain_share * math.log(o.jump_ratio) + 3.0 * cspread), np.nan)
    out = {}
    for name, (a, b, _) in BONES.items():
        log_len = np.where(pose.sure[:, a] & pose.sure[:, b], np.log(np.maximum(_bone_length(pose, a, b), 1e-3)), np.nan)
        step, spread = _jump(log_len[:, None], jump_win)
        sev = np.where(jump_shot, step / (math.log(o.jump_ratio) + 3.0 * spread), np.nan)
        sev = np.fmin(sev, limb_sev[_hinge_of(a, b)])
        out[name] = _rolling(sev, _frames(o.jump_persist_s, fps) | 1)
    return out


def _body_frame_positions(pose: _Pose, fps: float, o: MotionConfig) -> np.ndarray:
    """``(T, 33, 2)`` raw positions in the body's own frame (u along the shoulders, v across
    them), in body sizes from the shoulders' midpoint: a body mirrored by the image or about its
    own axis has u negated and v kept, whatever the tilt of the shoulders. Positions before the
    running median, which mixes the frames on both sides of an exchange."""
    raw = np.where(pose.visible[..., None], pose.points[..., :2], np.nan)
    axis = raw[:, L_SHOULDER] - raw[:, R_SHOULDER]
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
    axis = _rolling(axis, _frames(o.swap_axis_s, fps, 3) | 1)  # the shoulders' own jitter turns the frame
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
    across = np.stack([-axis[:, 1], axis[:, 0]], -1)
    raw_rel = (raw - 0.5 * (raw[:, L_SHOULDER] + raw[:, R_SHOULDER])[:, None]) / pose.size[:, None, None]
    return np.stack([np.sum(raw_rel * axis[:, None], -1), np.sum(raw_rel * across[:, None], -1)], -1)


def _swap_check(pose: _Pose, fps: float, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{"arms" | "legs": (T,)}`` severity of the ``swap`` check.

    Left and right exchange (plainly, or mirrored about the body axis) and keep the exchange.
    Each joint's straight line over the frames before t, carried over the next min_duration_s,
    against where the joints are then, with the labels kept and crossed: an exchange is both
    sides sitting where the other side's line goes. Lines, not the frame before: a dancer's arms
    move between frames at 8-12 fps as far as a swap moves them. Measured in the body's own
    frame (:func:`_body_frame_positions`)."""
    in_body = _body_frame_positions(pose, fps, o)
    swap_win = _frames(o.swap_window_s, fps, 2)
    swap_hold = _frames(o.min_duration_s, fps, 2)
    swap_shot = _same_segment(pose.seg, swap_win) & _same_segment(pose.seg, -(swap_hold - 1))
    out = {}
    for name, (jl, jl2) in LIMBS.items():
        joints = [jl, jl2, jl + 1, jl2 + 1]
        q = in_body[:, joints]
        # a flip shorter than min_duration_s is the pose model's (real footage has them): its frames
        # are used neither as history nor as a swap
        ok = pose.tracked[:, joints].all(-1) & ~_short_flips(q, swap_hold, o.swap_gain)
        out[name] = _swap_severity(q, ok, swap_shot, swap_win, swap_hold, o.swap_gain)
    return out


def _dropout_check(landmarks: np.ndarray, pose: _Pose, fps: float, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{limb: (T,)}`` severity of the ``dropout`` check from ``(T, 33, 4)`` landmarks: a limb
    vanishes (visibility < ``vis_low``) for ``dropout_min_s``..``dropout_max_s`` while the
    shoulders stay, inside the frame, and comes back; 1 + its length as a share of the longest."""
    inside = _inside(landmarks, o.frame_margin)
    torso_seen = pose.visible[:, L_SHOULDER] & pose.visible[:, R_SHOULDER]
    vis = np.nan_to_num(landmarks[..., 3], nan=0.0)
    seg = pose.seg
    # two frames at least: a limb missing from one frame at 8 fps is a flicker, not a dropout
    lo, hi = _frames(o.dropout_min_s, fps, 2), _frames(o.dropout_max_s, fps)
    out = {}
    for name, (j1, j2) in LIMB_PARTS.items():
        gone = (np.minimum(vis[:, j1], vis[:, j2]) < o.vis_low) & torso_seen & inside[:, j2]
        seen = (np.minimum(vis[:, j1], vis[:, j2]) >= o.vis_high) & inside[:, j2]
        seen = _rolling(seen.astype(float), lo | 1, "min") > 0.5  # seen steadily, not a flicker
        sev = np.zeros(len(vis))
        edges = np.flatnonzero(np.diff(np.r_[0, gone.astype(np.int8), 0]))
        for s, e in zip(edges[::2], edges[1::2]):  # runs of a handful per clip, not frames
            if lo <= e - s <= hi and s > 0 and e < len(vis) and seen[max(0, s - hi) : s].any() and seen[e : e + hi].any() \
                    and seg[s - 1] == seg[min(e, len(vis) - 1)] >= 0:
                sev[s:e] = 1.0 + (e - s) / max(hi, 1)
        out[name] = np.where(pose.judged, sev, np.nan)
    return out


def _angle_check(pose: _Pose, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{hinge: (T,)}`` severity of the ``angle`` check: an elbow or knee folded tighter than
    ``min_joint_angle_deg`` (3-D interior angle), sustained over ``pose.sustain`` frames. A track
    without depth (z all NaN: MoveNet's, version 10) is not checked: in 2-D an arm pointing at
    the camera reads as folded."""
    out = {}
    if np.isnan(pose.points[..., 2]).all():
        return {name: np.full(len(pose.points), np.nan) for name in HINGES}
    for name, (a, b, c) in HINGES.items():
        u, v = pose.points[:, a] - pose.points[:, b], pose.points[:, c] - pose.points[:, b]
        cos = np.sum(u * v, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-6)
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        ok = pose.visible[:, a] & pose.visible[:, b] & pose.visible[:, c]
        sev = np.where(ok, o.min_joint_angle_deg / np.maximum(angle, 1e-3), np.nan)
        out[name] = _rolling(sev, pose.sustain)
    return out


def _cut_check(limb_mask: np.ndarray, pose: _Pose, fps: float, o: MotionConfig) -> dict[str, np.ndarray]:
    """``{bone: (T,)}`` severity of the ``cut`` check from the mask profile ``(T, 8, S)``: the share
    of the bone's middle (0.15-0.85 of its length) where the mask is background, over ``cut_gap``,
    where both joints are confident (``pose.sure``), the bone is at least ``cut_min_length`` body sizes
    long and its root end (the elbow of a forearm) is person; held for ``cut_hold_s`` (>= 2 frames).
    Bones: ``cut_bones``."""
    from evalkit.landmarks import LIMB_MASK_BONES

    points, sure, size = pose.points, pose.sure, pose.size
    t, n_bones, n_samples = limb_mask.shape
    if t != len(points) or n_bones != len(LIMB_MASK_BONES):
        raise ShapeError("pose limb_mask", f"({len(points)}, {len(LIMB_MASK_BONES)}, S)", limb_mask.shape)
    along = np.round(np.linspace(0.0, 1.0, n_samples), 6)  # 17 / 20 is not quite 0.85
    middle, root = (along >= 0.15) & (along <= 0.85), along < 0.15
    prof = limb_mask.astype(np.float32)
    hold = _frames(o.cut_hold_s, fps, 2)
    out = {}
    for name in o.cut_bones:
        a, b, _ = BONES[name]
        p = prof[:, LIMB_MASK_BONES.index((a, b))]
        known = np.isfinite(p[:, middle])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gap = (np.nan_to_num(p[:, middle], nan=1.0) < 0.5).sum(-1) / np.maximum(known.sum(-1), 1)
            attached = np.nanmax(p[:, root], -1) >= 0.5
        length = np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=-1) / size
        ok = sure[:, a] & sure[:, b] & (known.sum(-1) * 3 >= 2 * middle.sum()) & (length >= o.cut_min_length)
        if o.cut_root:
            ok &= attached
        sev = np.where(ok, gap / o.cut_gap, np.nan)
        held = _held(np.nan_to_num(sev, nan=0.0), hold)
        out[name] = np.where(np.isfinite(sev) | (held > 0), held, np.nan)
    return out


def _judged_only(checks: dict[str, dict[str, np.ndarray]], pose: _Pose) -> dict[str, dict[str, np.ndarray]]:
    """``checks`` ``{check: {part: (T,)}}`` with NaN where nothing is judged: frames without a
    credible body, and limbs the model invents (rarely visible)."""
    for parts in checks.values():
        for part, sev in parts.items():
            keep = pose.judged & pose.limb_ok[_limb_of(part)]
            parts[part] = np.where(keep, sev, np.nan)
    return checks


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


def _limb_evidence(checks: dict[str, dict[str, np.ndarray]], win: int) -> dict[str, np.ndarray]:
    """Per limb (``left_arm`` ..., ``arms``, ``legs``, ``body``) the worst severity of any check on
    it within ``win`` frames either side ``(T,)``; ``body`` and the pairs take every part they
    cover. NaN where the model judged nothing there."""
    pairs = {"arms": ("left_arm", "right_arm"), "legs": ("left_leg", "right_leg")}
    worst: dict[str, list[np.ndarray]] = {}
    for parts in checks.values():
        for part, sev in parts.items():
            limb = _limb_of(part)
            names = {limb, "body", *pairs.get(limb, ())}
            names |= {pair for pair, members in pairs.items() if limb in members}
            for name in names:
                worst.setdefault(name, []).append(sev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {limb: _rolling(np.nanmax(np.stack(sevs), 0), 2 * win + 1, "max") for limb, sevs in worst.items()}


def confirmed_checks(first: dict[str, dict[str, np.ndarray]], second: dict[str, dict[str, np.ndarray]], fps: float,
                     config: MotionConfig | None = None, **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """The two-model rule (version 10): checks ``{check: {part: (T,)}}`` of two independent pose
    models' tracks of one video -> one set of the same shape, where each model's severity is
    capped by the other's evidence on the same limb (its worst check there within
    ``confirm_tolerance_s``): ``min(own, other)``, the larger over the two models. So a check
    fires only where both models read breakage on that limb at that time; breakage one model
    alone reads (the other sees the limb as sound, or nothing) stays under the threshold: tracker
    uncertainty (:func:`tracker_uncertain`). The two need not agree on the check: a forearm one
    model reads as stretched the other may read as a jump, and ``cut`` (MediaPipe's mask only) is
    confirmed by the other model's evidence on its limb."""
    o = with_options(MotionConfig, config, options, "confirmed_checks")
    win = _frames(o.confirm_tolerance_s, fps, 1)
    evidence = (_limb_evidence(second, win), _limb_evidence(first, win))
    out: dict[str, dict[str, np.ndarray]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for own, other in zip((first, second), evidence):
            for check, parts in own.items():
                for part, sev in parts.items():
                    weight = other.get(_limb_of(part))
                    if weight is None:
                        continue
                    both = np.minimum(sev, weight)  # NaN where either model judged nothing
                    prev = out.setdefault(check, {}).get(part)
                    out[check][part] = both if prev is None else np.fmax(prev, both)
    _fill_parts(out, first, second)
    return out


# joints whose positions the two models must agree on, per limb of :func:`_limb_of`
_LIMB_JOINTS: dict[str, tuple[int, ...]] = {
    "left_arm": (11, 13, 15), "right_arm": (12, 14, 16), "left_leg": (23, 25, 27), "right_leg": (24, 26, 28),
    "arms": (11, 13, 15, 12, 14, 16), "legs": (23, 25, 27, 24, 26, 28), "body": (NOSE, L_SHOULDER, R_SHOULDER),
}


def limb_disagreement(first: _Pose, second: _Pose) -> dict[str, np.ndarray]:
    """Where two models put each limb: per limb (``left_arm`` ..., ``arms``, ``legs``, ``body``)
    ``(T,)`` the largest distance between the two tracks' joints of it, each joint relative to its
    own track's shoulders in its own body size (so a model that reads the whole person a little
    larger or shifted still agrees). NaN where either model does not see all the limb's joints."""
    apart = np.linalg.norm(first.rel - second.rel, axis=-1)  # (T, 33), NaN where either is unseen
    out = {}
    for limb, joints in _LIMB_JOINTS.items():
        d = apart[:, list(joints)]
        out[limb] = np.where(np.isnan(d).any(-1), np.nan, np.nan_to_num(d).max(-1))
    return out


def weighted_checks(first: dict[str, dict[str, np.ndarray]], second: dict[str, dict[str, np.ndarray]],
                    disagreement: dict[str, np.ndarray], fps: float, config: MotionConfig | None = None,
                    **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """The weighted two-model rule (version 11): checks ``{check: {part: (T,)}}`` of two
    independent pose models' tracks of one video, and where they put each limb
    (:func:`limb_disagreement`, ``{limb: (T,)}`` in body sizes) -> one set of the same shape. Each
    model's severity is scaled by the other model's support on the same limb within
    ``confirm_tolerance_s``: ``own x evidence x agreement``, the larger over the two models, where

    - ``evidence`` = the other model's worst check on the limb / ``support_full`` (for readings of
      ``first``; ``support_full_second`` for readings of ``second``), at most 1: the other model
      sees the limb doing something out of the ordinary, if under its own thresholds;
    - ``agreement`` = 1 while the two tracks' joints of the limb lie within ``agree_within`` body
      sizes of each other, falling to 0 at ``disagree_at``: where the models disagree about where
      the limb is, a reading is the trackers' (a glitch of one of them), not the body's.

    Either is 0 where the other model does not judge the limb. Readings held back are tracker
    uncertainty (:func:`tracker_uncertain`)."""
    o = with_options(MotionConfig, config, options, "weighted_checks")
    win = _frames(o.confirm_tolerance_s, fps, 1)
    evidence = (_limb_evidence(second, win), _limb_evidence(first, win))
    agreement = {}
    for limb, apart in disagreement.items():
        worst = _rolling(apart, 2 * win + 1, "max")  # NaN only where no frame near measures it
        agreement[limb] = np.nan_to_num(np.clip((o.disagree_at - worst) / (o.disagree_at - o.agree_within), 0.0, 1.0))
    out: dict[str, dict[str, np.ndarray]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for own, other, full in zip((first, second), evidence, (o.support_full, o.support_full_second)):
            for check, parts in own.items():
                for part, sev in parts.items():
                    limb = _limb_of(part)
                    if limb not in other:
                        continue
                    support = np.nan_to_num(np.clip(other[limb] / full, 0.0, 1.0)) * agreement.get(limb, 0.0)
                    weighted = sev * support  # NaN where this model judged nothing
                    prev = out.setdefault(check, {}).get(part)
                    out[check][part] = weighted if prev is None else np.fmax(prev, weighted)
    _fill_parts(out, first, second)
    return out


def _fill_parts(out: dict[str, dict[str, np.ndarray]], first: dict[str, dict[str, np.ndarray]],
                second: dict[str, dict[str, np.ndarray]]) -> None:
    """Every part of either model in ``out``, NaN where the rule could not weigh it."""
    t = next(len(sev) for parts in (*first.values(), *second.values()) for sev in parts.values())
    for check, parts in (*first.items(), *second.items()):
        for part in parts:
            out.setdefault(check, {}).setdefault(part, np.full(t, np.nan))


def tracker_uncertain(checks: dict[str, dict[str, np.ndarray]], confirmed: dict[str, dict[str, np.ndarray]],
                      model: str, threshold: float, gap: int,
                      disagreement: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Where one model's check fires but the two-model rule does not: ``[{model, kind, start, end,
    score}]`` (the frames are the model's, reported, not flagged); with ``disagreement``
    (:func:`limb_disagreement`) also ``apart``: how far apart the two models put the limb there
    (body sizes, None where the other model does not see it)."""
    out = []
    for check, parts in checks.items():
        for part, sev in parts.items():
            agreed = confirmed.get(check, {}).get(part)
            lone = np.where(np.nan_to_num(agreed, nan=0.0) >= threshold, np.nan, sev) if agreed is not None else sev
            for e in series_events(lone, threshold, gap, f"{check}:{part}"):
                entry = {"model": model, "kind": e.kind, "start": e.start, "end": e.end, "score": round(e.score, 3)}
                if disagreement is not None:
                    apart = disagreement.get(_limb_of(part), np.full(len(sev), np.nan))[e.start : e.end + 1]
                    entry["apart"] = round(float(np.nanmax(apart)), 3) if np.isfinite(apart).any() else None
                out.append(entry)
    return sorted(out, key=lambda u: (u["start"], -u["score"]))


def motion_series(checks: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """``(T,)`` worst severity over all checks and parts (NaN where nothing was defined)."""
    stack = np.stack([s for parts in checks.values() for s in parts.values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(stack, axis=0).astype(np.float32)


def motion_breakage(landmarks: np.ndarray, image_size: tuple[int, int], fps: float, limb_mask: np.ndarray | None = None,
                    config: MotionConfig | None = None, **options: Any) -> tuple[float, np.ndarray]:
    """Functional form: ``(score, series (T,))``; score = worst per-frame severity (>= 1: broken).
    ``landmarks`` ``(T, 33, 4)``; ``limb_mask``: optional ``(T, 8, S)`` person-mask profile
    (:attr:`evalkit.PoseTrack.limb_mask`); ``config`` and ``options`` as for :func:`motion_checks`."""
    o = with_options(MotionConfig, config, options, "motion_breakage")
    series = motion_series(motion_checks(landmarks, image_size, fps, limb_mask, o))
    score = float(np.nanmax(series)) if np.isfinite(series).any() else float("nan")
    return score, series


class MotionDetector(BaseDetector):
    name: ClassVar[str] = "motion"
    failure_mode: ClassVar[str] = "dance-motion breakage: stretched, detached, teleported or swapped limbs"
    requires: ClassVar[frozenset[str]] = frozenset({"pose"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "12"
    units: ClassVar[str] = "multiples of the check threshold"
    score_meaning: ClassVar[str] = (
        "Worst kinematic violation of the tracked person as a multiple of its threshold "
        "(bone stretch, bone-length jump, joint speed, jump-and-stay, left/right swap, limb dropout, joint angle, "
        "limb cut off in the person mask); "
        ">= 1 is broken."
    )
    config_type: ClassVar[type] = MotionConfig
    options: MotionConfig

    def score(self, inputs: VideoInputs) -> DetectorResult:
        video, pose = inputs.video, inputs.pose
        t = video.num_frames
        if pose is None or not isinstance(pose, PoseTrack):
            return DetectorResult.skipped("no pose track", t)
        if pose.landmarks.shape[0] != t:
            raise ShapeError(f"{video.path} pose landmarks", f"({t}, 33, 4)", pose.landmarks.shape)
        second = None
        if self.options.second_model:
            crops, second = second_pose_tracks(video.frames, self.options.second_model, video.fps, self.device)
            if crops is not None:  # a small person in a wide shot: MediaPipe judges them on MoveNet's crops
                pose = crops
        return self.score_tracks(video.fps, t, pose, second)

    def score_tracks(self, fps: float, t: int, pose: PoseTrack, second: PoseTrack | None = None) -> DetectorResult:
        """Score ``pose`` (MediaPipe's track ``(T, 33, 4)``) alone, or with ``second`` (another
        model's track of the same frames) under the two-model rule ``two_model_rule``
        (:func:`weighted_checks`, or version 10's :func:`confirmed_checks`)."""
        if not pose.present.any():
            return DetectorResult.skipped("no person found", t)
        o = self.options
        judged, why = judged_frames(pose.landmarks, pose.image_size, fps, o)
        prepared = _prepare_pose(pose.landmarks, pose.image_size, fps, judged, o)
        checks = _checks_on(prepared, pose.landmarks, fps, pose.limb_mask, o)
        judge_stats = {"person_frames": int(pose.present.sum()), "judged_frames": int(judged.sum()),
                       "not_judged": {k: round(v, 3) for k, v in why.items()}}
        threshold = float(o.threshold)
        gap = _frames(o.merge_gap_s, fps)
        uncertain: list[dict[str, Any]] = []
        if second is not None:
            if second.landmarks.shape[0] != t:
                raise ShapeError("second pose landmarks", f"({t}, 33, 4)", second.landmarks.shape)
            judged2, _ = judged_frames(second.landmarks, second.image_size, fps, o)
            prepared2 = _prepare_pose(second.landmarks, second.image_size, fps, judged2, o)
            checks2 = _checks_on(prepared2, second.landmarks, fps, second.limb_mask, o)
            judge_stats["judged_frames_second"] = int(judged2.sum())
            apart = limb_disagreement(prepared, prepared2)
            if o.two_model_rule not in ("weighted", "confirmed"):
                raise DetectorConfigError(f"motion: expected two_model_rule 'weighted' or 'confirmed', got {o.two_model_rule!r}")
            if o.two_model_rule == "weighted":
                both = weighted_checks(checks, checks2, apart, fps, o)
            else:
                both = confirmed_checks(checks, checks2, fps, o)
            uncertain = (tracker_uncertain(checks, both, "first", threshold, gap, apart)
                         + tracker_uncertain(checks2, both, "second", threshold, gap, apart))
            checks = both
        series = motion_series(checks)
        if not np.isfinite(series).any():
            result = DetectorResult.skipped("not judged: no credible body in the pose track (torso unsure or "
                                            "head and shoulders incoherent)", t)
            result.stats.update(judge_stats)
            return result
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
            "fps": float(fps),
        }
        if second is not None:
            stats["tracker_uncertain"] = uncertain
            stats["uncertain_frames"] = int(len({f for u in uncertain for f in range(u["start"], u["end"] + 1)}))
        return DetectorResult(score=score, flagged=score >= threshold, series=series, events=events, stats=stats)


def second_pose_tracks(frames, model: str, fps: float, device=None) -> tuple[PoseTrack | None, PoseTrack]:
    """MoveNet (``model``: ``"movenet-lightning"`` or ``"movenet-thunder"``) run once over a video's
    frames ``(T, 3, H, W)`` uint8 (:class:`evalkit.Video`'s layout), and what its keypoints give:
    ``(crops, second)``. ``second`` is MoveNet's own track. ``crops`` is MediaPipe's pose run on
    crops around the person MoveNet found (:func:`evalkit.movenet.pose_on_person_crops`) where that
    person is small (a wide shot, where MediaPipe's own detector finds nobody); None otherwise."""
    from evalkit.movenet import movenet_keypoints, movenet_pose_track, pose_on_person_crops

    family, _, variant = model.partition("-")
    if family != "movenet" or variant not in ("lightning", "thunder"):
        raise ValueError(f"expected second_model 'movenet-lightning' or 'movenet-thunder', got {model!r}")
    import torch

    hwc = torch.as_tensor(frames).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    keypoints = movenet_keypoints(hwc, variant, None if device is None else str(device))
    second = movenet_pose_track(hwc, variant, keypoints=keypoints)
    crops = pose_on_person_crops(hwc, keypoints, fps=float(fps))
    return crops, second


def _nanmax(parts: dict[str, np.ndarray]) -> float | None:
    vals = np.concatenate([v[np.isfinite(v)] for v in parts.values()] or [np.empty(0)])
    return float(vals.max()) if vals.size else None

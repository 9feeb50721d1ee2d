"""Missing blinks: too few eye blinks for the time a face is seen.

Generated faces often stare: real people blink 8-29 times a minute (see ``REFERENCE.md``),
so a face seen frontally for long enough without a blink is improbable.

Per frame and face, eye openness is the eye aspect ratio (EAR, Soukupova & Cech 2016) of both
eyes from the 3-D mesh, divided by the face's own rolling open-eye baseline (a median over a few
seconds), so that head pose, face size and eye shape cancel out. A blink is a dip below
``closed_ratio`` that starts and ends with the eye open (above ``open_ratio``) and lasts
80-900 ms; durations are judged from whole frames, so a blink is 1-2 frames at 8 fps.
Eyes kept shut for longer than a blink (EAR under half the face's open level for > 0.9 s:
crying, laughing, looking down, a hand over the eyes) are not judged: they count neither as face
time nor as the open eye around a blink, and are reported as ``long_closure`` events.

Whether too few blinks were seen is a probability: human blink rates vary between people and
situations, modelled as a gamma distribution over rates (shape 10, scale 1.7 per minute: mean
17 per minute, 95 % of rates in 8.2-29, spanning the resting and conversation ranges in
``REFERENCE.md``); counts given a rate are Poisson, so the number of blinks in ``T`` seconds is
negative binomial. Below 20 fps a frame can miss a blink's closed phase, so the model's rate
is thinned by :func:`detection_probability`. The score is ``-log10 P(this few blinks or
fewer)``. A face is judged only when even zero blinks would be improbable (``P(0) <= 5 %``:
12.3 s of frontal face at >= 20 fps, 24.7 s at 10 fps); shorter clips say "too short to judge"
and are never flagged. Pool many clips of a checkpoint with :func:`pooled_blink_rate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from evalkit._types import DetectorResult, Event, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._config import with_options
from evalkit.detectors.face_mesh import (
    check_landmarks,
    eye_aspect_ratio,
    face_pixels,
    face_size,
    frames_for,
    is_frontal,
    quiet_nanmedian,
    quiet_nanquantile,
    rolling_nanmedian,
    runs,
)
from evalkit.errors import ShapeError

# Population model of blink rates (per minute): gamma(shape, scale).
RATE_SHAPE = 10.0
RATE_SCALE_PER_MIN = 1.7
HUMAN_RATE_RANGE_PER_MIN = (8.2, 29.0)  # its 2.5 % and 97.5 % quantiles


@dataclass(frozen=True)
class BlinkConfig:
    """The blink detector's options, the one definition of their defaults (:class:`BlinkDetector`
    and the functional forms :func:`eye_openness`, :func:`find_blinks`, :func:`blink_analysis`)."""

    closed_ratio: float = 0.6  # openness below this fraction of the open baseline: eye closing
    open_ratio: float = 0.85  # above this: eye open again (the blink's ends)
    min_blink_s: float = 0.08
    # How long the eye stays below closed_ratio in a blink: below 1/closed_phase_s fps a frame
    # can miss it (carphone's blinks: about one frame at 30 fps; see docs/face.md).
    closed_phase_s: float = 0.05
    max_blink_s: float = 0.9
    baseline_s: float = 3.0  # rolling window of the open-eye baseline
    # Eyes shut for longer than max_blink_s (crying, laughing, looking down, a hand over the
    # eyes) are not judged: EAR below shut_ratio of the face's open level (its clip-wide
    # open_quantile of EAR) for that long. Those frames count neither as face time nor as
    # the open eye around a blink. None: keep them.
    shut_ratio: float | None = 0.5
    open_quantile: float = 0.9
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 35.0
    min_face_px: float = 5.0  # RMS size of the rigid face points; smaller faces give no usable eyes
    rate_shape: float = RATE_SHAPE
    rate_scale_per_min: float = RATE_SCALE_PER_MIN
    # Flag when P(this few blinks) <= 10**-threshold (1.3: 5 %); also sets the time to judge.
    threshold: float = -math.log10(0.05)


def eye_openness(points: np.ndarray, fps: float, config: BlinkConfig | None = None, **options: Any) -> np.ndarray:
    """Eye openness relative to the face's own open baseline.

    Args:
        points: ``(T, F, 478, 3)`` face-mesh landmarks in pixels (NaN where no face).
        fps: frame rate.
        config: the detector's options (None: the defaults of :class:`BlinkConfig`); this reads
            ``baseline_s``, the face gates (``max_yaw_deg``, ``max_pitch_deg``, ``min_face_px``)
            and the shut-eye gate: frames in a run longer than ``max_blink_s`` whose EAR stays
            below ``shut_ratio`` of the face's open level (its ``open_quantile`` of EAR over the
            clip) are eyes kept shut, not judged (NaN).
        options: overrides of fields of ``config`` by name.

    Returns:
        ``(T, F)`` float32, about 1 with eyes open and near 0 closed; NaN where the face is
        absent, turned away, too small, or its eyes are kept shut.
    """
    return _openness(points, fps, with_options(BlinkConfig, config, options, "eye_openness"))[0]


def _openness(points: np.ndarray, fps: float, cfg: BlinkConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`eye_openness` and ``(T, F)`` the depth (``1 - EAR / open level``) of eyes kept
    shut, NaN elsewhere."""
    points = check_landmarks(points, "eye_openness points")
    ear = eye_aspect_ratio(points).mean(axis=-1)  # both eyes: a wink is no blink
    usable = is_frontal(points, cfg.max_yaw_deg, cfg.max_pitch_deg)
    with np.errstate(invalid="ignore"):
        usable &= face_size(points) >= cfg.min_face_px
    ear = np.where(usable, ear, np.nan).astype(np.float32)
    kept_shut = np.zeros(ear.shape, bool)
    depth = np.full(ear.shape, np.nan, np.float32)
    if cfg.shut_ratio is not None:
        open_level = quiet_nanquantile(ear, cfg.open_quantile, axis=0)  # (F,)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = ear / open_level[None]
            shut = relative < cfg.shut_ratio
        for slot in range(ear.shape[1]):
            for start, end in runs(shut[:, slot]):
                if (end - start) / fps > cfg.max_blink_s:  # n frames: at least (n-1)/fps s
                    kept_shut[start : end + 1, slot] = True
        depth = np.where(kept_shut, 1.0 - relative, np.nan).astype(np.float32)
        ear = np.where(kept_shut, np.nan, ear)
    window = frames_for(cfg.baseline_s, fps, minimum=3)
    baseline = rolling_nanmedian(ear, window, min_valid=max(2, window // 3))
    # Where the window sees too little of the face, the face's median over the whole clip.
    fallback = quiet_nanmedian(ear, axis=0)
    baseline = np.where(np.isfinite(baseline), baseline, fallback)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ear / baseline).astype(np.float32), depth


def find_blinks(
    openness: np.ndarray, fps: float, config: BlinkConfig | None = None, **options: Any
) -> tuple[list[tuple[int, int, float]], list[tuple[int, int, float]]]:
    """Blinks and long closures in one face's ``(T,)`` openness series.

    A dip counts when its frames below ``open_ratio`` include one below ``closed_ratio`` and
    the frames just before and after it show the eye open. ``n`` frames below ``open_ratio``
    mean a closure lasting ``(n-1)/fps`` to ``(n+1)/fps`` seconds: a blink when that interval
    meets ``[min_blink_s, max_blink_s]``, a long closure when it lies above it. ``config`` and
    ``options`` (overrides of its fields) as for :func:`eye_openness`.

    Returns:
        ``(blinks, long_closures)``, each a list of ``(start, end, depth)`` with inclusive
        frame indices and ``depth = 1 - min openness``.
    """
    cfg = with_options(BlinkConfig, config, options, "find_blinks")
    openness = np.asarray(openness, np.float32)
    if openness.ndim != 1:
        raise ShapeError("find_blinks openness", "(T,)", openness.shape)
    valid = np.isfinite(openness)
    low = np.where(valid, openness, np.inf) < cfg.open_ratio
    blinks, closures = [], []
    for start, end in runs(low):
        if start == 0 or end == len(openness) - 1 or not (valid[start - 1] and valid[end + 1]):
            continue  # the eye was not seen open on both sides
        lowest = float(openness[start : end + 1].min())
        if lowest >= cfg.closed_ratio:
            continue
        n = end - start + 1
        if (n + 1) / fps < cfg.min_blink_s:
            continue
        (closures if (n - 1) / fps > cfg.max_blink_s else blinks).append((start, end, 1.0 - lowest))
    return blinks, closures


def prob_at_most(count: int, seconds: float, shape: float = RATE_SHAPE, scale_per_min: float = RATE_SCALE_PER_MIN) -> float:
    """``P(N <= count)`` blinks in ``seconds`` for a person drawn from the human rate model
    (negative binomial: gamma(shape, scale) rates per minute, Poisson counts)."""
    if seconds <= 0:
        return 1.0
    p = 1.0 / (1.0 + scale_per_min * seconds / 60.0)
    log_p0 = shape * math.log(p)
    total, log_term = 0.0, log_p0
    for n in range(count + 1):
        if n:
            log_term += math.log((n + shape - 1) / n) + math.log1p(-p)
        total += math.exp(log_term)
    return min(1.0, total)


def seconds_to_judge(alpha: float = 0.05, shape: float = RATE_SHAPE, scale_per_min: float = RATE_SCALE_PER_MIN) -> float:
    """Frontal face time after which zero blinks has probability ``alpha`` (12.3 s by default)."""
    return 60.0 / scale_per_min * (alpha ** (-1.0 / shape) - 1.0)


def rate_interval(count: float, seconds: float, confidence: float = 0.95, dispersion: float = 1.0) -> tuple[float, float]:
    """Exact (Garwood) Poisson interval of a rate, in blinks per minute. ``dispersion`` > 1
    widens it for counts that vary more than Poisson (quasi-Poisson: counts and time / dispersion)."""
    from scipy.stats import chi2

    if seconds <= 0:
        return float("nan"), float("nan")
    minutes = seconds / 60.0 / dispersion
    n = count / dispersion
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if n <= 0 else chi2.ppf(tail, 2 * n) / 2.0
    high = chi2.ppf(1.0 - tail, 2 * n + 2) / 2.0
    return float(low / minutes), float(high / minutes)


def detection_probability(fps: float, closed_phase_s: float = BlinkConfig.closed_phase_s) -> float:
    """Chance that a frame lands in a blink's closed phase: ``min(1, fps * closed_phase_s)``."""
    return float(min(1.0, fps * closed_phase_s))


def blink_analysis(points: np.ndarray, fps: float, config: BlinkConfig | None = None, **options: Any) -> dict[str, Any]:
    """The detector's functional form over one video's landmarks.

    Args:
        points: ``(T, F, 478, 3)`` face-mesh landmarks in pixels.
        fps: frame rate.
        config: the detector's options (None: the defaults of :class:`BlinkConfig`).
        options: overrides of fields of ``config`` by name.

    Returns:
        dict with ``openness`` ``(T, F)``, ``faces`` (one dict per face slot seen: blinks,
        closures, face_seconds, p_this_few, judged, flagged), ``score``, ``seconds_to_judge``
        and ``detection_probability``.
    """
    cfg = with_options(BlinkConfig, config, options, "blink_analysis")
    alpha = 10.0 ** -cfg.threshold
    openness, shut_depth = _openness(points, fps, cfg)
    # Blinks the frame rate lets us see: a thinned Poisson, i.e. the same model at a lower rate.
    seen_p = detection_probability(fps, cfg.closed_phase_s)
    scale = cfg.rate_scale_per_min * seen_p
    judge_s = seconds_to_judge(alpha, cfg.rate_shape, scale)
    faces = []
    for slot in range(openness.shape[1]):
        series = openness[:, slot]
        seen = int(np.isfinite(series).sum())
        if seen == 0:
            continue
        blinks, closures = find_blinks(series, fps, cfg)
        shut = shut_depth[:, slot]
        closures = sorted(closures + [(s, e, float(np.max(shut[s : e + 1]))) for s, e in runs(np.isfinite(shut))])
        seconds = seen / fps
        p = prob_at_most(len(blinks), seconds, cfg.rate_shape, scale)
        judged = seconds >= judge_s
        faces.append(
            {
                "slot": slot,
                "blinks": blinks,
                "closures": closures,
                "face_seconds": seconds,
                "eyes_shut_seconds": float(np.isfinite(shut).sum()) / fps,
                "p_this_few": p,
                "judged": judged,
                "flagged": judged and p <= alpha,
            }
        )
    score = max((-math.log10(max(f["p_this_few"], 1e-300)) for f in faces), default=float("nan"))
    return {"openness": openness, "faces": faces, "score": score, "seconds_to_judge": judge_s, "detection_probability": seen_p}


def _longest_blink_free(series: np.ndarray, blinks: list[tuple[int, int, float]]) -> tuple[int, int]:
    """Longest stretch between the first and last frame the face is seen, between blinks."""
    seen = np.flatnonzero(np.isfinite(series))
    cuts = [int(seen[0]) - 1] + [b for s, e, _ in blinks for b in (s, e)] + [int(seen[-1]) + 1]
    gaps = [(cuts[i] + 1, cuts[i + 1] - 1) for i in range(0, len(cuts), 2)]
    return max(gaps, key=lambda g: g[1] - g[0])


class BlinkDetector(BaseDetector):
    """Flags faces that blink improbably rarely for how long they are seen frontally."""

    name: ClassVar[str] = "blink"
    failure_mode: ClassVar[str] = "missing blinks"
    requires: ClassVar[frozenset[str]] = frozenset({"face"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "2"
    units: ClassVar[str] = "-log10 probability"
    score_meaning: ClassVar[str] = (
        "-log10 of the probability that a real person blinks this few times or fewer in the "
        "frontal face time seen (max over faces; 1.3 = 5 %)"
    )
    config_type: ClassVar[type] = BlinkConfig
    options: BlinkConfig

    @staticmethod
    def checkpoint_aggregate(stats: list[dict]) -> dict[str, Any]:
        """Checkpoint-level verdict from its clips' ``stats`` (the runner's report calls this)."""
        return pooled_blink_rate(stats)

    @staticmethod
    def describe_aggregate(row: dict[str, Any]) -> str:
        """One terminal line for a row of :meth:`checkpoint_aggregate` (plus ``checkpoint``)."""
        rate = row.get("blinks_per_minute")
        known = rate is not None and math.isfinite(float(rate))
        text = f"{rate:.1f}/min [{row['ci'][0]:.1f},{row['ci'][1]:.1f}]" if known else "n/a"
        low, high = row["human_range"]
        return (f"blink rate {row['checkpoint']}: {text} over {row['face_minutes']:.2f} face-minutes "
                f"({row['verdict']}; human {low:g}-{high:g}/min)")

    def score(self, inputs: VideoInputs) -> DetectorResult:
        video = inputs.video
        if inputs.face is None:
            return DetectorResult.skipped("no face landmarks were computed", video.num_frames)
        points = face_pixels(inputs.face, f"{video.path} face", video.num_frames)
        analysis = blink_analysis(points, video.fps, self.options)
        faces = analysis["faces"]
        if not faces:
            return DetectorResult.skipped("no frontal face", video.num_frames)
        openness = analysis["openness"]
        series = np.fmin.reduce(openness, axis=1)  # the most closed face; NaN where none is seen
        events: list[Event] = []
        for face in faces:
            events += [Event(s, e, "blink", d) for s, e, d in face["blinks"]]
            events += [Event(s, e, "long_closure", d) for s, e, d in face["closures"]]
            if face["flagged"]:
                s, e = _longest_blink_free(openness[:, face["slot"]], face["blinks"])
                events.append(Event(s, e, "blink_free", -math.log10(max(face["p_this_few"], 1e-300))))
        events.sort(key=lambda ev: (ev.start, ev.end))
        count = sum(len(f["blinks"]) for f in faces)
        seconds = sum(f["face_seconds"] for f in faces)
        flagged = any(f["flagged"] for f in faces)
        judged = any(f["judged"] for f in faces)
        low, high = rate_interval(count, seconds)
        stats = {
            "blink_count": count,
            "face_seconds": seconds,
            "detection_probability": analysis["detection_probability"],
            "blinks_per_minute": 60.0 * count / seconds,
            "blinks_per_minute_ci95": [low, high],
            "judged": judged,
            "verdict": "missing blinks" if flagged else ("normal" if judged else "too short to judge"),
            "seconds_to_judge": analysis["seconds_to_judge"],
            "p_this_few": min(f["p_this_few"] for f in faces),
            "num_faces": len(faces),
            "faces": [
                {
                    "slot": f["slot"],
                    "blink_count": len(f["blinks"]),
                    "face_seconds": f["face_seconds"],
                    "p_this_few": f["p_this_few"],
                    "judged": f["judged"],
                }
                for f in faces
            ],
            # From the last frame seen open before to the first seen open after.
            "blink_durations_ms": [1000.0 * (e - s + 2) / video.fps for f in faces for s, e, _ in f["blinks"]],
            "long_closures": sum(len(f["closures"]) for f in faces),
            # Eyes kept shut longer than a blink (not judged: not in face_seconds).
            "eyes_shut_seconds": sum(f["eyes_shut_seconds"] for f in faces),
            "human_rate_range_per_minute": list(HUMAN_RATE_RANGE_PER_MIN),
        }
        return DetectorResult(
            score=float(analysis["score"]),
            flagged=bool(flagged),
            series=series.astype(np.float32),
            events=events,
            stats=stats,
        )


def pooled_blink_rate(results: list[dict], confidence: float = 0.95) -> dict[str, Any]:
    """Blinks per face-minute of a checkpoint, pooled over its clips, against the human range.

    Args:
        results: the ``stats`` dicts of :class:`BlinkDetector` results (skipped ones count as
            clips without a face).

    Returns:
        dict: ``clips``, ``clips_with_face``, ``blink_count``, ``face_minutes``,
        ``blinks_per_minute`` (corrected for blinks a low frame rate misses, see
        :func:`detection_probability`), ``ci`` (``[low, high]`` at ``confidence``, widened by the
        between-clip ``dispersion`` when counts vary more than Poisson), ``human_range``, and
        ``verdict``: "below human range" / "above human range" when the interval lies outside
        it, "consistent with human range" otherwise, "no face" without face time.
    """
    with_face = [r for r in results if (r.get("face_seconds") or 0) > 0]
    counts = np.array([float(r.get("blink_count") or 0) for r in with_face])
    seconds = np.array([float(r["face_seconds"]) for r in with_face])
    # Low frame rates miss some blinks: count face time at the share of blinks it can show.
    exposure = seconds * np.array([float(r.get("detection_probability") or 1.0) for r in with_face])
    out: dict[str, Any] = {
        "clips": len(results),
        "clips_with_face": len(with_face),
        "blink_count": int(counts.sum()),
        "face_minutes": float(seconds.sum() / 60.0),
        "human_range": list(HUMAN_RATE_RANGE_PER_MIN),
        "confidence": confidence,
    }
    if exposure.sum() <= 0:
        return {**out, "blinks_per_minute": None, "ci": [None, None], "dispersion": None, "verdict": "no face"}
    rate_per_s = counts.sum() / exposure.sum()
    dispersion = 1.0
    if len(exposure) > 1 and rate_per_s > 0:
        expected = rate_per_s * exposure
        dispersion = max(1.0, float(((counts - expected) ** 2 / expected).sum() / (len(exposure) - 1)))
    low, high = rate_interval(counts.sum(), exposure.sum(), confidence, dispersion)
    lo_ref, hi_ref = HUMAN_RATE_RANGE_PER_MIN
    verdict = (
        "below human range" if high < lo_ref else "above human range" if low > hi_ref else "consistent with human range"
    )
    return {
        **out,
        "blinks_per_minute": float(60.0 * rate_per_s),
        "ci": [low, high],
        "dispersion": dispersion,
        "verdict": verdict,
    }

"""Exaggerated facial expressions: faces that move further or faster than real faces do.

Per frame and face, four measures from the face mesh, each in units of the face's size
(:func:`evalkit.detectors._face.expression_measures`): mouth opening, mouth width (lip-corner
stretch), brow height above the eyes (brow raise) and eyelid opening (eye widening). Each is
taken relative to the face's own neutral in the clip: the median over the quarter of its frames
with the most closed mouth (at rest the mouth is closed). That gives seven features: the
deviations (mouth opening and eye widening count upward only, so blinks do not; mouth width
and brows count both ways) and the speeds of mouth, lips and brows (face sizes per second, over
~0.13 s so the window scales with fps).

Mesh reliability: a compressed or blurred face makes the mesh jump (lip corners by 0.3 face
sizes from one frame to the next) and drop out, which reads as expression. So the measures are
de-spiked first (a 3-frame running median: a one-frame jump is no expression), and each
frame's features are weighted by the mesh's continuity: the share of frames within
``reliability_s`` on either side in which the mesh found the face (1 for a steadily tracked
face; about 0.5 on carphone_distorted, which the mesh loses every few frames). The
high-frequency jitter that the median removed is reported in ``stats`` (``mesh_jitter``).

Each feature is divided by its 99th percentile over real faces (``expression_reference.json``
in ``evalkit.datasets``, rebuilt by ``python -m evalkit.datasets.expression_reference``), so
1.0 is the edge of the real range. The clip score is the mean of the ``top_k`` (3) largest
per-feature peaks: a face exaggerated as a whole goes beyond the range in several measures at
once, while a real face's extremes (or one mis-tracked measure) are usually in one. The series
is, per frame, the mean ratio of those dominant features; events are where it exceeds
``threshold``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evalkit._types import DetectorResult, Event, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._face import (
    MEASURES,
    check_landmarks,
    expression_measures,
    face_pixels,
    face_size,
    frames_for,
    is_frontal,
    quiet_nanmedian,
    quiet_nanquantile,
    rolling_nanmedian,
    runs,
)
from evalkit.errors import DetectorConfigError, ShapeError

FEATURES = (*MEASURES, "mouth_open_speed", "lip_stretch_speed", "brow_raise_speed")
_SPEED_OF = (0, 1, 2)  # measures whose speed is a feature (eyelids move fast in every blink)
_UPWARD_ONLY = (True, False, False, True)  # mouth opening and eye widening count upward only
REFERENCE_FILE = "expression_reference.json"

DEFAULT_CONFIG: dict[str, Any] = {
    "threshold": 1.5,  # flag above 1.5 times the real 99th percentile
    "neutral_fraction": 0.25,  # the most-closed-mouth share of frames that defines neutral
    "speed_s": 0.133,  # span of the speed's central difference
    "despike": True,  # 3-frame running median of the measures before anything else
    "reliability_s": 0.5,  # continuity window (each side) of the mesh-reliability weight
    "top_k": 3,  # the score averages this many largest per-feature peaks
    "min_face_s": 1.0,  # less frontal face than this: skipped
    "max_yaw_deg": 35.0,
    "max_pitch_deg": 35.0,
    "min_face_px": 5.0,
    "reference": None,  # path of another reference json (None: the bundled one)
}


def expression_features(
    points: np.ndarray,
    fps: float,
    neutral_fraction: float = 0.25,
    speed_s: float = 0.133,
    max_yaw_deg: float = 35.0,
    max_pitch_deg: float = 35.0,
    min_face_px: float = 5.0,
    despike: bool = True,
    reliability_s: float | None = 0.5,
) -> np.ndarray:
    """Expression features of every face against its own neutral, weighted by mesh reliability.

    Args:
        points: ``(T, F, 478, 3)`` face-mesh landmarks in pixels (NaN where no face).
        fps: frame rate.
        despike: take a 3-frame running median of the measures first.
        reliability_s: multiply each frame's features by :func:`mesh_continuity` over this
            window (None: no weighting).

    Returns:
        ``(T, F, 7)`` float32 in the order of :data:`FEATURES` (deviations in face sizes,
        speeds in face sizes per second), all >= 0; NaN where the face is absent, turned away
        or too small.
    """
    points = check_landmarks(points, "expression_features points")
    if points.ndim != 4:
        raise ShapeError("expression_features points", "(T, F, 478, 3)", points.shape)
    measures = expression_measures(points)  # (T, F, 4)
    usable = is_frontal(points, max_yaw_deg, max_pitch_deg)
    with np.errstate(invalid="ignore"):
        usable &= face_size(points) >= min_face_px
    measures = np.where(usable[..., None], measures, np.nan)
    if despike:
        measures = rolling_nanmedian(measures, 3, 2)
    neutral = _neutral(measures, neutral_fraction)  # (F, 4)
    deviation = measures - neutral[None]
    deviation = np.where(_UPWARD_ONLY, np.maximum(deviation, 0.0), np.abs(deviation))
    half = frames_for(speed_s / 2.0, fps)
    speed = np.full(measures.shape[:2] + (len(_SPEED_OF),), np.nan, np.float32)
    if len(measures) > 2 * half:
        moving = measures[:, :, _SPEED_OF]
        speed[half:-half] = np.abs(moving[2 * half :] - moving[: -2 * half]) * (fps / (2 * half))
    features = np.concatenate([deviation, speed], axis=-1)
    if reliability_s is not None:
        features = features * mesh_continuity(usable, fps, reliability_s)[..., None]
    return features.astype(np.float32)


def mesh_continuity(tracked: np.ndarray, fps: float, window_s: float = 0.5) -> np.ndarray:
    """Share of frames within ``window_s`` on either side (clipped to the clip) in which the
    mesh found each face: ``(T, F)`` bool -> ``(T, F)`` float32 in [0, 1]. A mesh that keeps
    losing a face (heavy compression, blur) is not trusted where it does find it."""
    half = frames_for(window_s, fps)
    seen = np.asarray(tracked, np.float32)
    padded = np.pad(seen, ((half, half), (0, 0)), constant_values=np.nan)
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (T, F, W)
    with np.errstate(invalid="ignore"):
        return np.nanmean(views, axis=-1).astype(np.float32)


def mesh_jitter(points: np.ndarray, fps: float) -> np.ndarray:
    """High-frequency jitter of each face's expression measures: ``(T, F, 478, 3)`` px ->
    ``(T, F)``, the largest absolute difference (face sizes) between a measure and its 3-frame
    running median, i.e. what :func:`expression_features` discards as a mesh spike."""
    measures = expression_measures(check_landmarks(points, "mesh_jitter points"))
    spikes = np.abs(measures - rolling_nanmedian(measures, 3, 2))
    finite = np.isfinite(spikes)
    return np.where(finite.any(axis=-1), np.max(np.where(finite, spikes, -np.inf), axis=-1), np.nan).astype(np.float32)


def _neutral(measures: np.ndarray, fraction: float) -> np.ndarray:
    """``(T, F, 4)`` -> ``(F, 4)``: median of each measure over the frames whose mouth is in
    the lowest ``fraction`` of that face's openings."""
    mouth = measures[..., 0]
    cut = quiet_nanquantile(mouth, fraction, axis=0)  # (F,)
    with np.errstate(invalid="ignore"):
        calm = mouth <= cut[None]
    return quiet_nanmedian(np.where(calm[..., None], measures, np.nan), axis=0)


@lru_cache(maxsize=4)
def load_reference(path: str | None = None) -> dict[str, Any]:
    """The real-face reference: per feature quantiles (``q50``, ``q90``, ``q99``, ``max``) and
    how it was made. ``path`` None reads the one bundled with ``evalkit.datasets``."""
    if path is None:
        text = resources.files("evalkit.datasets").joinpath(REFERENCE_FILE).read_text()
        source = f"evalkit.datasets/{REFERENCE_FILE}"
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise DetectorConfigError(f"{path}: expected a readable expression reference json, got {exc}") from exc
    reference = json.loads(text)
    missing = [f for f in FEATURES if f not in reference.get("features", {})]
    if missing:
        raise DetectorConfigError(f"{source}: expected quantiles for {list(FEATURES)}, got none for {missing}")
    return reference


def reference_scale(reference: dict[str, Any]) -> np.ndarray:
    """``(7,)`` real 99th percentiles of :data:`FEATURES`."""
    return np.array([reference["features"][f]["q99"] for f in FEATURES], np.float32)


def exaggeration(features: np.ndarray, scale: np.ndarray, top_k: int = 3) -> tuple[np.ndarray, float, np.ndarray]:
    """Clip exaggeration from ``(T, F, 7)`` features and ``(7,)`` real 99th percentiles.

    Returns:
        ``(series (T,), score, peaks (7,))``: ``peaks`` is each feature's largest ratio to the
        real range over frames and faces (NaN if never measured); ``score`` the mean of the
        ``top_k`` largest peaks (NaN without a usable face); ``series`` per frame the mean
        ratio of those ``top_k`` features, max over faces (NaN where no face is usable).
    """
    ratio = features / scale
    finite = np.isfinite(ratio)
    peaks = np.where(finite.any(axis=(0, 1)), np.nanmax(np.where(finite, ratio, -np.inf), axis=(0, 1)), np.nan)
    measured = np.flatnonzero(np.isfinite(peaks))
    if measured.size == 0:
        return np.full(len(features), np.nan, np.float32), float("nan"), peaks
    top = measured[np.argsort(peaks[measured])[::-1][:top_k]]
    score = float(peaks[top].mean())
    with np.errstate(invalid="ignore"):
        per_face = ratio[..., top].mean(axis=-1)  # (T, F)
    seen = np.isfinite(per_face)
    series = np.where(seen.any(axis=1), np.nanmax(np.where(seen, per_face, -np.inf), axis=1), np.nan)
    return series.astype(np.float32), score, peaks


class ExpressionDetector(BaseDetector):
    """Flags faces whose expressions go beyond the range of real faces."""

    name: ClassVar[str] = "expression"
    failure_mode: ClassVar[str] = "exaggerated expressions"
    requires: ClassVar[frozenset[str]] = frozenset({"face"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "2"
    score_meaning: ClassVar[str] = (
        "mean of the three largest peak distances (or speeds) of expression measures from the face's "
        "own neutral, each as a multiple of the real-face 99th percentile: 1 = edge of the real range"
    )
    default_config: ClassVar[dict[str, Any]] = DEFAULT_CONFIG

    def __init__(self, device: str = "cpu", **config: Any) -> None:
        super().__init__(device, **config)
        self.reference = load_reference(self.config["reference"])
        self._scale = reference_scale(self.reference)

    def score(self, inputs: VideoInputs) -> DetectorResult:
        video = inputs.video
        if inputs.face is None:
            return DetectorResult.skipped("no face landmarks were computed", video.num_frames)
        points = face_pixels(inputs.face, f"{video.path} face", video.num_frames)
        cfg = self.config
        features = expression_features(
            points, video.fps, cfg["neutral_fraction"], cfg["speed_s"], cfg["max_yaw_deg"], cfg["max_pitch_deg"],
            cfg["min_face_px"], cfg["despike"], cfg["reliability_s"],
        )
        seen = np.isfinite(features[..., 0])
        face_s = float(seen.any(axis=1).sum()) / video.fps
        if face_s < cfg["min_face_s"]:
            return DetectorResult.skipped(
                f"expected >= {cfg['min_face_s']} s of frontal face, got {face_s:.2f} s", video.num_frames
            )
        series, score, peaks = exaggeration(features, self._scale, cfg["top_k"])
        flagged = bool(score > cfg["threshold"])
        ratios = features / self._scale
        over = np.nan_to_num(series, nan=0.0) > cfg["threshold"]
        spans = runs(over)
        if flagged and not spans:  # the peaks fall in different frames: span them
            frames_of_peaks = [int(np.nanargmax(np.nanmax(np.where(np.isfinite(ratios[..., k]), ratios[..., k], -np.inf), axis=1)))
                               for k in np.argsort(np.nan_to_num(peaks, nan=-1.0))[::-1][: cfg["top_k"]]]
            spans = [(min(frames_of_peaks), max(frames_of_peaks))]
        events = []
        for start, end in spans:
            window = ratios[start : end + 1]
            worst = FEATURES[int(np.nanargmax(np.nanmax(np.where(np.isfinite(window), window, -np.inf), axis=(0, 1))))]
            events.append(Event(start, end, f"exaggerated_{worst}", float(np.nanmax(series[start : end + 1]))))
        peak_by_feature = {f: (None if np.isnan(v) else float(v)) for f, v in zip(FEATURES, peaks)}
        jitter = mesh_jitter(points, video.fps)
        stats = {
            "face_seconds": face_s,
            "num_faces": int(seen.any(axis=0).sum()),
            "peak_ratio_by_feature": peak_by_feature,
            "dominant_feature": FEATURES[int(np.nanargmax(peaks))],
            "seconds_over_threshold": float(over.sum()) / video.fps,
            "mesh_continuity": float(np.nanmean(np.where(seen, mesh_continuity(seen, video.fps, cfg["reliability_s"] or 0.5), np.nan))),
            "mesh_jitter": float(np.nanmedian(jitter[seen])) if np.isfinite(jitter[seen]).any() else None,  # face sizes
            "reference": self.reference.get("name", "custom"),
        }
        return DetectorResult(score=score, flagged=flagged, series=series, events=events, stats=stats)

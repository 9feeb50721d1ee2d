"""Exaggerated facial expressions: faces that deform further from their own neutral than real faces do.

Version 3 scores the **whole-face deformation**: per frame and face, the RMS image-plane
displacement of the 468 mesh points from the face's own neutral shape, after removing
position, size (:func:`evalkit.detectors.face_mesh.face_size`) and in-plane rotation, in face sizes.
The neutral is the median shape over the quarter of the face's frames with the most closed
mouth (at rest the mouth is closed). The clip score is the 95th percentile of that
deformation over frames (``peak_quantile``; max over faces) divided by its 99th percentile
over real faces (``expression_reference.json`` beside this module, rebuilt by
``python -m evalkit.datasets.expression_reference``): 1.0 is the edge of the real range.
A percentile, not the maximum, so that a few mis-tracked frames do not make the score.

Why the whole mesh: different people express with different parts of the face (one man opens
his mouth wide, another smiles broadly, a woman raises her brows and widens her eyes), so a
reference built from other people puts any one measure of a new person far inside or far
outside its range; the overall deformation varies less between people (leave-one-identity-out
AUC 0.85 against 0.63 for version 2's per-measure peaks, see ``docs/face.md``).

Version 4 adds the **paired mode**: "is checkpoint B more exaggerated than checkpoint A on the
same prompt and seed?" An unpaired score cannot be calibrated across people well enough (real
people differ in how far they deform by more than the exaggerations to be found: pooled
leave-one-identity-out AUC 0.88, within a person's own clips 1.0 paired), so
:func:`paired_exaggeration` divides a clip's peak deformation by a reference clip's (the same
prompt and seed at another checkpoint, or a real clip). Results store ``deformation_peak`` so
that ``evalkit run`` pairs clips of consecutive checkpoints when the root is read
(:meth:`ExpressionDetector.paired_score`, :func:`evalkit.aggregate.paired_comparisons`), without
re-running landmarks and without storing a result that depends on another video. The unpaired
score was version 3's.

Version 5 measures each mesh point **in units of how far real people move it**
(:func:`population_point_scale`: per person the RMS displacement of each point from their own
neutral, geometric mean over the reference's people, stored in the reference as
``point_scale``), then takes the RMS over points as before. In face sizes the lips and jaw,
which real faces move most, dominate the deformation, and people differ most in how far they
open their mouths; in these units a face that stretches its cheeks, eyelids or brows further
than people do counts as much. Leave-one-identity-out (docs/face.md) the pooled AUC rose from
0.877 to 0.930 (within identity 0.920 both). The paired mode keeps version 4's deformation in
face sizes (``stats["deformation_peak"]``): within one person nothing needs calibrating, and in
point units the mesh's noise on points that faces hardly move raised real pairs' ratios.

Seven named measures explain a high score (``stats["peak_ratio_by_feature"]``, event kinds):
mouth opening, lip-corner stretch, brow raise, eye widening (deviations from neutral; mouth
opening and eye widening upward only, so blinks do not count) and the speeds of mouth, lips and
brows (face sizes per second over ~0.13 s, so the window scales with fps).

Version 6 drops the frames **whose face the landmark model itself doubts** before anything is
measured: :func:`evalkit.landmarks.face_presence` runs MediaPipe's face-landmark model on the crop
around each found mesh and reads its face-presence output; below ``min_face_presence`` (0.9;
every frame of the real reference footage scores >= 0.997) the frame is tracker uncertainty,
reported in ``stats`` (``tracker_uncertain_seconds``), not expression. Heavy compression can
leave the mesh sitting, stably wrong, on a face (carphone's crf-38 re-encode: a wide-open mouth
read as closed, which then made the neutral); no landmark-only check found that (docs/face.md),
the model's own presence output does. The score is otherwise version 5's.

Version 7 measures on **the face landmarker's mesh** (:func:`evalkit.landmarks.landmarker_mesh`:
MediaPipe Tasks' newer mesh model, tracked over the clip and smoothed as MediaPipe's
FaceLandmarker does in video mode, starting from each face the tracking graph found) instead
of the tracking graph's own mesh. That mesh stops following strongly exaggerated faces (real
faces warped 3x scored below the same faces warped 2x) and reads a hand over the mouth as
deformation; on the same clips and references the pooled leave-one-identity-out AUC rose
from 0.930 to 0.975, within identity from 0.920 to 0.973 (docs/face.md). The score is otherwise
version 6's; the reference is rebuilt on the new mesh (``"mesh"`` in its json) and a reference
made on another mesh is refused.

Mesh reliability: measures are de-spiked (3-frame running median: a one-frame jump is no
expression) and each frame is weighted by the mesh's continuity, the share of frames within
``reliability_s`` on either side in which the mesh found the face (about 0.5 on heavily
compressed footage that the mesh keeps losing). The high-frequency jitter that the median
removed is reported in ``stats`` (``mesh_jitter``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evalkit._types import DetectorResult, Event, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._config import with_options
from evalkit.detectors.face_mesh import (
    LEFT_EYE_CORNERS,
    MEASURES,
    MESH_POINTS,
    RIGHT_EYE_CORNERS,
    check_landmarks,
    expression_measures,
    face_pixels,
    face_size,
    frames_for,
    is_frontal,
    normalised_shape,
    quiet_nanmedian,
    quiet_nanquantile,
    rolling_nanmedian,
    rotate_onto,
    runs,
)
from evalkit.errors import DetectorConfigError, ShapeError

FEATURES = ("deformation", *MEASURES, "mouth_open_speed", "lip_stretch_speed", "brow_raise_speed")
SCORED = 0  # the score is the whole-face deformation; the other features explain it
_SPEED_OF = (0, 1, 2)  # measures whose speed is a feature (eyelids move fast in every blink)
_UPWARD_ONLY = (True, False, False, True)  # mouth opening and eye widening count upward only
REFERENCE_FILE = "expression_reference.json"
REFERENCE_MESH = "face_landmarker"  # what a reference's "mesh" must say: evalkit.landmarks.landmarker_mesh


@dataclass(frozen=True)
class ExpressionConfig:
    """The expression detector's options, the one definition of their defaults
    (:class:`ExpressionDetector` and the functional forms :func:`expression_features`, :func:`exaggeration`)."""

    # flag above 1.4 times the real 99th percentile: set from real clips only (the highest real
    # clip scored against a reference without its person, the woman's whole clip, scores 1.27; docs/face.md)
    threshold: float = 1.4
    neutral_fraction: float = 0.25  # the most-closed-mouth share of frames that defines neutral
    speed_s: float = 0.133  # span of the speed's central difference
    despike: bool = True  # 3-frame running median of the measures before anything else
    # continuity window (each side) of the mesh-reliability weight (None: no weighting)
    reliability_s: float | None = 0.5
    peak_quantile: float = 0.95  # a clip's peak: this quantile of its frames (robust to mis-tracked frames)
    min_face_s: float = 1.0  # less frontal face than this: skipped
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 35.0
    min_face_px: float = 5.0
    # frames whose face the landmark model doubts (its face-presence output on the crop around the
    # found mesh, evalkit.landmarks.face_presence) below this are tracker uncertainty, not
    # expression (None: no check). Set from real footage only: every frame of the reference's
    # real clips scores >= 0.997; anywhere in 0.8-0.99 gives the same results (docs/face.md).
    min_face_presence: float | None = 0.9
    reference: str | None = None  # path of another reference json (None: the bundled one)


def expression_features(
    points: np.ndarray, fps: float, config: ExpressionConfig | None = None, point_scale: np.ndarray | None = None,
    **options: Any,
) -> np.ndarray:
    """Expression features of every face against its own neutral, weighted by mesh reliability.

    Args:
        points: ``(T, F, 478, 3)`` face-mesh landmarks in pixels (NaN where no face).
        fps: frame rate.
        config: the detector's options (None: the defaults of :class:`ExpressionConfig`); this
            reads ``neutral_fraction``, ``speed_s``, the face gates (``max_yaw_deg``,
            ``max_pitch_deg``, ``min_face_px``), ``despike`` (a 3-frame running median of the
            measures first) and ``reliability_s`` (multiply each frame's features by
            :func:`mesh_continuity` over this window; None: no weighting).
        point_scale: ``(468,)`` each mesh point's real displacement (:func:`population_point_scale`,
            the reference's ``point_scale``); the deformation then measures each point in these
            units (version 5). None: in face sizes (version 3).
        options: overrides of fields of ``config`` by name.

    Returns:
        ``(T, F, 8)`` float32 in the order of :data:`FEATURES` (whole-face deformation: see
        ``point_scale``; deviations in face sizes, speeds in face sizes per second), all >= 0;
        NaN where the face is absent, turned away or too small.
    """
    cfg = with_options(ExpressionConfig, config, options, "expression_features")
    return _features(points, fps, cfg, point_scale)[0]


def _features(
    points: np.ndarray, fps: float, cfg: ExpressionConfig, point_scale: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`expression_features` and, from the same displacements, the deformation in face sizes
    ``(T, F)`` (de-spiked and weighted like the features), which the paired mode compares."""
    points = check_landmarks(points, "expression_features points")
    if points.ndim != 4:
        raise ShapeError("expression_features points", "(T, F, 478, 3)", points.shape)
    measures, usable, calm = _gated_measures(points, cfg)
    neutral = quiet_nanmedian(np.where(calm[..., None], measures, np.nan), axis=0)  # (F, 4)
    squared = (face_displacement(points, usable, calm) ** 2).sum(axis=-1)  # (T, F, 468)
    in_face_sizes = np.sqrt(squared.mean(axis=-1))
    deformation = in_face_sizes if point_scale is None else np.sqrt((squared / np.square(point_scale)).mean(axis=-1))
    if cfg.despike:
        deformation, in_face_sizes = rolling_nanmedian(deformation, 3, 2), rolling_nanmedian(in_face_sizes, 3, 2)
    deviation = measures - neutral[None]
    deviation = np.where(_UPWARD_ONLY, np.maximum(deviation, 0.0), np.abs(deviation))
    half = frames_for(cfg.speed_s / 2.0, fps)
    speed = np.full(measures.shape[:2] + (len(_SPEED_OF),), np.nan, np.float32)
    if len(measures) > 2 * half:
        moving = measures[:, :, _SPEED_OF]
        speed[half:-half] = np.abs(moving[2 * half :] - moving[: -2 * half]) * (fps / (2 * half))
    features = np.concatenate([deformation[..., None], deviation, speed], axis=-1)
    if cfg.reliability_s is not None:
        continuity = mesh_continuity(usable, fps, cfg.reliability_s)
        features, in_face_sizes = features * continuity[..., None], in_face_sizes * continuity
    return features.astype(np.float32), in_face_sizes.astype(np.float32)


def drop_uncertain_faces(
    points: np.ndarray, presence: np.ndarray | None, min_presence: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks without the faces the landmark model doubts.

    Args:
        points: ``(T, F, 478, 3)`` landmarks (NaN where no face).
        presence: ``(T, F)`` :func:`evalkit.landmarks.face_presence` (None: no check).
        min_presence: faces below it are dropped (None: no check).

    Returns:
        ``(points with NaN where dropped, uncertain (T, F) bool: a face was found but dropped)``.
    """
    points = np.asarray(points)
    found = np.isfinite(points[..., 0, 0])
    if presence is None or min_presence is None:
        return points, np.zeros(found.shape, bool)
    presence = np.asarray(presence)
    if presence.shape != found.shape:
        raise ShapeError("face presence", f"(T, F) = {found.shape}", presence.shape)
    with np.errstate(invalid="ignore"):
        uncertain = found & ~(presence >= min_presence)
    return np.where(uncertain[..., None, None], np.nan, points).astype(points.dtype), uncertain


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


def _gated_measures(points: np.ndarray, cfg: ExpressionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(measures (T, F, 4), usable (T, F), calm (T, F))``: the named measures where the face is
    frontal and large enough (de-spiked if ``cfg.despike``) and the frames that define neutral."""
    measures = expression_measures(points)  # (T, F, 4)
    usable = is_frontal(points, cfg.max_yaw_deg, cfg.max_pitch_deg)
    with np.errstate(invalid="ignore"):
        usable &= face_size(points) >= cfg.min_face_px
    measures = np.where(usable[..., None], measures, np.nan)
    if cfg.despike:
        measures = rolling_nanmedian(measures, 3, 2)
    return measures, usable, _calm_frames(measures, cfg.neutral_fraction)


def _calm_frames(measures: np.ndarray, fraction: float) -> np.ndarray:
    """``(T, F, 4)`` measures -> ``(T, F)`` bool: the frames whose mouth opening is in the lowest
    ``fraction`` of that face's (the face's neutral)."""
    mouth = measures[..., 0]
    cut = quiet_nanquantile(mouth, fraction, axis=0)  # (F,)
    with np.errstate(invalid="ignore"):
        return mouth <= cut[None]


def face_displacement(points: np.ndarray, usable: np.ndarray, calm: np.ndarray) -> np.ndarray:
    """Each mesh point's displacement from the face's own neutral shape.

    Args:
        points: ``(T, F, 478, 3)`` landmarks in pixels; usable: ``(T, F)`` frames to measure;
        calm: ``(T, F)`` frames whose median shape is the neutral.

    Returns:
        ``(T, F, 468, 2)`` float32, image plane, face sizes, after removing position, size and
        in-plane rotation; NaN where not usable.
    """
    shapes = np.where(usable[..., None, None], normalised_shape(points), np.nan)  # (T, F, 468, 2)
    calm = calm & usable
    # Rotate every frame onto one calm frame turned upright (eye corners level), so that the
    # coordinate-wise medians below do not depend on how the image is turned.
    anchor = shapes[np.argmax(calm, axis=0), np.arange(shapes.shape[1])]  # (F, 468, 2)
    eyes = anchor[:, RIGHT_EYE_CORNERS[0]] - anchor[:, LEFT_EYE_CORNERS[1]]  # (F, 2)
    level = np.arctan2(eyes[:, 1], eyes[:, 0])[:, None]
    c, s = np.cos(level), np.sin(level)
    anchor = np.stack([c * anchor[..., 0] + s * anchor[..., 1], -s * anchor[..., 0] + c * anchor[..., 1]], axis=-1)
    aligned = rotate_onto(shapes, anchor[None])
    neutral = quiet_nanmedian(np.where(calm[..., None, None], aligned, np.nan), axis=0)
    aligned = rotate_onto(aligned, neutral[None])
    return (aligned - neutral[None]).astype(np.float32)


def face_deformation(
    points: np.ndarray, usable: np.ndarray, calm: np.ndarray, point_scale: np.ndarray | None = None
) -> np.ndarray:
    """Whole-face deformation from the face's own neutral shape: ``(T, F)`` float32, the RMS over
    the 468 mesh points of :func:`face_displacement` (arguments as there), each point's
    displacement divided by ``point_scale`` ``(468,)`` (:func:`population_point_scale`; None: in
    face sizes); NaN where not usable."""
    squared = (face_displacement(points, usable, calm) ** 2).sum(axis=-1)  # (T, F, 468)
    if point_scale is not None:
        squared = squared / np.square(np.asarray(point_scale, np.float32))
    return np.sqrt(squared.mean(axis=-1)).astype(np.float32)


def face_displacements(points: np.ndarray, config: ExpressionConfig | None = None, **options: Any) -> np.ndarray:
    """:func:`face_displacement` with the neutral and face gates of :func:`expression_features`:
    ``(T, F, 478, 3)`` px -> ``(T, F, 468, 2)`` face sizes (what :func:`population_point_scale` reads)."""
    cfg = with_options(ExpressionConfig, config, options, "face_displacements")
    points = check_landmarks(points, "face_displacements points")
    if points.ndim != 4:
        raise ShapeError("face_displacements points", "(T, F, 478, 3)", points.shape)
    _, usable, calm = _gated_measures(points, cfg)
    return face_displacement(points, usable, calm)


def population_point_scale(displacements_by_person: list[np.ndarray]) -> np.ndarray:
    """How far real people move each mesh point: ``[(..., 468, 2) per person]`` -> ``(468,)``.

    Per person, the RMS over their frames of each point's displacement from their own neutral
    (:func:`face_displacements`, face sizes); then the geometric mean over people, so that each
    person counts once however long their footage (version 5's score divides each point's
    displacement by this: a point that real faces hardly move counts as much as the lips)."""
    per_person = []
    for displacement in displacements_by_person:
        flat = np.asarray(displacement, np.float64).reshape(-1, MESH_POINTS, 2)
        flat = flat[np.isfinite(flat).all(axis=(1, 2))]
        if len(flat) == 0:
            continue
        per_person.append(np.sqrt((flat**2).sum(axis=-1).mean(axis=0)))
    if not per_person:
        raise ValueError("expected frames with a frontal face for at least one person, got none")
    return np.exp(np.mean(np.log(np.maximum(per_person, 1e-6)), axis=0)).astype(np.float32)


@lru_cache(maxsize=4)
def load_reference(path: str | None = None) -> dict[str, Any]:
    """The real-face reference: per feature quantiles (``q50``, ``q90``, ``q99``, ``max``), each
    mesh point's real displacement (``point_scale``, 468 values) and how it was made. ``path`` None reads the one bundled beside this module."""
    if path is None:
        text = resources.files("evalkit.detectors").joinpath(REFERENCE_FILE).read_text()
        source = f"evalkit.detectors/{REFERENCE_FILE}"
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
    if reference.get("mesh") != REFERENCE_MESH:
        raise DetectorConfigError(
            f"{source}: expected a reference measured on the {REFERENCE_MESH!r} mesh (version 7: rebuild it with "
            f"python -m evalkit.datasets.expression_reference), got {reference.get('mesh', 'none')!r}"
        )
    scale = reference.get("point_scale")
    if not isinstance(scale, list) or len(scale) != MESH_POINTS:
        got = "none" if scale is None else f"{len(scale) if isinstance(scale, list) else type(scale).__name__}"
        raise DetectorConfigError(
            f"{source}: expected a point_scale of {MESH_POINTS} values (a version 5 reference: rebuild it with "
            f"python -m evalkit.datasets.expression_reference), got {got}"
        )
    return reference


def reference_scale(reference: dict[str, Any]) -> np.ndarray:
    """``(8,)`` real 99th percentiles of :data:`FEATURES`."""
    return np.array([reference["features"][f]["q99"] for f in FEATURES], np.float32)


def exaggeration(
    features: np.ndarray, scale: np.ndarray, peak_quantile: float = ExpressionConfig.peak_quantile
) -> tuple[np.ndarray, float, np.ndarray]:
    """Clip exaggeration from ``(T, F, 8)`` features and ``(8,)`` real 99th percentiles.

    Returns:
        ``(series (T,), score, peaks (8,))``: ``series`` per frame the deformation as a multiple
        of the real range, max over faces (NaN where no face is usable); ``score`` its
        ``peak_quantile`` over each face's frames, max over faces (NaN without a usable face);
        ``peaks`` the same peak of every feature (NaN if never measured).
    """
    ratio = features / scale  # (T, F, 8)
    with np.errstate(invalid="ignore"):
        per_face = quiet_nanquantile(ratio, peak_quantile, axis=0)  # (F, 8)
    seen = np.isfinite(per_face)
    peaks = np.where(seen.any(axis=0), np.nanmax(np.where(seen, per_face, -np.inf), axis=0), np.nan)
    deformation = ratio[..., SCORED]
    finite = np.isfinite(deformation)
    series = np.where(finite.any(axis=1), np.nanmax(np.where(finite, deformation, -np.inf), axis=1), np.nan)
    return series.astype(np.float32), float(peaks[SCORED]), peaks


# A paired comparison divides by the reference clip's peak deformation (face sizes: the paired
# mode does not use the point scale, docs/face.md), floored at about the mesh's own jitter
# (face sizes; docs/face.md: 0.015 on pristine footage), so that a reference face that hardly
# moves does not turn tracking noise into a large ratio.
PAIRED_FLOOR = 0.02
# Flag a clip that deforms this much more than its paired reference: set from real pairs only
# (the same real footage resized, re-timed or re-encoded, paired with the clip it was made
# from, reaches 1.14 where the mesh holds; a mesh that fails, crf 38 or heavily compressed
# footage at 2x, reaches 1.85 / 1.32; docs/face.md).
PAIRED_THRESHOLD = 1.25


def deformation_peak(features: np.ndarray, peak_quantile: float = ExpressionConfig.peak_quantile) -> float:
    """A clip's peak whole-face deformation: ``(T, F, 8)`` features (face sizes for the paired mode:
    :func:`expression_features` without ``point_scale``) -> the
    ``peak_quantile`` over each face's frames, max over faces (NaN without a usable face)."""
    with np.errstate(invalid="ignore"):
        per_face = quiet_nanquantile(features[..., SCORED], peak_quantile, axis=0)  # (F,)
    return float(np.nanmax(per_face)) if np.isfinite(per_face).any() else float("nan")


def paired_exaggeration(
    features: np.ndarray, reference_features: np.ndarray, peak_quantile: float = ExpressionConfig.peak_quantile
) -> float:
    """How many times further a clip's faces deform than a reference clip's: the ratio of their
    :func:`deformation_peak` (the reference's floored at :data:`PAIRED_FLOOR`), both from
    :func:`expression_features` without ``point_scale`` (face sizes: in point units the
    mesh's noise on points that real faces hardly move makes resized or re-timed copies of the
    same real clip read 1.03-1.17, docs/face.md).

    The reference is the same prompt and seed at another checkpoint, or a real clip of the
    content. Dividing by the same person's own range removes what an unpaired score cannot:
    people differ in how much they deform by more than the exaggerations to be found (docs/face.md).

    Args:
        features, reference_features: ``(T, F, 8)`` and ``(T', F', 8)`` from :func:`expression_features`.

    Returns:
        The ratio (1: as far as the reference; NaN when either has no usable face).
    """
    peak, reference = deformation_peak(features, peak_quantile), deformation_peak(reference_features, peak_quantile)
    return peak / max(reference, PAIRED_FLOOR) if np.isfinite(reference) else float("nan")


def compare_videos(video: str | Path, reference: str | Path, **score_options: Any) -> dict[str, Any]:
    """Is ``video`` more exaggerated than ``reference`` (the same prompt and seed at another
    checkpoint, or a real clip of the content)? Both files are scored by :func:`evalkit.score`
    (``score_options``: its keywords, e.g. ``landmarks``, ``decode``, ``config``) and paired.

    Returns:
        ``{"ratio", "flagged", "score", "reference_score", "video", "reference"}``: ``ratio``
        from :meth:`ExpressionDetector.paired_score` (NaN when either has no usable face),
        ``flagged`` above :data:`PAIRED_THRESHOLD`, the two unpaired scores and the two paths.
    """
    from evalkit.runner import score

    rows = score([video, reference], "expression", **score_options)
    if rows["error"].notna().any():
        raise DetectorConfigError(f"expected two scorable videos, got {list(rows['error'].dropna())}")
    own, ref = rows.iloc[0], rows.iloc[1]
    ratio = 2.0 ** ExpressionDetector.paired_score(own["stats"], ref["stats"])
    return {"ratio": ratio, "flagged": bool(ratio > PAIRED_THRESHOLD), "score": float(own["score"]),
            "reference_score": float(ref["score"]), "video": str(video), "reference": str(reference)}


class ExpressionDetector(BaseDetector):
    """Flags faces whose expressions go beyond the range of real faces."""

    name: ClassVar[str] = "expression"
    failure_mode: ClassVar[str] = "exaggerated expressions"
    requires: ClassVar[frozenset[str]] = frozenset({"face"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "7"
    units: ClassVar[str] = "multiples of the real-face 99th percentile"
    score_meaning: ClassVar[str] = (
        "95th percentile over frames of the whole-face deformation from the face's own neutral "
        "(each mesh point in units of how far real people move it), as a multiple of the real-face "
        "99th percentile: 1 = edge of the real range"
    )
    config_type: ClassVar[type] = ExpressionConfig
    options: ExpressionConfig

    def __init__(self, device: str = "cpu", **config: Any) -> None:
        super().__init__(device, **config)
        self.reference = load_reference(self.options.reference)
        self._scale = reference_scale(self.reference)
        self._point_scale = np.asarray(self.reference["point_scale"], np.float32)

    @staticmethod
    def paired_score(stats: dict[str, Any], reference_stats: dict[str, Any]) -> float:
        """log2 of :func:`paired_exaggeration` from two stored results' ``stats``: how much more a
        clip deforms than the same prompt and seed at the reference checkpoint (> 0: more; 1:
        twice as far). NaN when either was skipped. The regression test and
        :func:`evalkit.aggregate.paired_comparisons` use it for clips shared between checkpoints."""
        peak, reference = stats.get("deformation_peak"), reference_stats.get("deformation_peak")
        if peak is None or reference is None or not (math.isfinite(peak) and math.isfinite(reference)):
            return float("nan")
        return math.log2(max(peak, 1e-9) / max(reference, PAIRED_FLOOR))

    def score_paired(self, inputs: VideoInputs, reference: VideoInputs) -> DetectorResult:
        """Score a clip against a reference clip (the same prompt and seed at another checkpoint,
        or a real clip): ``score`` is :func:`paired_exaggeration`, ``flagged`` above
        :data:`PAIRED_THRESHOLD`, ``series`` each frame's deformation (face sizes) over the reference's peak.

        The result depends on the reference, so ``stats["paired_with"]`` names it (path and content
        hash): store it only under a key that holds both. ``evalkit run`` stores unpaired results
        and pairs them from their ``stats`` (:meth:`paired_score`)."""
        result, in_face_sizes = self._score(inputs)
        if result.is_skipped:
            return result
        own = self.score(reference)
        if own.is_skipped:
            return DetectorResult.skipped(f"reference {reference.video.path}: {own.stats['skipped']}", inputs.video.num_frames)
        ratio = 2.0 ** self.paired_score(result.stats, own.stats)
        ref_peak = max(own.stats["deformation_peak"], PAIRED_FLOOR)
        stats = {**result.stats, "unpaired_score": result.score, "paired_with": {
            "path": str(reference.video.path), "content_hash": reference.video.content_hash,
            "deformation_peak": own.stats["deformation_peak"], "unpaired_score": own.score}}
        finite = np.isfinite(in_face_sizes)
        per_frame = np.where(finite.any(axis=1), np.nanmax(np.where(finite, in_face_sizes, -np.inf), axis=1), np.nan)
        series = (per_frame / ref_peak).astype(np.float32)
        over = np.nan_to_num(series, nan=0.0) > PAIRED_THRESHOLD
        events = [Event(a, b, "exaggerated_vs_reference", float(np.nanmax(series[a : b + 1]))) for a, b in runs(over)]
        return DetectorResult(score=ratio, flagged=bool(ratio > PAIRED_THRESHOLD), series=series, events=events, stats=stats)

    def _trusted_points(self, inputs: VideoInputs) -> tuple[np.ndarray, np.ndarray]:
        """``(landmarks (T, F, 478, 3) px, uncertain (T, F))``: the face landmarker's mesh of every
        found face (:func:`evalkit.landmarks.landmarker_mesh`, on the video's frames) without the
        faces the landmark model doubts (:func:`drop_uncertain_faces` with
        :func:`evalkit.landmarks.face_presence`)."""
        video = inputs.video
        points = face_pixels(inputs.face, f"{video.path} face", video.num_frames)
        if not np.isfinite(points[..., 0, 0]).any():
            return drop_uncertain_faces(points, None, None)
        from evalkit.landmarks import face_presence, landmarker_mesh

        frames = video.numpy_hwc()
        w, h = inputs.face.image_size
        to_frames = np.array([frames.shape[2] / w, frames.shape[1] / h, frames.shape[2] / w], np.float32)
        on_frames = points * to_frames
        mesh = landmarker_mesh(frames, on_frames, video.fps) / to_frames
        if self.options.min_face_presence is None:
            return drop_uncertain_faces(mesh, None, None)
        return drop_uncertain_faces(mesh, face_presence(frames, on_frames), self.options.min_face_presence)

    def score(self, inputs: VideoInputs) -> DetectorResult:
        return self._score(inputs)[0]

    def _score(self, inputs: VideoInputs) -> tuple[DetectorResult, np.ndarray | None]:
        """The unpaired result and the deformation in face sizes ``(T, F)`` it was computed from
        (None where skipped early), which :meth:`score_paired` reads: the presence check and the
        features run once per clip."""
        video = inputs.video
        if inputs.face is None:
            return DetectorResult.skipped("no face landmarks were computed", video.num_frames), None
        cfg = self.options
        points, uncertain = self._trusted_points(inputs)
        uncertain_s = float(uncertain.any(axis=1).sum()) / video.fps
        features, in_face_sizes = _features(points, video.fps, cfg, self._point_scale)
        seen = np.isfinite(features[..., 0])
        face_s = float(seen.any(axis=1).sum()) / video.fps
        if face_s < cfg.min_face_s:
            doubt = f" (the landmark model doubted the face in {uncertain_s:.2f} s)" if uncertain_s else ""
            result = DetectorResult.skipped(
                f"expected >= {cfg.min_face_s} s of frontal face, got {face_s:.2f} s{doubt}", video.num_frames
            )
            result.stats["tracker_uncertain_seconds"] = uncertain_s
            return result, in_face_sizes
        series, score, peaks = exaggeration(features, self._scale, cfg.peak_quantile)
        peak, calm = (deformation_peak(in_face_sizes[..., None], q) for q in (cfg.peak_quantile, 0.5))
        flagged = bool(score > cfg.threshold)
        ratios = features[..., 1:] / self._scale[1:]  # the named measures explain the events
        over = np.nan_to_num(series, nan=0.0) > cfg.threshold
        events = []
        for start, end in runs(over):
            window = ratios[start : end + 1]
            worst = FEATURES[1 + int(np.nanargmax(np.nanmax(np.where(np.isfinite(window), window, -np.inf), axis=(0, 1))))]
            events.append(Event(start, end, f"exaggerated_{worst}", float(np.nanmax(series[start : end + 1]))))
        peak_by_feature = {f: (None if np.isnan(v) else float(v)) for f, v in zip(FEATURES, peaks)}
        jitter = mesh_jitter(points, video.fps)
        stats = {
            "face_seconds": face_s,
            "num_faces": int(seen.any(axis=0).sum()),
            "peak_ratio_by_feature": peak_by_feature,
            "dominant_feature": FEATURES[1 + int(np.nanargmax(np.nan_to_num(peaks[1:], nan=-np.inf)))],
            "seconds_over_threshold": float(over.sum()) / video.fps,
            "mesh_continuity": float(np.nanmean(np.where(seen, mesh_continuity(seen, video.fps, cfg.reliability_s or ExpressionConfig.reliability_s), np.nan))),
            "mesh_jitter": float(np.nanmedian(jitter[seen])) if np.isfinite(jitter[seen]).any() else None,  # face sizes
            # frames dropped because the landmark model doubted the face (min_face_presence)
            "tracker_uncertain_seconds": uncertain_s,
            "reference": self.reference.get("name", "custom"),
            # what a paired comparison reads (paired_score): the score before the reference's scale
            "deformation_peak": peak,  # face sizes (not point units), peak_quantile over frames, max over faces
            "deformation_median": calm,
        }
        return DetectorResult(score=score, flagged=flagged, series=series, events=events, stats=stats), in_face_sizes

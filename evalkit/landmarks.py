"""Shared per-video inputs: MediaPipe face mesh (478 points with iris) and pose (33 points).

Computed at most once per video per run, in a pool of worker processes (MediaPipe's graphs are
single-threaded; one process per core is the fastest layout on CPU). Workers are started with
``spawn`` so they never inherit the parent's torch threads.

Face mesh runs in tracking mode: its own BlazeFace detector gates the landmark model, so frames
with no face cost one cheap detection and no mesh.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit._types import FaceTrack, PoseTrack

log = logging.getLogger(__name__)

NUM_FACE_POINTS = 478
NUM_POSE_POINTS = 33
# Limb bones whose person-mask profile PoseTrack.limb_mask holds, in this order (pose indices):
# upper arms, forearms, thighs, shins; left then right.
LIMB_MASK_BONES: tuple[tuple[int, int], ...] = (
    (11, 13), (12, 14), (13, 15), (14, 16), (23, 25), (24, 26), (25, 27), (26, 28),
)
LIMB_MASK_SAMPLES = 21  # points from joint a (0) to joint b (1), both included
LIMB_MASK_ACROSS = (-0.08, 0.0, 0.08)  # offsets across the bone, in bone lengths; the profile keeps their max


# "mediapipe": MediaPipe's own graphs (mp.solutions). "litert": the same model files through
# LiteRT with evalkit's re-implementation of the graphs (evalkit._landmark_pipeline); the face
# mesh uses the classic face_landmark + iris_landmark models (LiteRT lacks the attention
# model's custom ops). "torch": the same model files in torch (evalkit._tflite_torch), the
# same graph steps batched over frames and videos on CPU or CUDA (evalkit._torch_landmarks).
LANDMARK_BACKENDS = ("mediapipe", "litert", "torch")
# The version of evalkit's re-implemented graph steps (litert, torch), part of their results'
# keys. 2: the pose heatmap window is 9 wide, as the wheel's graph runs it, and crops resample
# as ImageToTensorCalculator does (warpPerspective of the ROI's corners).
PIPELINE_VERSION = 2


def backend_tag(backend: str) -> str:
    """What a backend's landmarks are stored under: ``""`` for MediaPipe's own graphs (keys as
    they were before backends existed), else ``"<backend>.<PIPELINE_VERSION>"``."""
    return "" if backend == "mediapipe" else f"{backend}.{PIPELINE_VERSION}"


def default_backend(device: str) -> str:
    """The landmark backend ``evalkit`` picks when none is named: ``torch`` on CUDA (batched
    on the GPU); on CPU MediaPipe's own graphs, which measured fastest per core here
    (benchmarks/bench_landmarks.py, docs/face.md)."""
    return "torch" if str(device).startswith("cuda") else "mediapipe"


@dataclass(frozen=True)
class LandmarkOptions:
    backend: str = "mediapipe"
    max_faces: int = 2
    face_min_detection_confidence: float = 0.5
    face_min_tracking_confidence: float = 0.5
    # Two meshes whose boxes overlap more than this are one face meshed twice.
    face_duplicate_iou: float = 0.5
    pose_model_complexity: int = 1
    pose_min_detection_confidence: float = 0.5
    pose_min_tracking_confidence: float = 0.5
    # MediaPipe's temporal filter hides exactly the jumps the motion detector looks for.
    pose_smooth: bool = False
    # Sample MediaPipe's person mask along each limb bone (PoseTrack.limb_mask): the motion
    # detector's ``cut`` check reads a forearm cut off from its elbow from it.
    pose_limb_mask: bool = True
    # Where the torch backend runs its models ("cpu", "cuda", "cuda:1"); the others ignore it.
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.backend not in LANDMARK_BACKENDS:
            import difflib

            close = difflib.get_close_matches(self.backend, LANDMARK_BACKENDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"landmark backend: expected one of {', '.join(LANDMARK_BACKENDS)}, "
                             f"got {self.backend!r}.{hint}")


def _assign_slots(prev_centres: np.ndarray, centres: np.ndarray) -> list[int]:
    """Give each detected face the slot whose last centre is nearest (greedy); new faces take
    free slots. ``prev_centres``: ``(F, 2)`` with NaN for empty slots; ``centres``: ``(N, 2)``."""
    slots = [-1] * len(centres)
    free = set(range(len(prev_centres)))
    pairs = []
    for i, c in enumerate(centres):
        for s in range(len(prev_centres)):
            if not np.isnan(prev_centres[s, 0]):
                pairs.append((float(np.hypot(*(c - prev_centres[s]))), i, s))
    for _, i, s in sorted(pairs):
        if slots[i] == -1 and s in free:
            slots[i] = s
            free.discard(s)
    for i in range(len(centres)):
        if slots[i] == -1 and free:
            slots[i] = min(free)
            free.discard(slots[i])
    return slots


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _drop_duplicate_faces(
    points: np.ndarray, prev_centres: np.ndarray, size: tuple[int, int], max_iou: float
) -> np.ndarray:
    """Keep one mesh per face. With ``max_num_faces > 1`` MediaPipe keeps running its detector
    while it tracks fewer faces than allowed, and sometimes meshes an already tracked face a
    second time (on carphone_pristine, frames 84-91); the two copies would then take turns in
    two slots. Faces nearest a known slot centre win. ``points``: ``(N, 478, 3)`` normalised."""
    if len(points) < 2:
        return points
    xy = points[:, :, :2] * np.array(size, np.float32)
    boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
    centres = points[:, :, :2].mean(axis=1)
    known = prev_centres[~np.isnan(prev_centres[:, 0])]
    if len(known):
        near = np.linalg.norm(centres[:, None] - known[None], axis=-1).min(axis=1)
        order = np.argsort(near, kind="stable")
    else:
        order = np.arange(len(points))
    kept: list[int] = []
    for i in order:
        if all(_box_iou(boxes[i], boxes[k]) <= max_iou for k in kept):
            kept.append(int(i))
    return points[sorted(kept)]


def _track_faces(found_per_frame, t: int, size: tuple[int, int], options: LandmarkOptions) -> FaceTrack:
    """Per-frame face lists (``(N, 478, 3)`` normalised) -> :class:`FaceTrack` with stable slots."""
    out = np.full((t, options.max_faces, NUM_FACE_POINTS, 3), np.nan, np.float32)
    centres = np.full((options.max_faces, 2), np.nan, np.float32)
    for i, points in enumerate(found_per_frame):
        if not len(points):
            continue
        points = _drop_duplicate_faces(points, centres, size, options.face_duplicate_iou)
        slots = _assign_slots(centres, points[:, :, :2].mean(axis=1))
        for k, slot in enumerate(slots):
            if slot >= 0:
                out[i, slot] = points[k]
                centres[slot] = points[k, :, :2].mean(axis=0)
    return FaceTrack(landmarks=out, image_size=size)


def extract_face(frames_hwc: np.ndarray, options: LandmarkOptions = LandmarkOptions()) -> FaceTrack:
    """Face mesh over ``(T, H, W, 3)`` uint8 RGB frames -> :class:`FaceTrack` ``(T, F, 478, 3)``,
    with the backend of ``options.backend``."""
    if options.backend == "torch":
        return extract_torch([frames_hwc], True, False, options)[0][0]
    if options.backend == "litert":
        return _extract_face_pipeline(frames_hwc, options, _engine(options.backend))
    import mediapipe as mp_

    t, h, w, _ = frames_hwc.shape

    def frames():
        with mp_.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=options.max_faces,
            refine_landmarks=True,
            min_detection_confidence=options.face_min_detection_confidence,
            min_tracking_confidence=options.face_min_tracking_confidence,
        ) as mesh:
            for i in range(t):
                found = mesh.process(frames_hwc[i]).multi_face_landmarks or []
                yield np.array([[(p.x, p.y, p.z) for p in face.landmark] for face in found], np.float32)

    return _track_faces(frames(), t, (w, h), options)


def face_presence(frames_hwc: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How sure MediaPipe's face-landmark model is that each found face is a face.

    For every frame and face slot, the crop around the found mesh (the region MediaPipe's
    tracker would crop from it: the mesh's box turned level by the eye corners, 1.5 times as
    large) goes through the wheel's ``face_landmark`` model (LiteRT, about 1.5 ms a face);
    its face-presence output is the answer. On footage the mesh follows it is about 1 (every
    frame of the expression reference's real clips: >= 0.997); where compression breaks the
    mesh it drops (carphone's crf-38 re-encode: below 0.5 in 18 % of frames; carphone_distorted:
    in about 75 %), while the mesh may still sit, stably wrong, on the face.

    Args:
        frames_hwc: ``(T, H, W, 3)`` uint8 RGB, the frames the landmarks were found on.
        points: ``(T, F, 478, 3)`` landmarks in pixels of those frames (NaN where no face).

    Returns:
        ``(T, F)`` float32 in [0, 1]; NaN where no face was found.
    """
    from evalkit._landmark_pipeline import crop, roi_from_points

    if frames_hwc.ndim != 4 or points.ndim != 4 or len(frames_hwc) != len(points):
        raise ValueError(f"expected frames (T, H, W, 3) and points (T, F, 478, 3), got {frames_hwc.shape} and {points.shape}")
    model = _engine("litert")("face_landmark")
    out = np.full(points.shape[:2], np.nan, np.float32)
    for t, f in zip(*np.nonzero(np.isfinite(points[:, :, 0, 0]))):
        roi = roi_from_points(points[t, f, :468, :2], 33, 263, 0.0, 1.5)
        _, flag = model(crop(frames_hwc[t], roi, 192, (0.0, 1.0), border_zero=False)[None])
        out[t, f] = 1.0 / (1.0 + np.exp(-float(np.asarray(flag).reshape(-1)[0])))
    return out


def landmarker_mesh(frames_hwc: np.ndarray, points: np.ndarray, fps: float) -> np.ndarray:
    """The face landmarker's mesh (MediaPipe Tasks' newer model) of every found face, tracked.

    Each face slot is followed as MediaPipe's FaceLandmarker follows a face in a video: the crop
    of each frame comes from the model's own mesh of the frame before (the box turned level by
    the eye corners, 1.5 times as large), and from the found mesh ``points`` where a face
    appears or the model loses it (face presence < 0.5), settled there by two more passes on its
    own mesh; its output goes through the one-euro filter the FaceLandmarker applies in video
    mode (min_cutoff 0.05, beta 80, on the mesh's size). LiteRT, a 256-px crop, about 5 ms a
    face on one core. Where the tracking graph's mesh stops following a strongly warped face
    (real faces warped 3x that score below their 2x warp), this one keeps following; the
    ``expression`` detector measures on it (version 7, docs/face.md). Cropping every frame from
    ``points`` instead, with or without a second pass on the model's own mesh, ranked
    exaggeration worse there (docs/face.md).

    Args:
        frames_hwc: ``(T, H, W, 3)`` uint8 RGB, the frames the landmarks were found on.
        points: ``(T, F, 478, 3)`` landmarks in pixels of those frames (NaN where no face).
        fps: the frames' rate (the filter's time step).

    Returns:
        ``(T, F, 478, 3)`` float32 pixels of the same frames (z in the same pixel scale as x);
        NaN where ``points`` has no face.
    """
    from evalkit._landmark_pipeline import LANDMARKER, OneEuroFilter, crop, roi_from_points

    if frames_hwc.ndim != 4 or points.ndim != 4 or len(frames_hwc) != len(points):
        raise ValueError(f"expected frames (T, H, W, 3) and points (T, F, 478, 3), got {frames_hwc.shape} and {points.shape}")
    if not fps > 0:
        raise ValueError(f"landmarker_mesh: expected fps > 0, got {fps}")
    model = _engine("litert")(LANDMARKER)

    def mesh_in(frame: np.ndarray, around: np.ndarray) -> tuple[np.ndarray, float]:
        roi = roi_from_points(around[:468, :2], 33, 263, 0.0, 1.5)
        raw, flag = model(crop(frame, roi, 256, (0.0, 1.0), border_zero=False)[None])[:2]
        raw = raw.reshape(478, 3)
        found = np.empty((478, 3), np.float32)
        found[:, :2] = roi.to_frame(raw[:, :2] / 256.0)
        found[:, 2] = raw[:, 2] / 256.0 * roi.w
        return found, 1.0 / (1.0 + math.exp(-float(np.asarray(flag).reshape(-1)[0])))

    out = np.full(points.shape, np.nan, np.float32)
    for f in range(points.shape[1]):
        previous = None
        smooth = OneEuroFilter(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0, frequency=fps)
        for t in range(len(points)):
            if not np.isfinite(points[t, f, 0, 0]):
                previous = None
                smooth.reset()
                continue
            presence = 0.0
            if previous is not None:
                found, presence = mesh_in(frames_hwc[t], previous)
            if presence < 0.5:  # a face appears, or the model lost it: start from the found mesh
                found, _ = mesh_in(frames_hwc[t], points[t, f])
                for _ in range(_SETTLE):  # then crop on the model's own mesh, as it tracks
                    found, _ = mesh_in(frames_hwc[t], found)
            previous = found
            extent = found[:, :2].max(axis=0) - found[:, :2].min(axis=0)
            out[t, f] = smooth(t / fps, found, 2.0 / max(float(extent.sum()), 1e-6))
    return out


# Where a face starts, the crop from the found mesh is not the one the landmarker would track
# with; its mesh moves up to 0.05 face sizes over the next frames. Two more passes on its own
# mesh settle it on the first frame (docs/face.md).
_SETTLE = 2
_ENGINES: dict[str, Any] = {}  # one per backend and process: models load once per worker


def _engine(backend: str):
    if backend not in _ENGINES:
        if backend != "litert":
            raise ValueError(f"expected landmark backend one of {LANDMARK_BACKENDS}, got {backend!r}")
        from evalkit._litert import LiteRTEngine

        _ENGINES[backend] = LiteRTEngine(threads=1)
    return _ENGINES[backend]


def _extract_face_pipeline(frames_hwc: np.ndarray, options: LandmarkOptions, engine) -> FaceTrack:
    """Face mesh through :mod:`evalkit._landmark_pipeline` with any engine."""
    from evalkit._landmark_pipeline import FaceMeshTracker, FaceSettings

    t, h, w, _ = frames_hwc.shape
    tracker = FaceMeshTracker(engine, FaceSettings(options.max_faces, options.face_min_detection_confidence,
                                                   options.face_min_tracking_confidence))
    return _track_faces((tracker(frames_hwc[i]) for i in range(t)), t, (w, h), options)


def pose_graph(options: LandmarkOptions = LandmarkOptions(), segmentation: bool = False) -> Any:
    """MediaPipe's pose graph (a context manager) with the pipeline's settings; ``segmentation``
    adds the person mask (``result.segmentation_mask``, ``(H, W)`` float), unsmoothed."""
    import mediapipe as mp_

    return mp_.solutions.pose.Pose(
        static_image_mode=False,
        model_complexity=options.pose_model_complexity,
        smooth_landmarks=options.pose_smooth,
        enable_segmentation=segmentation,
        smooth_segmentation=False,
        min_detection_confidence=options.pose_min_detection_confidence,
        min_tracking_confidence=options.pose_min_tracking_confidence,
    )


def limb_mask_profile(mask: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe's person mask sampled along each bone of :data:`LIMB_MASK_BONES`.

    Args:
        mask: ``(H, W)`` float person probability of one frame.
        landmarks: ``(33, 4)`` pose of that frame (x, y normalised).
    Returns:
        ``(len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES)`` float16: the largest mask value over
        :data:`LIMB_MASK_ACROSS` at each point from joint a to joint b; NaN where the point falls
        outside the frame (outside is unknown, not background) or the bone is shorter than 4 px.
    """
    h, w = mask.shape
    return _limb_mask_profile_at(lambda x, y: mask[y, x], landmarks, (w, h))


def _limb_mask_profile_at(sample, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`limb_mask_profile` with the mask read through ``sample(x, y)`` at integer pixel
    arrays (the pipeline backends sample their ROI mask there instead of warping it whole)."""
    w, h = size
    pts = landmarks[:, :2].astype(np.float64) * (w, h)
    bones = np.array(LIMB_MASK_BONES)
    a, b = pts[bones[:, 0]], pts[bones[:, 1]]  # (B, 2)
    d = b - a
    length = np.linalg.norm(d, axis=-1, keepdims=True)  # (B, 1)
    normal = np.stack([-d[:, 1], d[:, 0]], -1)  # (B, 2), length-scaled like d
    along = np.linspace(0.0, 1.0, LIMB_MASK_SAMPLES)
    across = np.asarray(LIMB_MASK_ACROSS)
    xy = (a[:, None, None] + along[None, :, None, None] * d[:, None, None]
          + across[None, None, :, None] * normal[:, None, None])  # (B, S, K, 2)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)
    x = np.clip(np.nan_to_num(np.rint(xy[..., 0])), 0, w - 1).astype(np.intp)
    y = np.clip(np.nan_to_num(np.rint(xy[..., 1])), 0, h - 1).astype(np.intp)
    value = np.where(inside, sample(x, y), np.nan).max(-1)  # any sample across outside -> NaN
    value[~(length[:, 0] >= 4.0)] = np.nan
    return value.astype(np.float16)


def extract_pose(frames_hwc: np.ndarray, options: LandmarkOptions = LandmarkOptions()) -> PoseTrack:
    """Pose over ``(T, H, W, 3)`` uint8 RGB frames -> :class:`PoseTrack` ``(T, 33, 4)``, with the
    person-mask profile along each limb (``limb_mask``) when ``options.pose_limb_mask``, with the
    backend of ``options.backend``."""
    if options.backend == "torch":
        return extract_torch([frames_hwc], False, True, options)[0][1]
    if options.backend == "litert":
        return _extract_pose_pipeline(frames_hwc, options, _engine(options.backend))
    t, h, w, _ = frames_hwc.shape
    out = np.full((t, NUM_POSE_POINTS, 4), np.nan, np.float32)
    profile = (np.full((t, len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES), np.nan, np.float16)
               if options.pose_limb_mask else None)
    with pose_graph(options, segmentation=options.pose_limb_mask) as pose:
        for i in range(t):
            result = pose.process(frames_hwc[i])
            if result.pose_landmarks is not None:
                out[i] = [(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark]
                if profile is not None and result.segmentation_mask is not None:
                    profile[i] = limb_mask_profile(result.segmentation_mask, out[i])
    return PoseTrack(landmarks=out, image_size=(w, h), limb_mask=profile)


def _extract_pose_pipeline(frames_hwc: np.ndarray, options: LandmarkOptions, engine) -> PoseTrack:
    """Pose through :mod:`evalkit._landmark_pipeline` with any engine (no temporal smoothing of
    the landmarks: ``pose_smooth`` is MediaPipe-only)."""
    from evalkit._landmark_pipeline import PoseSettings, PoseTracker

    if options.pose_model_complexity != 1:
        raise ValueError(f"expected pose_model_complexity 1 (pose_landmark_full) for the "
                         f"{options.backend!r} backend, got {options.pose_model_complexity}")
    if options.pose_smooth:
        raise ValueError(f"expected pose_smooth=False for the {options.backend!r} backend, got True")
    t, h, w, _ = frames_hwc.shape
    tracker = PoseTracker(engine, PoseSettings(options.pose_min_detection_confidence,
                                               options.pose_min_tracking_confidence, options.pose_limb_mask))
    out = np.full((t, NUM_POSE_POINTS, 4), np.nan, np.float32)
    profile = (np.full((t, len(LIMB_MASK_BONES), LIMB_MASK_SAMPLES), np.nan, np.float16)
               if options.pose_limb_mask else None)
    for i in range(t):
        result = tracker(frames_hwc[i])
        if result is None:
            continue
        out[i] = result.landmarks
        if profile is not None and result.mask_at is not None:
            mask_at = result.mask_at
            profile[i] = _limb_mask_profile_at(lambda x, y: mask_at(np.stack([x, y], -1).astype(np.float64)),
                                               out[i], (w, h))
    return PoseTrack(landmarks=out, image_size=(w, h), limb_mask=profile)


def extract_torch(videos, face: bool, pose: bool, options: LandmarkOptions = LandmarkOptions(),
                  settings: Any = None, engine: Any = None) -> list[tuple[FaceTrack | None, PoseTrack | None]]:
    """Face and/or pose for many videos at once with the ``torch`` backend (the videos step
    through time together, :func:`evalkit._torch_landmarks.extract_many`), on ``options.device``.

    Args:
        videos: each ``(T, H, W, 3)`` uint8 RGB, any sizes and lengths.
        settings: a :class:`evalkit._torch_landmarks.TorchLandmarkSettings` instead of the one
            ``options`` gives (the limb sampling is always this module's).
        engine: a :class:`evalkit._torch_landmarks.TorchEngine` to reuse loaded models.
    Returns:
        Per video ``(FaceTrack | None, PoseTrack | None)``, as :func:`extract`.
    """
    from dataclasses import replace

    from evalkit._torch_landmarks import extract_many, settings_from

    settings = replace(settings or settings_from(options), limb_bones=LIMB_MASK_BONES,
                       limb_samples=LIMB_MASK_SAMPLES, limb_across=LIMB_MASK_ACROSS)
    out = []
    for found in extract_many(videos, face, pose, settings, engine):
        t = len(found.pose) if found.pose is not None else len(found.faces)
        face_track = _track_faces(found.faces, t, found.image_size, options) if face else None
        pose_track = (PoseTrack(landmarks=found.pose, image_size=found.image_size, limb_mask=found.limb_mask)
                      if pose else None)
        out.append((face_track, pose_track))
    return out


def extract(
    frames_hwc: np.ndarray, face: bool, pose: bool, options: LandmarkOptions = LandmarkOptions()
) -> tuple[FaceTrack | None, PoseTrack | None]:
    """Face and/or pose for one video. Runs in a worker process."""
    return (
        extract_face(frames_hwc, options) if face else None,
        extract_pose(frames_hwc, options) if pose else None,
    )


def _worker_init() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("EVALKIT_WORKER_STDERR") != "1":
        # MediaPipe's C++ side writes several absl warnings per graph straight to fd 2, which
        # no log level silences. Worker failures still reach the parent through the futures;
        # EVALKIT_WORKER_STDERR=1 keeps the raw output for debugging.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


class LandmarkPool:
    """Runs :func:`extract` in worker processes, or in-process with ``workers=0``."""

    def __init__(self, workers: int | None = None, options: LandmarkOptions = LandmarkOptions()) -> None:
        self.workers = default_workers() if workers is None else workers
        self.options = options
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, frames_hwc: np.ndarray, face: bool, pose: bool) -> Future:
        if self.workers <= 0:
            future: Future = Future()
            try:
                future.set_result(extract(frames_hwc, face, pose, self.options))
            except Exception as exc:  # surfaced by future.result(), like a worker's
                future.set_exception(exc)
            return future
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=mp.get_context("spawn"), initializer=_worker_init
            )
        if not (face and pose and self.workers > 1):
            return self._executor.submit(extract, frames_hwc, face, pose, self.options)
        # Face and pose of one video as two jobs: with few long videos, one worker would
        # otherwise run both while the others wait.
        parts = [self._executor.submit(extract, frames_hwc, True, False, self.options),
                 self._executor.submit(extract, frames_hwc, False, True, self.options)]
        return _joined(parts)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> LandmarkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _joined(parts: list[Future]) -> Future:
    """One future for a face job and a pose job: ``(face, pose)`` when both are done, or the
    first failure."""
    joined: Future = Future()
    lock = threading.Lock()

    def done(_: Future) -> None:
        with lock:
            if joined.done() or not all(p.done() for p in parts):
                return
            try:
                joined.set_result((parts[0].result()[0], parts[1].result()[1]))
            except BaseException as exc:  # a worker's failure, surfaced by result()
                joined.set_exception(exc)

    for part in parts:
        part.add_done_callback(done)
    return joined


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))

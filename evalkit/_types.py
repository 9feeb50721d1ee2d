"""Data types shared by the runner, the detectors, the store and the widgets.

Video layout, stated once and used everywhere:
    frames are RGB, channels-first, ``(T, C, H, W)`` for one video and ``(B, T, C, H, W)``
    for a batch. Stored as ``uint8``; handed to detectors as ``float32`` in ``[0, 1]``.
    A batch of videos of different lengths is zero-padded in time and carries a
    ``(B, T)`` boolean ``mask`` of valid frames and a ``(B,)`` ``fps``.
Frame indices in results are 0-based indices into the decoded video; event ``end`` is inclusive.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit._lazy import lazy_import
from evalkit.errors import ShapeError

if TYPE_CHECKING:
    import torch
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")


@dataclass
class Video:
    """A decoded video.

    Attributes:
        path: the file it was decoded from.
        frames: ``(T, C, H, W)`` uint8 RGB, after the run's resizing and frame sampling.
        fps: frame rate of ``frames`` (after sampling).
        frame_indices: ``(T,)`` int64, index of each kept frame in the full decoded stream.
        source_size: ``(width, height)`` of the file before resizing.
        source_fps: frame rate of the file.
        content_hash: hash of the file's bytes (keys the results store).
    """

    path: str
    frames: torch.Tensor
    fps: float
    frame_indices: np.ndarray
    source_size: tuple[int, int]
    source_fps: float
    content_hash: str
    # the same decoded frames scaled to the other sizes detectors declared (their max_side ->
    # Video), from the one decode; sizes equal to this one are not repeated
    resized: dict[int | None, Video] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise ShapeError(f"{self.path} frames", "(T, 3, H, W)", tuple(self.frames.shape))

    def at(self, max_side: int | None) -> Video:
        """The frames a detector declaring ``max_side`` gets (:attr:`BaseDetector.max_side`):
        its own size when it was decoded, else these."""
        return self.resized.get(max_side, self)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of ``frames``."""
        return int(self.frames.shape[3]), int(self.frames.shape[2])

    def float_frames(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """``(T, C, H, W)`` float32 in ``[0, 1]`` on ``device``."""
        return self.frames.to(device, non_blocking=True).float().div_(255.0)

    def numpy_hwc(self) -> np.ndarray:
        """``(T, H, W, C)`` uint8, contiguous: the layout MediaPipe and OpenCV take."""
        return np.ascontiguousarray(self.frames.permute(0, 2, 3, 1).numpy())


@dataclass
class VideoBatch:
    """Several videos padded to one length.

    Attributes:
        frames: ``(B, T, C, H, W)`` float32 in ``[0, 1]``; padded frames are zero.
        mask: ``(B, T)`` bool, True for real frames.
        fps: ``(B,)`` float32.
    """

    frames: torch.Tensor
    mask: torch.Tensor
    fps: torch.Tensor

    @classmethod
    def from_videos(cls, videos: list[Video], device: str | torch.device = "cpu") -> VideoBatch:
        """Pad ``videos`` (all of one spatial size) into a batch on ``device``."""
        sizes = {v.size for v in videos}
        if len(sizes) != 1:
            raise ValueError(f"VideoBatch.from_videos: expected videos of one (W, H), got {sorted(sizes)}")
        t_max = max(v.num_frames for v in videos)
        _, c, h, w = videos[0].frames.shape
        frames = torch.zeros((len(videos), t_max, c, h, w), dtype=torch.float32, device=device)
        mask = torch.zeros((len(videos), t_max), dtype=torch.bool, device=device)
        for i, v in enumerate(videos):
            frames[i, : v.num_frames] = v.float_frames(device)
            mask[i, : v.num_frames] = True
        fps = torch.tensor([v.fps for v in videos], dtype=torch.float32, device=device)
        return cls(frames=frames, mask=mask, fps=fps)


@dataclass
class FaceTrack:
    """Face-mesh landmarks of one video (MediaPipe face mesh with iris, 478 points).

    Attributes:
        landmarks: ``(T, F, 478, 3)`` float32; x and y normalised to ``[0, 1]`` by the frame's
            width and height, z in the same scale as x (MediaPipe's convention). NaN where
            face slot ``f`` has no face in frame ``t``. Slots are kept consistent over time by
            matching face centres frame to frame.
        image_size: ``(width, height)`` of the frames the mesh ran on (to convert to pixels).
    """

    landmarks: np.ndarray
    image_size: tuple[int, int]

    @property
    def present(self) -> np.ndarray:
        """``(T, F)`` bool: a face is in slot ``f`` at frame ``t``."""
        return ~np.isnan(self.landmarks[..., 0, 0])

    def pixels(self) -> np.ndarray:
        """``(T, F, 478, 3)`` with x, y, z in pixels (z scaled like x)."""
        w, h = self.image_size
        return self.landmarks * np.array([w, h, w], dtype=np.float32)


@dataclass
class PoseTrack:
    """Body landmarks of one video (MediaPipe pose, 33 points, model_complexity=1).

    Attributes:
        landmarks: ``(T, 33, 4)`` float32: x, y normalised to ``[0, 1]``, z (hip-centred,
            scale of x), visibility in ``[0, 1]``. NaN rows where no person was found.
        image_size: ``(width, height)`` of the frames pose ran on.
        limb_mask: optional ``(T, 8, S)`` float16: MediaPipe's person mask sampled at ``S``
            points along each limb bone, from its first joint to its second, in the order of
            :data:`evalkit.landmarks.LIMB_MASK_BONES` (upper arms, forearms, thighs, shins; left
            then right). NaN where unknown (no person, a point outside the frame). None when
            pose ran without the mask.
    """

    landmarks: np.ndarray
    image_size: tuple[int, int]
    limb_mask: np.ndarray | None = None

    @property
    def present(self) -> np.ndarray:
        """``(T,)`` bool: a person was found at frame ``t``."""
        return ~np.isnan(self.landmarks[:, 0, 0])

    def pixels(self) -> np.ndarray:
        """``(T, 33, 4)`` with x, y, z in pixels; visibility unchanged."""
        w, h = self.image_size
        return self.landmarks * np.array([w, h, w, 1.0], dtype=np.float32)


@dataclass
class VideoInputs:
    """Everything a detector may read for one video; fields it did not ask for are None."""

    video: Video
    face: FaceTrack | None = None
    pose: PoseTrack | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Event:
    """A localised finding: frames ``start``..``end`` (inclusive, 0-based) of the decoded video."""

    start: int
    end: int
    kind: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"start": int(self.start), "end": int(self.end), "kind": self.kind, "score": _finite(self.score)}


@dataclass
class DetectorResult:
    """What one detector says about one video.

    Attributes:
        score: per-video severity in the detector's own units (see its ``score_meaning``);
            NaN when it could not judge (then ``stats["skipped"]`` says why).
        flagged: the detector's verdict at its configured threshold.
        series: ``(T,)`` float32 per-frame evidence, NaN where undefined.
        events: localised findings with frame ranges.
        stats: JSON-serialisable details (counts, rates, which checks fired).
        maps: optional ``(T, h, w)`` float16 low-resolution spatial evidence per frame.
    """

    score: float
    flagged: bool
    series: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    events: list[Event] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    maps: np.ndarray | None = None

    @classmethod
    def skipped(cls, reason: str, num_frames: int = 0) -> DetectorResult:
        return cls(
            score=float("nan"),
            flagged=False,
            series=np.full(num_frames, np.nan, np.float32),
            stats={"skipped": reason},
        )

    @property
    def is_skipped(self) -> bool:
        return "skipped" in self.stats

    def remap_frames(self, frame_indices: np.ndarray) -> DetectorResult:
        """Map event frames from sampled indices to decoded-stream indices."""
        if len(frame_indices) == 0 or np.array_equal(frame_indices, np.arange(len(frame_indices))):
            return self
        last = len(frame_indices) - 1
        events = [
            dataclasses.replace(
                e,
                start=int(frame_indices[min(max(e.start, 0), last)]),
                end=int(frame_indices[min(max(e.end, 0), last)]),
            )
            for e in self.events
        ]
        return dataclasses.replace(self, events=events)

    def to_record(self) -> dict[str, Any]:
        """The JSON fields of the contract (without ``video`` and ``detector``)."""
        return {
            "score": _finite(self.score),
            "flagged": bool(self.flagged),
            "events": [e.to_dict() for e in self.events],
            "stats": to_jsonable(self.stats),
        }


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def to_jsonable(obj: Any) -> Any:
    """Turn numpy/torch scalars and arrays inside ``obj`` into plain JSON values (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _finite(obj)
    return obj

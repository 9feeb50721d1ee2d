"""evalkit: batched detectors for the failure modes of video-generation checkpoints.

Video layout everywhere: RGB ``(T, C, H, W)`` per video, ``(B, T, C, H, W)`` per batch, uint8 in
storage and float32 in ``[0, 1]`` when handed to detectors (see :mod:`evalkit._types`).

Importing evalkit loads neither torch nor MediaPipe: the names below that need them are
imported on first use (so ``evalkit --help`` starts at once).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalkit.errors import (
    DetectorConfigError,
    EvalkitError,
    LayoutError,
    ModelWeightsMissingError,
    RootBusyError,
    ShapeError,
    UnknownDetectorError,
    VideoDecodeError,
)
from evalkit.registry import DetectorFacts, available_detectors, detector_facts, get_detector, register

if TYPE_CHECKING:
    from evalkit._types import DetectorResult, Event, FaceTrack, PoseTrack, Video, VideoBatch, VideoInputs
    from evalkit.detector import BaseDetector, Detector
    from evalkit.root import RootResults, open_root
    from evalkit.video import DecodeOptions, decode_video

__version__ = "0.1.0"

_LAZY = {
    "BaseDetector": "evalkit.detector",
    "DecodeOptions": "evalkit.video",
    "Detector": "evalkit.detector",
    "DetectorResult": "evalkit._types",
    "Event": "evalkit._types",
    "FaceTrack": "evalkit._types",
    "PoseTrack": "evalkit._types",
    "RootResults": "evalkit.root",
    "Video": "evalkit._types",
    "VideoBatch": "evalkit._types",
    "VideoInputs": "evalkit._types",
    "decode_video": "evalkit.video",
    "open_root": "evalkit.root",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")


def score(*args: Any, **kwargs: Any) -> Any:
    """Score videos; see :func:`evalkit.runner.score`."""
    from evalkit.runner import score as _score

    return _score(*args, **kwargs)


def load_results(*args: Any, **kwargs: Any) -> Any:
    """Load stored results of a checkpoint root; see :func:`evalkit.store.load_results`."""
    from evalkit.store import load_results as _load

    return _load(*args, **kwargs)


__all__ = sorted([
    "BaseDetector",
    "DecodeOptions",
    "Detector",
    "DetectorConfigError",
    "DetectorFacts",
    "DetectorResult",
    "EvalkitError",
    "Event",
    "FaceTrack",
    "LayoutError",
    "ModelWeightsMissingError",
    "PoseTrack",
    "RootBusyError",
    "RootResults",
    "ShapeError",
    "UnknownDetectorError",
    "Video",
    "VideoBatch",
    "VideoDecodeError",
    "VideoInputs",
    "available_detectors",
    "decode_video",
    "detector_facts",
    "get_detector",
    "load_results",
    "open_root",
    "register",
    "score",
])

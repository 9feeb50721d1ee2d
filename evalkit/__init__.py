"""evalkit: batched detectors for the failure modes of video-generation checkpoints.

Video layout everywhere: RGB ``(T, C, H, W)`` per video, ``(B, T, C, H, W)`` per batch, uint8 in
storage and float32 in ``[0, 1]`` when handed to detectors (see :mod:`evalkit._types`).
"""

from __future__ import annotations

from pathlib import Path as _Path
from typing import Any

# `datasets/` has no __init__.py on purpose (a top-level `datasets` package would shadow
# HuggingFace's), and setuptools' editable finder cannot map such a folder under a regular
# package. In a checkout, let the subpackage search see the repository root so that
# `evalkit.datasets` resolves to ../datasets; installed wheels carry it inside evalkit/.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "datasets" / "footage.py").is_file() and not (_Path(__file__).parent / "datasets").exists():
    __path__.append(str(_checkout))  # type: ignore[name-defined]

from evalkit._types import DetectorResult, Event, FaceTrack, PoseTrack, Video, VideoBatch, VideoInputs
from evalkit.detector import BaseDetector, Detector
from evalkit.errors import (
    DetectorConfigError,
    EvalkitError,
    LayoutError,
    ModelWeightsMissingError,
    ShapeError,
    UnknownDetectorError,
    VideoDecodeError,
)
from evalkit.registry import available_detectors, get_detector, register
from evalkit.video import DecodeOptions, decode_video

__version__ = "0.1.0"


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
    "DetectorResult",
    "EvalkitError",
    "Event",
    "FaceTrack",
    "LayoutError",
    "ModelWeightsMissingError",
    "PoseTrack",
    "ShapeError",
    "UnknownDetectorError",
    "Video",
    "VideoBatch",
    "VideoDecodeError",
    "VideoInputs",
    "available_detectors",
    "decode_video",
    "get_detector",
    "load_results",
    "register",
    "score",
])

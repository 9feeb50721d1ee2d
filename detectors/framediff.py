"""Mean absolute frame difference: the simplest temporal signal, and the spine's reference
detector. Also what VBench's ``temporal_flickering`` averages (see ``REFERENCE.md``).

It is no failure-mode detector: it reports how much each frame changes and flags abrupt jumps
(a frame that changes far more than the clip usually does: a cut, a glitch, a teleport).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from evalkit._lazy import lazy_import
from evalkit._types import DetectorResult, Event, VideoBatch, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._events import runs
from evalkit.errors import ShapeError

if TYPE_CHECKING:
    import torch
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")


def frame_difference(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of each frame to the previous one, in 8-bit levels.

    Args:
        frames: ``(B, T, C, H, W)`` float in ``[0, 1]``.
        mask: ``(B, T)`` bool of valid frames (None: all valid).

    Returns:
        ``(B, T)`` float32; entry ``t`` compares frames ``t-1`` and ``t``; NaN at ``t = 0`` and
        wherever either frame is padding.
    """
    if frames.ndim != 5:
        raise ShapeError("frame_difference frames", "(B, T, C, H, W)", tuple(frames.shape))
    b, t = frames.shape[:2]
    diff = (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=(2, 3, 4)) * 255.0
    out = torch.full((b, t), float("nan"), dtype=torch.float32, device=frames.device)
    out[:, 1:] = diff
    if mask is not None:
        valid = mask.clone()
        valid[:, 1:] &= mask[:, :-1]
        out = torch.where(valid, out, torch.full_like(out, float("nan")))
    return out


@dataclass(frozen=True)
class FrameDifferenceConfig:
    """The framediff detector's options: a frame is a jump when it changes more than
    ``max(jump_factor x the clip's median change, min_jump)``."""

    jump_factor: float = 4.0  # times the clip's median change
    min_jump: float = 12.0  # 8-bit levels: a still clip's tiny median does not make noise a jump


class FrameDifferenceDetector(BaseDetector):
    name: ClassVar[str] = "framediff"
    failure_mode: ClassVar[str] = "abrupt change (reference signal)"
    requires: ClassVar[frozenset[str]] = frozenset({"frames"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    units: ClassVar[str] = "8-bit levels (0-255)"
    score_meaning: ClassVar[str] = "mean absolute change between consecutive frames, in 8-bit levels (0-255)"
    config_type: ClassVar[type] = FrameDifferenceConfig
    options: FrameDifferenceConfig

    def score_batch(self, inputs: list[VideoInputs]) -> list[DetectorResult]:
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, x in enumerate(inputs):
            by_size.setdefault(x.video.size, []).append(i)
        out: dict[int, DetectorResult] = {}
        for indices in by_size.values():
            batch = VideoBatch.from_videos([inputs[i].video for i in indices], self.device)
            series = frame_difference(batch.frames, batch.mask).cpu().numpy()  # one transfer per batch
            for row, i in enumerate(indices):
                out[i] = self._result(series[row, : inputs[i].video.num_frames])
        return [out[i] for i in range(len(inputs))]

    def _result(self, series: np.ndarray) -> DetectorResult:
        finite = series[np.isfinite(series)]
        if finite.size == 0:
            return DetectorResult.skipped("fewer than 2 frames", len(series))
        median = float(np.median(finite))
        limit = max(self.options.jump_factor * median, self.options.min_jump)
        jumps = np.nan_to_num(series, nan=0.0) > limit
        events = [Event(s, e, "jump", float(np.nanmax(series[s : e + 1]))) for s, e in runs(jumps)]
        return DetectorResult(
            score=float(finite.mean()),
            flagged=bool(events),
            series=series.astype(np.float32),
            events=events,
            stats={"median_change": median, "max_change": float(finite.max()), "jump_limit": limit,
                   "num_jumps": len(events)},
        )

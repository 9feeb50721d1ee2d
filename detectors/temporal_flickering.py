"""VBench-style temporal flickering, the baseline the confetti detector is compared with.

VBench scores ``(255 - mean_t mean |F_t - F_{t+1}|) / 255`` over whole frames (see
``shared/REFERENCE.md``); on frames in ``[0, 1]`` that is ``1 - mean |F_t - F_{t+1}|``. VBench
only runs it on static videos; here it runs on everything, so what it misses is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from evalkit._lazy import lazy_import
from evalkit._types import DetectorResult, VideoBatch, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors.framediff import frame_difference

if TYPE_CHECKING:
    import torch
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")


def frame_flicker(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference to the previous frame, ``(B, T, C, H, W)`` -> ``(B, T)``.

    Frame 0 and frames whose previous frame is padding get 0 (use ``mask[:, 1:] & mask[:, :-1]``).
    """
    return torch.nan_to_num(frame_difference(frames, mask) / 255.0, nan=0.0)


def temporal_flickering(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """VBench's temporal-flickering score per video, ``(B,)`` in ``[0, 1]`` (1 = no change at all).

    Args:
        frames: ``(B, T, C, H, W)`` float in ``[0, 1]``.
        mask: ``(B, T)`` bool of real frames, or None.
    """
    if mask is None:
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
    pairs = (mask[:, 1:] & mask[:, :-1]).float()
    diffs = frame_flicker(frames, mask)[:, 1:]
    return 1.0 - (diffs * pairs).sum(1) / pairs.sum(1).clamp_min(1.0)


@dataclass(frozen=True)
class TemporalFlickeringConfig:
    """The temporal_flickering detector's options."""

    threshold: float = 0.95  # flag a video scoring below this (1 = static)


class TemporalFlickeringDetector(BaseDetector):
    """VBench's whole-frame temporal flickering as a detector (a baseline, not a confetti finder)."""

    name = "temporal_flickering"
    failure_mode = "flicker"
    requires = frozenset({"frames"})
    higher_is_worse = False
    version = "1"
    units = "fraction (0-1, 1 = static)"
    score_meaning = "VBench temporal flickering: 1 - mean absolute difference of consecutive frames (1 = static)."
    config_type: ClassVar[type] = TemporalFlickeringConfig
    options: TemporalFlickeringConfig

    def score(self, inputs: VideoInputs) -> DetectorResult:
        return self.score_batch([inputs])[0]

    def score_batch(self, inputs: Sequence[VideoInputs]) -> list[DetectorResult]:
        out = []
        for item in inputs:  # videos of any size; each is one batched tensor op over its frames
            video = item.video
            if video.num_frames < 2:
                out.append(DetectorResult.skipped(f"needs >= 2 frames, got {video.num_frames}", video.num_frames))
                continue
            batch = VideoBatch.from_videos([video], self.device)
            with torch.no_grad():
                score = float(temporal_flickering(batch.frames, batch.mask)[0])
                series = frame_flicker(batch.frames, batch.mask)[0].cpu().numpy().astype(np.float32)
            series[0] = np.nan
            out.append(
                DetectorResult(
                    score=score,
                    flagged=bool(score < self.options.threshold),
                    series=series,
                    stats={"mean_abs_diff": 1.0 - score},
                )
            )
        return out

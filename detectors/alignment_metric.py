"""``VideoCLIPScore``: the alignment score as a ``torchmetrics`` metric, over the functional
form in :mod:`evalkit.detectors.alignment` (a module of its own because importing torchmetrics
takes seconds: the detector does not need it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric

from evalkit.detectors._clip import load_local_model
from evalkit.detectors.alignment import AlignmentConfig, _clip_score_compute, _clip_score_update
from evalkit.errors import DetectorConfigError


class VideoCLIPScore(Metric):
    """CLIPScore over frames as a ``torchmetrics`` metric: ``max(sum 100 cos / count, 0)``.

    Every (unmasked) frame of a video counts once, paired with the video's prompt, so the value
    equals ``torchmetrics.multimodal.CLIPScore`` fed the same frames and prompts, and does not
    depend on how the frames were split into batches.

    Args:
        model, processor: a loaded CLIP-family model and processor; or leave them out and give
            ``model_name_or_path`` (a local directory or cached repo id; default ``$EVALKIT_ALIGNMENT_MODEL``).
        long_text: ``"truncate"`` or ``"chunk"``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    score_sum: torch.Tensor
    count: torch.Tensor

    def __init__(
        self, model: Any = None, processor: Any = None, model_name_or_path: str | None = None,
        long_text: str = AlignmentConfig.long_text, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (model is None) != (processor is None):
            raise DetectorConfigError("VideoCLIPScore: expected both model and processor, or neither")
        if model is None:
            model, processor = load_local_model(model_name_or_path)
        self.model, self.processor, self.long_text = model, processor, long_text
        self.add_state("score_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, frames: torch.Tensor, texts: Sequence[str], mask: torch.Tensor | None = None) -> None:
        """Add frames ``(B, T, C, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]`` with one text per video/image."""
        with torch.no_grad():
            score_sum, count = _clip_score_update(frames, texts, self.model, self.processor, mask, self.long_text)
        self.score_sum += score_sum.to(self.score_sum.device)
        self.count += count.to(self.count.device)

    def compute(self) -> torch.Tensor:
        return _clip_score_compute(self.score_sum, self.count)

"""Prompt alignment: CLIPScore of sampled frames against the video's prompt.

Per frame ``s_t = max(100 * cos(E_image(frame_t), E_text(prompt)), 0)`` (the CLIPScore
convention of Hessel et al. 2021 and ``torchmetrics``); per video the score is
``max(mean_t 100 * cos_t, 0)`` over the sampled frames, which is what
``torchmetrics.multimodal.CLIPScore`` returns for those frames paired with the prompt.
Higher is better. Embedding similarity correlates poorly with people on generated video, so
compare checkpoints per prompt (:func:`rank_checkpoints`) and never use it as the only signal.

Layout: frames ``(B, T, C, H, W)`` (videos) or ``(N, C, H, W)`` (images), float in ``[0, 1]``.
The model (CLIP or SigLIP through ``transformers``) comes from a local directory or the local
HuggingFace cache, named by the option ``model`` or ``$EVALKIT_ALIGNMENT_MODEL``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from evalkit._lazy import lazy_import
from evalkit._types import DetectorResult, Event, VideoInputs
from evalkit.detector import BaseDetector, config_dict
from evalkit.detectors._clip import (
    LONG_TEXT_POLICIES,
    MODEL_ENV,
    configured_model,
    encode_frames,
    encode_pixels,
    encode_texts,
    load_local_model,
    preprocess_frames,
    resolve_local_model,
)
from evalkit.errors import DetectorConfigError, LayoutError, ModelWeightsMissingError, ShapeError

if TYPE_CHECKING:
    import torch
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")

log = logging.getLogger(__name__)

__all__ = [
    "AlignmentConfig",
    "AlignmentDetector",
    "clip_score",
    "frame_text_similarity",
    "load_local_model",
    "rank_checkpoints",
    "resolve_local_model",
    "sample_frame_indices",
]

if TYPE_CHECKING:
    import pandas as pd

_DTYPES = ("float32", "float16", "bfloat16")  # names of torch dtypes the model may run in


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    """The alignment detector's options, the one definition of their defaults."""

    model: str | None = None  # local dir or cached repo id; None: $EVALKIT_ALIGNMENT_MODEL
    frames_per_second: float = 2.0  # sampled frames per second of video
    max_frames: int = 32  # cap per video (spread over the whole video)
    batch_size: int = 64  # frames per forward pass, across videos
    long_text: str = "truncate"  # or "chunk"; see :func:`~evalkit.detectors._clip.encode_texts`
    dtype: str = "float32"  # float16 / bfloat16 on a GPU
    threshold: float = 20.0  # flag below this; uncalibrated placeholder for CLIP ViT-B/L (see docs)


def frame_text_similarity(
    frames: torch.Tensor, texts: Sequence[str], model: Any, processor: Any, long_text: str = AlignmentConfig.long_text
) -> torch.Tensor:
    """Raw ``100 * cos`` between each frame and its video's (or image's) text.

    Args:
        frames: ``(B, T, C, H, W)`` with ``B`` texts, or ``(N, C, H, W)`` with ``N`` texts; float in ``[0, 1]``.
        texts: one text per video (or image).
        model, processor: a CLIP-family ``transformers`` model and its processor.
        long_text: ``"truncate"`` (with a warning) or ``"chunk"``; see :func:`~evalkit.detectors._clip.encode_texts`.

    Returns:
        ``(B, T)`` or ``(N,)`` float32, unclamped.
    """
    if frames.ndim not in (4, 5) or frames.shape[-3] != 3:
        raise ShapeError("frames", "(B, T, 3, H, W) or (N, 3, H, W)", tuple(frames.shape))
    if isinstance(texts, str):
        texts = [texts]
    if len(texts) != frames.shape[0]:
        raise ShapeError("texts", f"one text per video/image ({frames.shape[0]})", (len(texts),))
    lead = frames.shape[:-3]
    image = encode_frames(frames.reshape(-1, *frames.shape[-3:]), model, processor).reshape(*lead, -1)
    text, _ = encode_texts(list(texts), model, processor, long_text)
    text = text.to(image.device)
    return 100.0 * (image * (text[:, None] if frames.ndim == 5 else text)).sum(-1)


def _clip_score_update(
    frames: torch.Tensor, texts: Sequence[str], model: Any, processor: Any,
    mask: torch.Tensor | None = None, long_text: str = AlignmentConfig.long_text,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of raw ``100 * cos`` over valid frames and their count (``mask``: ``(B, T)`` bool)."""
    sim = frame_text_similarity(frames, texts, model, processor, long_text)
    if mask is not None:
        if mask.shape != sim.shape:
            raise ShapeError("mask", str(tuple(sim.shape)), tuple(mask.shape))
        valid = mask.to(sim.device, torch.bool)
        return sim[valid].sum(), valid.sum()
    return sim.sum(), torch.tensor(sim.numel(), device=sim.device)


def _clip_score_compute(score_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """CLIPScore from sums: ``max(sum / count, 0)``."""
    return torch.clamp(score_sum / count, min=0.0)


def clip_score(
    frames: torch.Tensor, texts: Sequence[str], model: Any, processor: Any,
    mask: torch.Tensor | None = None, long_text: str = AlignmentConfig.long_text,
) -> torch.Tensor:
    """CLIPScore of each video (or image) against its text.

    Args:
        frames: ``(B, T, C, H, W)`` videos with ``B`` texts, or ``(N, C, H, W)`` images with ``N`` texts,
            float in ``[0, 1]``.
        texts: one prompt per video (or image).
        model, processor: a CLIP-family ``transformers`` model and its processor
            (:func:`load_local_model` loads them from local files).
        mask: optional ``(B, T)`` bool of real (unpadded) frames.
        long_text: ``"truncate"`` or ``"chunk"`` for prompts over the model's token limit.

    Returns:
        ``(B,)`` per-video ``max(mean_t 100 cos, 0)``, or ``(N,)`` per-image ``max(100 cos, 0)``.
        Differentiable through ``frames`` unless called under ``torch.no_grad``.
    """
    sim = frame_text_similarity(frames, texts, model, processor, long_text)
    if sim.ndim == 2:
        weight = torch.ones_like(sim) if mask is None else mask.to(sim.device, sim.dtype)
        sim = (sim * weight).sum(1) / weight.sum(1)
    return torch.clamp(sim, min=0.0)


def sample_frame_indices(num_frames: int, fps: float, frames_per_second: float, max_frames: int) -> np.ndarray:
    """``(K,)`` int64: ``frames_per_second`` evenly spaced frames (bin centres), at most ``max_frames``, at least 1."""
    duration_s = num_frames / fps if fps > 0 else 0.0
    k = min(num_frames, max_frames, max(1, math.ceil(duration_s * frames_per_second - 1e-9)))
    return np.unique(np.floor((np.arange(k) + 0.5) * num_frames / k).astype(np.int64))


def _low_alignment_events(indices: np.ndarray, scores: np.ndarray, threshold: float) -> list[Event]:
    """Runs of consecutive sampled frames scoring below ``threshold``."""
    low = scores < threshold
    events, start = [], None
    for j, is_low in enumerate(np.append(low, False)):  # over K sampled scores, already on the CPU
        if is_low and start is None:
            start = j
        elif not is_low and start is not None:
            events.append(Event(int(indices[start]), int(indices[j - 1]), "low_alignment", float(scores[start:j].mean())))
            start = None
    return events


class AlignmentDetector(BaseDetector):
    """Prompt alignment by CLIPScore; frames of many videos go through the model together."""

    name: ClassVar[str] = "alignment"
    failure_mode: ClassVar[str] = "prompt alignment"
    requires: ClassVar[frozenset[str]] = frozenset({"frames", "prompt"})
    higher_is_worse: ClassVar[bool] = False
    version: ClassVar[str] = "1"
    units: ClassVar[str] = "CLIPScore (0-100)"
    score_meaning: ClassVar[str] = (
        "CLIPScore max(100*cos, 0) of sampled frames vs the prompt, averaged over the video (0-100, higher = "
        "better aligned); meaningful only with real weights and only relative to other checkpoints on the same prompt."
    )
    config_type: ClassVar[type] = AlignmentConfig
    options: AlignmentConfig

    def __init__(self, device: str | torch.device = "cpu", **config: Any) -> None:
        super().__init__(device=device, **config)
        c = self.options
        if c.long_text not in LONG_TEXT_POLICIES:
            raise DetectorConfigError(f"alignment: long_text: expected one of {LONG_TEXT_POLICIES}, got {c.long_text!r}")
        if c.dtype not in _DTYPES:
            raise DetectorConfigError(f"alignment: dtype: expected one of {sorted(_DTYPES)}, got {c.dtype!r}")
        if not (c.frames_per_second > 0 and c.max_frames >= 1 and c.batch_size >= 1):
            raise DetectorConfigError(
                "alignment: expected frames_per_second > 0, max_frames >= 1, batch_size >= 1, got "
                f"{c.frames_per_second}, {c.max_frames}, {c.batch_size}"
            )
        self.model_path = resolve_local_model(c.model)  # fail fast; the weights load on first use
        # Key stored results by the model actually used, not by "whatever the env var said".
        self.options = dataclasses.replace(c, model=str(self.model_path))
        self.config = config_dict(self.options)
        self._model: Any = None
        self._processor: Any = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the default configuration cannot run here (no model configured or found), else None."""
        if configured_model() is None:
            return f"no alignment model configured (set {MODEL_ENV} to a local CLIP/SigLIP directory or cached repo id)"
        try:
            resolve_local_model(None)
        except ModelWeightsMissingError as exc:
            return str(exc)
        return None

    def load(self) -> tuple[Any, Any]:
        """``(model, processor)``, loaded from local files on first call."""
        if self._model is None:
            self._model, self._processor = load_local_model(self.model_path, self.device, getattr(torch, self.options.dtype))
        return self._model, self._processor

    def score(self, inputs: VideoInputs) -> DetectorResult:
        return self.score_batch([inputs])[0]

    def score_batch(self, inputs: Sequence[VideoInputs]) -> list[DetectorResult]:
        """Score videos together: one text encoding per distinct prompt, frames in chunks of ``batch_size``."""
        results: list[DetectorResult | None] = [None] * len(inputs)
        todo = []
        for i, x in enumerate(inputs):
            if x.prompt is None or not x.prompt.strip():
                results[i] = DetectorResult.skipped("no prompt", x.video.num_frames)
            elif x.video.num_frames == 0:
                results[i] = DetectorResult.skipped("no frames")
            else:
                todo.append(i)
        if not todo:
            return results  # type: ignore[return-value]
        c = self.options
        model, processor = self.load()
        sampled = [
            sample_frame_indices(inputs[i].video.num_frames, inputs[i].video.fps, c.frames_per_second, c.max_frames)
            for i in todo
        ]
        prompts = sorted({inputs[i].prompt for i in todo})  # type: ignore[misc]
        prompt_index = {p: k for k, p in enumerate(prompts)}
        log.debug("alignment: %d videos, %d sampled frames, %d prompts", len(todo), sum(map(len, sampled)), len(prompts))
        with torch.inference_mode():
            text, infos = encode_texts(prompts, model, processor, c.long_text)
            # Videos of different sizes can't share a tensor: bring each one's sampled frames to the
            # model's input size first, then batch the forward passes across videos.
            image_processor = getattr(processor, "image_processor", processor)
            pixels = torch.cat([
                preprocess_frames(
                    inputs[i].video.frames[torch.from_numpy(idx)].to(self.device).float().div_(255.0), image_processor
                )
                for i, idx in zip(todo, sampled)
            ])
            image = encode_pixels(pixels, model, c.batch_size)
            prompt_of_frame = torch.cat([
                torch.full((len(idx),), prompt_index[inputs[i].prompt], dtype=torch.long) for i, idx in zip(todo, sampled)
            ]).to(image.device)
            sims = (100.0 * (image * text.to(image.device)[prompt_of_frame]).sum(-1)).cpu().numpy()
        offsets = np.cumsum([0] + [len(idx) for idx in sampled])
        for j, (i, idx) in enumerate(zip(todo, sampled)):
            raw = sims[offsets[j] : offsets[j + 1]]
            results[i] = self._result(inputs[i], idx, raw, infos[prompt_index[inputs[i].prompt]].to_stats())
        return results  # type: ignore[return-value]

    def _result(self, x: VideoInputs, idx: np.ndarray, raw: np.ndarray, text_stats: dict[str, Any]) -> DetectorResult:
        frame_scores = np.maximum(raw, 0.0).astype(np.float32)
        score = max(float(raw.mean()), 0.0)
        series = np.full(x.video.num_frames, np.nan, np.float32)
        series[idx] = frame_scores
        threshold = float(self.options.threshold)
        return DetectorResult(
            score=score,
            flagged=score < threshold,
            series=series,
            events=_low_alignment_events(idx, frame_scores, threshold),
            stats={
                "model": str(self.model_path),
                "sampled_frames": idx.tolist(),
                "frame_score_min": float(frame_scores.min()),
                "frame_score_max": float(frame_scores.max()),
                "frame_score_std": float(frame_scores.std()),
                **text_stats,
            },
        )


def rank_checkpoints(results: pd.DataFrame, detector: str = "alignment", higher_is_better: bool = True) -> pd.DataFrame:
    """Rank checkpoints per prompt by their mean score over that prompt's videos.

    Args:
        results: stored results with columns ``checkpoint``, ``prompt_id``, ``detector``, ``score``
            (one row per video and detector; NaN scores are skipped videos and are left out).
        detector: which detector's rows to rank.
        higher_is_better: True for alignment; pass False for a detector whose score is a severity.

    Returns:
        One row per (prompt_id, checkpoint): ``score`` (mean), ``n_videos`` (scored), ``rank``
        (1 = best within the prompt, ties share the best rank, NaN if nothing was scored) and
        ``gap_to_best`` (score distance to the prompt's best checkpoint, >= 0), sorted by prompt and rank.
        ``ranks.groupby("checkpoint")["rank"].mean()`` then summarises checkpoints over prompts.
    """
    needed = {"checkpoint", "prompt_id", "detector", "score"}
    if not needed <= set(results.columns):
        raise LayoutError("results", f"expected columns {sorted(needed)}, got {sorted(map(str, results.columns))}")
    rows = results.loc[results["detector"] == detector, ["prompt_id", "checkpoint", "score"]]
    rows = rows.astype({"score": float})
    table = rows.groupby(["prompt_id", "checkpoint"], sort=True)["score"].agg(score="mean", n_videos="count").reset_index()
    by_prompt = table.groupby("prompt_id")["score"]
    table["rank"] = by_prompt.rank(ascending=not higher_is_better, method="min")
    best = by_prompt.transform("max" if higher_is_better else "min")
    table["gap_to_best"] = (best - table["score"]).abs()
    return table.sort_values(["prompt_id", "rank", "checkpoint"], na_position="last").reset_index(drop=True)


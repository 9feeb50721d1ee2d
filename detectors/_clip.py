"""Local loading and batched encoding for CLIP-family models (CLIP, SigLIP) through ``transformers``.

Weights come only from a local directory or the local HuggingFace cache (``local_files_only``);
nothing is downloaded. Frames are preprocessed in torch on the model's device (resize, centre
crop, normalise with the processor's own settings), so a batch of videos never leaves the GPU.

Image layout: ``(N, C, H, W)`` float in ``[0, 1]``, RGB. Embeddings are L2-normalised ``(N, D)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit._lazy import lazy_import
from evalkit.errors import DetectorConfigError, ModelWeightsMissingError, ShapeError

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

log = logging.getLogger(__name__)

MODEL_ENV = "EVALKIT_ALIGNMENT_MODEL"
LONG_TEXT_POLICIES = ("truncate", "chunk")
_PAD_TO_MAX_LENGTH = {"siglip"}  # SigLIP was trained on texts padded to max_length, without a mask
_WHAT_TO_PLACE = (
    "a directory with config.json, the weights (model.safetensors or pytorch_model.bin), "
    "preprocessor_config.json and the tokenizer files (for example what "
    "`huggingface-cli download openai/clip-vit-large-patch14` puts in the cache)"
)


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def configured_model(name: str | os.PathLike | None = None) -> str | None:
    """The model named by ``name`` or else by ``$EVALKIT_ALIGNMENT_MODEL`` (None if neither)."""
    name = str(name or os.environ.get(MODEL_ENV) or "").strip()
    return name or None


def resolve_local_model(name: str | os.PathLike | None) -> Path:
    """Find the local directory holding model ``name`` (a path or a cached HuggingFace repo id).

    Raises:
        ModelWeightsMissingError: nothing is configured, or the weights are not where it looks;
            the message says what to place where.
    """
    name = configured_model(name)
    if name is None:
        raise ModelWeightsMissingError(
            f"no alignment model configured: set {MODEL_ENV} (or the detector option `model`) to {_WHAT_TO_PLACE}, "
            f"or to the id of a HuggingFace repo already in the local cache {_hub_cache()}"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelWeightsMissingError(
                f"{path}: expected a model directory with config.json, got {sorted(p.name for p in path.iterdir())[:8]}; "
                f"place {_WHAT_TO_PLACE} there"
            )
        return path
    looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") > 1  # a repo id is "org/name"
    if not looks_like_path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(name, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError, OSError) as exc:
            log.debug("%s not in the local HF cache: %s", name, exc)
    raise ModelWeightsMissingError(
        f"alignment model {name!r} not found: it is not a directory, and no repo of that id is in the local "
        f"HuggingFace cache {_hub_cache()} (nothing is downloaded at run time). Either point {MODEL_ENV} at "
        f"{_WHAT_TO_PLACE}, or on a machine with network run `huggingface-cli download {name}` and copy "
        f"its cache folder models--{name.replace('/', '--')} into {_hub_cache()}"
    )


def load_local_model(name: str | os.PathLike | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Load ``(model, processor)`` for ``name`` (see :func:`resolve_local_model`) in eval mode on
    ``device``, in ``dtype`` (default float32)."""
    path = resolve_local_model(name)
    from transformers import AutoModel, AutoProcessor

    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except OSError as exc:
        raise ModelWeightsMissingError(f"{path}: cannot load the model ({exc}); place {_WHAT_TO_PLACE} there") from exc
    for method in ("get_image_features", "get_text_features"):
        if not hasattr(model, method):
            raise DetectorConfigError(f"{path}: expected a CLIP-family model with {method}(), got {type(model).__name__}")
    log.info("loaded alignment model %s (%s) on %s", path, type(model).__name__, device)
    return model.to(device, dtype or torch.float32).eval(), processor


def preprocess_frames(frames: torch.Tensor, image_processor: Any) -> torch.Tensor:
    """Resize, centre-crop and normalise like ``image_processor``, in torch.

    Args:
        frames: ``(N, C, H, W)`` float in ``[0, 1]``.
        image_processor: a ``transformers`` image processor (CLIP- or SigLIP-style settings).

    Returns:
        ``(N, C, h, w)`` pixel values ready for ``model.get_image_features``.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ShapeError("frames", "(N, 3, H, W)", tuple(frames.shape))
    x = frames.float()
    size = getattr(image_processor, "size", None) or {}
    h, w = x.shape[-2:]
    if getattr(image_processor, "do_resize", True) and size:
        if "shortest_edge" in size:
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
            out = (new_long, new_short) if w <= h else (new_short, new_long)
        else:
            out = (size["height"], size["width"])
        if out != (h, w):
            x = F.interpolate(x, size=out, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
    if getattr(image_processor, "do_center_crop", False):
        crop = image_processor.crop_size
        ch, cw = crop["height"], crop["width"]
        h, w = x.shape[-2:]
        if ch > h or cw > w:
            x = F.pad(x, ((max(cw - w, 0) + 1) // 2, max(cw - w, 0) // 2, (max(ch - h, 0) + 1) // 2, max(ch - h, 0) // 2))
            h, w = x.shape[-2:]
        top, left = (h - ch) // 2, (w - cw) // 2
        x = x[..., top : top + ch, left : left + cw]
    if getattr(image_processor, "do_normalize", True):
        mean = torch.tensor(image_processor.image_mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(image_processor.image_std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
    return x


def encode_pixels(pixels: torch.Tensor, model: Any, batch_size: int | None = None) -> torch.Tensor:
    """Unit image embeddings ``(N, D)`` of pixel values ``(N, C, h, w)`` already through :func:`preprocess_frames`.

    Runs in chunks of ``batch_size`` (None: all at once).
    """
    if pixels.ndim != 4 or pixels.shape[0] == 0:
        raise ShapeError("pixels", "(N, 3, h, w) with N >= 1", tuple(pixels.shape))
    param = next(model.parameters())
    step = batch_size or int(pixels.shape[0])
    chunks = [
        model.get_image_features(pixel_values=pixels[k : k + step].to(param.device, param.dtype)).float()
        for k in range(0, int(pixels.shape[0]), step)
    ]
    return F.normalize(torch.cat(chunks), dim=-1)


def encode_frames(frames: torch.Tensor, model: Any, processor: Any, batch_size: int | None = None) -> torch.Tensor:
    """Unit image embeddings ``(N, D)`` of frames ``(N, C, H, W)`` float in ``[0, 1]``.

    Preprocesses and encodes in chunks of ``batch_size`` frames (None: all at once).
    Differentiable unless called under ``torch.no_grad``.
    """
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ShapeError("frames", "(N, 3, H, W) with N >= 1", tuple(frames.shape))
    image_processor = getattr(processor, "image_processor", processor)
    device = next(model.parameters()).device
    step = batch_size or int(frames.shape[0])
    chunks = [
        encode_pixels(preprocess_frames(frames[k : k + step].to(device), image_processor), model)
        for k in range(0, int(frames.shape[0]), step)
    ]
    return torch.cat(chunks)


@dataclass(frozen=True)
class TextInfo:
    """How one text was fed to the model: its token count, the model's limit, what was done."""

    num_tokens: int
    max_tokens: int
    truncated: bool
    num_chunks: int

    def to_stats(self) -> dict[str, Any]:
        return {
            "text_tokens": self.num_tokens,
            "text_max_tokens": self.max_tokens,
            "text_truncated": self.truncated,
            "text_chunks": self.num_chunks,
        }


def text_token_limit(model: Any, tokenizer: Any) -> int:
    """The model's text length limit in tokens, special tokens included."""
    limits = [getattr(getattr(model.config, "text_config", model.config), "max_position_embeddings", None)]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:  # unset tokenizers report 1e30
        limits.append(tokenizer.model_max_length)
    limits = [int(x) for x in limits if x]
    if not limits:
        raise DetectorConfigError(f"{type(model).__name__}: cannot tell its text length limit")
    return min(limits)


def encode_texts(
    texts: list[str], model: Any, processor: Any, long_text: str = "truncate"
) -> tuple[torch.Tensor, list[TextInfo]]:
    """Unit text embeddings ``(M, D)`` of ``M`` texts, and how each text was handled.

    A text longer than the model's limit is never cut silently: ``long_text="truncate"`` keeps
    its first tokens (the end-of-text token stays, unlike a plain slice of ``input_ids``) and
    logs a warning; ``"chunk"`` encodes consecutive windows and averages their unit embeddings.
    """
    if long_text not in LONG_TEXT_POLICIES:
        raise DetectorConfigError(f"long_text: expected one of {LONG_TEXT_POLICIES}, got {long_text!r}")
    tokenizer = getattr(processor, "tokenizer", processor)
    max_tokens = text_token_limit(model, tokenizer)
    num_special = len(tokenizer.build_inputs_with_special_tokens([]))
    room = max_tokens - num_special
    content = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    sequences: list[list[int]] = []
    owner: list[int] = []
    infos: list[TextInfo] = []
    for i, ids in enumerate(content):  # a loop over prompts (tokenisation), not frames
        num_tokens = len(ids) + num_special
        if len(ids) <= room:
            chunks = [ids]
        elif long_text == "truncate":
            chunks = [ids[:room]]
            log.warning(
                "prompt %r has %d tokens, over the model's limit of %d: truncated to its first %d "
                "(option long_text='chunk' keeps all of it)", texts[i][:60], num_tokens, max_tokens, max_tokens,
            )
        else:
            chunks = [ids[k : k + room] for k in range(0, len(ids), room)]
            log.info("prompt %r has %d tokens: encoded as %d chunks", texts[i][:60], num_tokens, len(chunks))
        infos.append(TextInfo(num_tokens, max_tokens, long_text == "truncate" and len(ids) > room, len(chunks)))
        sequences += [tokenizer.build_inputs_with_special_tokens(c) for c in chunks]
        owner += [i] * len(chunks)
    pad_to_max = getattr(model.config, "model_type", "") in _PAD_TO_MAX_LENGTH
    length = max_tokens if pad_to_max else max(len(seq) for seq in sequences)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):  # right padding, as both CLIP and SigLIP tokenizers do
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = 1
    device = next(model.parameters()).device
    kwargs = {"input_ids": input_ids.to(device)}
    if "attention_mask" in getattr(tokenizer, "model_input_names", ()):
        kwargs["attention_mask"] = attention_mask.to(device)
    chunk_embeds = F.normalize(model.get_text_features(**kwargs).float(), dim=-1)
    index = torch.tensor(owner, device=chunk_embeds.device)
    summed = torch.zeros((len(texts), chunk_embeds.shape[1]), device=chunk_embeds.device).index_add_(0, index, chunk_embeds)
    return F.normalize(summed, dim=-1), infos

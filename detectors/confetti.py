"""Confetti: small, high-contrast detail that flickers in and out of moving video.

Video models trained on fast motion (rain, wings, hair) produce "sparkle": specks that exist
in one frame and are gone in the next, in a way no motion explains. Whole-frame averages
dilute it and flow-masked warping errors mask it out (see ``shared/REFERENCE.md``), so this
detector looks for it locally:

1. Frames are resampled to a working grid whose shorter side is ``work_short_side`` pixels
   (smaller videos are never enlarged), so sizes are fractions of the frame: luma at that
   grid, the two colour differences ``R - Y`` and ``B - Y`` at half of it. Frames at least
   twice the grid also give two fine-speck planes, the largest ``max(R, G, B)`` and
   ``1 - min(R, G, B)`` of each working pixel's cell, where a speck of 1-3 frame pixels keeps
   its contrast (the detector asks the runner for frames up to 3840 px: ``max_side``).
2. Motion is compensated in both directions (t -> t+1, t+1 -> t) by block matching on 16-pixel
   blocks, searched at quarter and half resolution only (vectors exact to 2 pixels); the
   search radius is a speed in frame heights per second, divided by fps. The fine-speck planes
   (version 5) move by those vectors refined by +-1 pixel on 8-pixel blocks of the full-resolution
   luma: real detail of a fast, deforming object (a wheel's spokes, fur) then finds itself in the
   neighbour frame, where a 16-pixel block's vector, exact to 2 pixels, missed it by a cell.
3. A pixel is *incoherent* by how far its value lies outside the 3x3 range of the
   motion-compensated neighbour frame, taking the best of the vectors of its own block and the
   two neighbouring blocks nearest to it, per plane. A frame counts as incoherent against both
   neighbours (t-1 and t+1), or against one while its neighbour's speck is incoherent one frame
   further on (two-frame specks); occlusions, which one side explains, do not count. Frames
   across a scene cut are not neighbours.
4. Each plane is divided by its contrast floor: ``min_contrast``, raised to ``noise_factor``
   times the clip's own noise sigma, measured on the best-matching blocks of every frame pair
   (film grain and sensor noise raise it). Only *small* detail is kept (a top-hat against line
   openings in four directions), above 1, and only where it is most (``min_small_share``) of the
   unexplained contrast under it: a real object too fast to compensate is wider than a speck.
5. The score is the confetti area per moving area, at its worst over ``peak_window_s``.

The functional form :func:`confetti_maps` runs on ``(B, T, C, H, W)`` tensors in one pass on any
device; :class:`ConfettiDetector` wraps it for the runner and batches videos of one size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from evalkit._lazy import lazy_import
from evalkit._types import DetectorResult, VideoBatch, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._config import with_options
from evalkit.detectors.blockmotion import (
    ZERO_BIAS, PatchSampler, block_search, diagonal_max, diagonal_min, dilate, erode, from_blocks, halve, max_vector, motion_vectors,
    pyramid, to_blocks,
)
from evalkit.detectors._events import series_events
from evalkit.errors import DetectorConfigError, ShapeError

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

BLOCK = 16  # block size of the motion search, in working-grid pixels
_LUMA = (0.299, 0.587, 0.114)
# RGB -> luma, R - Y, B - Y (rows); made a tensor where it is used (torch loads on first use)
_COLOUR_MIX = (_LUMA, (1 - _LUMA[0], -_LUMA[1], -_LUMA[2]), (-_LUMA[0], -_LUMA[1], 1 - _LUMA[2]))


@dataclass(frozen=True)
class ConfettiConfig:
    """The confetti detector's options, the one definition of their defaults (:class:`ConfettiDetector`
    and the functional forms :func:`confetti_maps`, :func:`confetti_score` all read them here)."""

    threshold: float = 0.6  # flag a video whose score (per-mille of the moving area) exceeds this
    event_level: float = 0.5  # frames above this per-mille make a confetti event
    event_gap_s: float = 0.1  # events closer than this merge
    min_event_s: float = 0.06  # shorter events are dropped
    peak_window_s: float = 0.1  # the score averages the worst frames over this long
    min_moving: float = 0.2  # the moving area counts as at least this share of the frame
    work_short_side: int = 128  # shorter side of the working grid, in pixels (smaller videos keep theirs)
    max_speed: float = 1.0  # fastest motion compensated, in frame heights per second
    min_speed: float = 0.05  # slowest motion that counts as moving, in frame heights per second
    min_contrast: float = 0.14  # smallest excess ([0, 1] of luma or of a colour difference) that counts
    noise_factor: float = 5.0  # the contrast floor of each plane is at least this many noise sigmas of it
    colour: bool = True  # also look for specks in the colour-difference planes (R - Y, B - Y)
    max_spot_size: float = 0.025  # widest speck, as a fraction of the shorter side
    # count specks in moving regions only (by default static regions count too: there
    # compensation is trivial and only the noise floor matters)
    moving_only: bool = False
    # also look for specks of a few frame pixels in frames at least twice the working grid: the
    # brightest and the darkest frame pixel of each working pixel's cell (max and min over R, G,
    # B), checked for coherence like the other planes (a box average would dilute them by the
    # cell's area: a 1-pixel speck of a 1080p frame is 1/70 of a 128-px working pixel)
    fine_specks: bool = True
    fine_contrast: float = 0.2  # smallest excess of a fine-speck plane that counts (its min_contrast; chosen on the tune split)
    fine_block: int = 8  # the fine planes' motion: the luma's vectors refined by +-1 pixel on blocks this wide (16: unrefined)
    # a speck is small detail that makes up at least this share of the unexplained contrast
    # under it: a real object that moves too fast to compensate or deforms (a thrown ball,
    # animated letters) is wider than a speck, and the top-hat leaves only a small tip of it
    # (chosen on the real tune split: the middle of its widest margin, 0.75-0.85, leaned low)
    min_small_share: float = 0.75
    map_block: int = 8  # the stored heat map averages blocks of this many working pixels
    chunk: int = 32  # frame pairs processed at once (memory bound only; results do not depend on it)


@dataclass
class ConfettiMaps:
    """Per-frame evidence for a batch, all on the input device.

    Attributes:
        spots: ``(B, T, h, w)`` bool, confetti pixels (small, incoherent, above the contrast
            floor, in moving regions) on the working grid.
        moving: ``(B, T, h, w)`` bool, pixels in moving regions.
        excess: ``(B, T, h, w)`` float32, incoherent small-detail contrast in units of the
            contrast floor (the largest over planes; a speck is above 1; 0 where the detail
            does not stand alone, see :func:`mostly_small`).
        valid: ``(B, T)`` bool, frames with both neighbours (first and last frames are not).
        noise: ``(B, C)`` float32, noise sigma per plane (luma first, then ``R - Y``, ``B - Y``).
        floor: ``(B, C)`` float32, the contrast floor per plane.
    """

    spots: torch.Tensor
    moving: torch.Tensor
    excess: torch.Tensor
    valid: torch.Tensor
    noise: torch.Tensor
    floor: torch.Tensor

    def frame_share(self) -> torch.Tensor:
        """``(B, T)`` float32: share of the frame area that is confetti (0 where not valid)."""
        return self.spots.flatten(2).float().mean(-1) * self.valid

    def density(self, min_moving: float = 0.2) -> torch.Tensor:
        """``(B, T)`` float32: confetti area per moving area, the moving area being the video's
        mean over its valid frames (per frame it is too unsteady), counted as at least
        ``min_moving`` of the frame (so a few specks in an almost static video stay few)."""
        per_frame = self.moving.flatten(2).float().mean(-1)
        moving = (per_frame * self.valid).sum(1) / self.valid.sum(1).clamp_min(1)
        return self.frame_share() / moving.clamp_min(min_moving).unsqueeze(1)


def working_size(height: int, width: int, work_short_side: int) -> tuple[int, int]:
    """``(h, w)`` of the working grid: shorter side near ``min(work_short_side, its own)``,
    multiples of ``BLOCK``. Never upsampled: enlarging a small video would smear its grain into
    speck-sized blobs."""
    scale = min(1.0, work_short_side / min(height, width))
    h = max(2 * BLOCK, int(height * scale + 1e-6) // BLOCK * BLOCK)
    w = max(2 * BLOCK, int(width * scale + 1e-6) // BLOCK * BLOCK)
    return h, w


def search_radius(fps: float, short_side: int, max_speed: float) -> int:
    """Block-matching radius in working pixels for motion up to ``max_speed`` frame heights/s."""
    return max(2, int(math.ceil(max_speed * short_side / max(fps, 1e-3))))


def to_planes(frames: torch.Tensor, size: tuple[int, int], colour: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N, 3, H, W)`` RGB, uint8 or float in ``[0, 1]`` -> luma ``(N, 1, h, w)`` on the working
    grid and, with ``colour``, the red and blue colour differences ``(R - Y, B - Y)`` at half that
    resolution, ``(N, 2, h / 2, w / 2)`` (as video codecs keep colour: it is cheaper and blurrier).

    uint8 frames are resampled in 8 bits (antialiased bilinear, torch's fast path on CPU: a
    720p frame is never converted to float), float frames by a box average and bilinear."""
    mix = torch.tensor(_COLOUR_MIX if colour else _COLOUR_MIX[:1], device=frames.device)  # (P, 3): luma, then R - Y, B - Y
    if frames.dtype == torch.uint8:
        if tuple(frames.shape[-2:]) == tuple(size):
            rgb = frames.float()
        elif frames.device.type == "cpu":
            rgb = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False).float()
        else:  # the 8-bit path is CPU-only: the same resampling in float, rounded as it rounds
            rgb = F.interpolate(frames.float(), size=size, mode="bilinear", antialias=True, align_corners=False).round_().clamp_(0, 255)
        planes = torch.einsum("pc,nchw->nphw", mix / 255.0, rgb)
    else:
        planes = _float_planes(frames, size, mix)
    luma = planes[:, :1].contiguous()
    if not colour:
        return luma, None
    return luma, halve(planes[:, 1:])


def _float_planes(frames: torch.Tensor, size: tuple[int, int], mix: torch.Tensor) -> torch.Tensor:
    factor = int(min(frames.shape[-2] / size[0], frames.shape[-1] / size[1]))
    mix = mix.to(frames)
    if factor >= 3:  # box average of the integer part of the reduction and colour mix in one strided convolution
        crop = frames[..., : frames.shape[-2] // factor * factor, : frames.shape[-1] // factor * factor]
        planes = F.conv2d(crop, (mix / factor**2).view(-1, 3, 1, 1).expand(-1, -1, factor, factor).contiguous(), stride=factor)
    else:
        if factor == 2:  # 2x2 box average by slices: cheaper than a pooling kernel
            frames = halve(frames[..., : frames.shape[-2] // 2 * 2, : frames.shape[-1] // 2 * 2])
        planes = torch.einsum("pc,nchw->nphw", mix, frames)
    if tuple(planes.shape[-2:]) != tuple(size):
        planes = F.interpolate(planes, size=size, mode="bilinear", antialias=True, align_corners=False)
    return planes


def fine_factor(height: int, width: int, size: tuple[int, int]) -> int:
    """Frame pixels per working pixel (the integer part, along the tighter side)."""
    return int(min(height / size[0], width / size[1]))


def cell_reduce(x: torch.Tensor, factor: int, reduce: Any) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, H // factor, W // factor)``: ``reduce`` (``torch.amax`` or
    ``torch.amin``) over each ``factor x factor`` cell, the rest cropped (``max_pool2d(x, factor)``
    for a max). Along rows, then along columns: on CPU about 3x faster than the pooling kernel."""
    if factor == 1:
        return x
    n, c, height, width = x.shape
    h, w = height // factor, width // factor
    rows = reduce(x[..., : h * factor, : w * factor].reshape(n, c, h * factor, w, factor), -1)
    return reduce(rows.view(n, c, h, factor, w), 3)


def speck_planes(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The fine-speck planes: ``(N, 3, H, W)`` RGB (uint8 or float in ``[0, 1]``) ->
    ``(N, 2, h, w)`` float in ``[0, 1]``: per working pixel, the largest of ``max(R, G, B)`` over
    the frame pixels of its cell, and the largest of ``1 - min(R, G, B)``.

    A speck of one frame pixel keeps its full contrast here (white, black and saturated colours
    all raise one or the other), where the box average of :func:`to_planes` divides it by the
    cell's area. A max (and a min) over cells of the integer factor, then an exact max onto the working grid."""
    factor = fine_factor(frames.shape[-2], frames.shape[-1], size)
    full = 255.0 if frames.dtype == torch.uint8 else 1.0
    if frames.dtype == torch.uint8 and frames.device.type != "cpu":
        frames = frames.float()  # 8-bit reductions are a CPU fast path
    # uint8 stays uint8 at full resolution (4x less memory traffic); max(full - v) over a cell is
    # full - min(v), so the subtraction waits until the cell reduction (exact in 8 bits and in float)
    x = torch.cat([cell_reduce(frames.amax(1, keepdim=True), factor, torch.amax),
                   (255 if frames.dtype == torch.uint8 else 1.0) - cell_reduce(frames.amin(1, keepdim=True), factor, torch.amin)], 1)
    x = adaptive_max(x, size).float()
    return x.div_(full) if full != 1.0 else x


def adaptive_max(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)`` values for ``(N, C, H, W)`` -> ``(N, C, *size)``, any dtype
    (uint8 too): the same windows (``floor(i H / h)`` to ``ceil((i + 1) H / h)``), one axis at a time
    (a max over a rectangle is separable), as maxima of a few index selections."""
    for dim, (big, small) in ((-2, (x.shape[-2], size[0])), (-1, (x.shape[-1], size[1]))):
        if big == small:
            continue
        i = torch.arange(small, device=x.device)
        start, end = (i * big) // small, ((i + 1) * big + small - 1) // small
        out = x.index_select(dim, start)
        longest = max(((j + 1) * big + small - 1) // small - (j * big) // small for j in range(small))
        for off in range(1, longest):
            out = torch.maximum(out, x.index_select(dim, torch.minimum(start + off, end - 1)), out=out)
        x = out
    return x


def _candidate_vectors(vec: torch.Tensor, hb: int, wb: int) -> list[torch.Tensor]:
    """Per half-block candidate vectors: its block's own and those of the
    block's vertical and horizontal neighbours nearest to it. ``vec``: ``(N, 2, hb * wb)`` ->
    three ``(N, 2, 4 * hb * wb)`` in raster order of the half-block grid."""
    n = vec.shape[0]
    grid = F.pad(vec.view(n, 2, hb, wb), (1, 1, 1, 1), mode="replicate")
    rows = torch.arange(2 * hb, device=vec.device)
    cols = torch.arange(2 * wb, device=vec.device)
    own_r, own_c = rows // 2 + 1, cols // 2 + 1
    near_r, near_c = own_r + 2 * (rows % 2) - 1, own_c + 2 * (cols % 2) - 1
    pick = lambda r, c: grid[:, :, r][:, :, :, c].flatten(2)  # noqa: E731
    return [pick(own_r, own_c), pick(near_r, own_c), pick(own_r, near_c)]


def range_images(planes: torch.Tensor) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(N, 3C, h, w)``: the 3x3 maximum, the 3x3 minimum and the planes
    themselves, what :func:`directional_residual` cuts from a target frame (once per frame)."""
    return torch.cat([dilate(planes, 3, 3), erode(planes, 3, 3), planes], 1)


def range_sampler(planes: torch.Tensor, block: int, pad: int) -> PatchSampler:
    """The target side of :func:`directional_residual` for ``(T, C, h, w)`` planes, built once
    per frame: half-block patches of their :func:`range_images`, for vectors up to ``pad``."""
    return PatchSampler(range_images(planes), block // 2, pad=pad + 1, margin=0)


def directional_residual(
    ref: torch.Tensor, tgt: PatchSampler, vec: torch.Tensor, block: int, frames: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How much of ``ref`` the motion-compensated target frames cannot explain, per plane.

    Args:
        ref: ``(N, C, h, w)`` planes (``h``, ``w`` multiples of ``block``).
        tgt: :func:`range_sampler` of the target frames' planes (the same ``C`` planes).
        vec: ``(N, 2, nb)`` integer vectors from ``ref`` to its target of its ``block``-wide
            blocks (raster order), in pixels of these planes.
        block: block size of ``vec``.
        frames: ``(N,)`` long, the target frame (index into ``tgt``) of each ``ref``; None means
            ``ref[i]`` goes with frame ``i``.

    Returns:
        residual ``(N, C, h, w)``: per pixel and plane, its distance outside the 3x3 value range
        of the target displaced by the best of three vectors: its block's own and those of the
        two neighbouring blocks nearest to the pixel (a pixel near a block edge may move with the
        neighbour);
        noise ``(N, C)``: robust sigma of the compensated difference ``ref - target`` (own
        vectors) over the best-matching quarter of the half-blocks, where only noise is left;
        cost ``(N,)``: median over half-blocks of the mean absolute compensated difference of
        the first plane (a scene cut makes it jump).
    """
    n, c, h, w = ref.shape
    sub = block // 2
    own, *others = _candidate_vectors(vec, h // block, w // block)
    # The 3x3 range of the target, cut at the displaced blocks: dilation commutes with translation.
    ref_blocks = to_blocks(ref, sub, channels_first=True)  # (C, N, nb, sub, sub)
    moved = tgt(own, frames)  # (3C, N, nb, sub, sub): max, min, value
    residual = torch.maximum(ref_blocks - moved[:c], moved[c : 2 * c] - ref_blocks)
    block_diff = (ref_blocks - moved[2 * c :]).abs_().mean((-1, -2))  # (C, N, nb)
    for cand in others:
        bounds = tgt(cand, frames, slice(0, 2 * c))
        residual = torch.minimum(residual, torch.maximum(ref_blocks - bounds[:c], bounds[c:] - ref_blocks))
    first = block_diff[0]
    quiet = first <= first.kthvalue(max(1, first.shape[-1] // 4), dim=-1, keepdim=True).values
    quiet_diff = torch.where(quiet.unsqueeze(0), block_diff, torch.full_like(block_diff, float("nan")))
    # mean |a - b| of two frames with independent noise of sigma is 2 sigma / sqrt(pi)
    noise = quiet_diff.nanmedian(dim=-1).values.t() * (math.sqrt(math.pi) / 2.0)
    residual = residual.clamp_min_(0).flatten(0, 1)
    return from_blocks(residual, h, w).view(c, n, h, w).transpose(0, 1), noise, first.median(dim=-1).values


def small_detail(residual: torch.Tensor, max_spot: int) -> torch.Tensor:
    """Keep only detail narrower than ``max_spot`` pixels in every direction: ``(N, h, w)`` -> same.

    A top-hat against line openings (horizontal, vertical and both diagonals): removes flat
    areas, large blobs and long thin structures such as the edges of moving objects, keeps specks.
    """
    k = max_spot | 1
    opened = torch.maximum(dilate(erode(residual, 1, k), 1, k), dilate(erode(residual, k, 1), k, 1))
    for anti in (False, True):
        opened = torch.maximum(opened, diagonal_max(diagonal_min(residual, k, anti), k, anti), out=opened)
    return residual - opened


def mostly_small(detail: torch.Tensor, residual: torch.Tensor, max_spot: int, share: float) -> torch.Tensor:
    """``detail`` (the :func:`small_detail` of ``residual`` for ``max_spot``, same shape) where
    the speck stands alone: what line openings twice as long (``2 max_spot - 1``) leave of
    ``residual`` is at least ``share`` of it; else 0.

    Around a speck the neighbours explain the frame, so nothing of the unexplained contrast is
    wider than a speck. A real object that moved too fast to be compensated, or deformed,
    leaves an unexplained body wider than a speck in some direction: the top-hat keeps only a
    tip of it (a highlight), and the longer openings keep its body."""
    wide = small_detail(residual, 2 * max_spot - 1)
    return detail * (wide >= share * residual)


def _standing_alone(incoherent: torch.Tensor, max_spot: int, share: float) -> torch.Tensor:
    """:func:`mostly_small` of the :func:`small_detail` of ``(N, h, w)``, a few frames at a time
    (the ops are per frame, so the values do not depend on it): about a megabyte per step stays
    in cache, where whole-clip temporaries of tens of megabytes were several times slower on CPU."""
    step = max(1, (1 << 18) // (incoherent.shape[-2] * incoherent.shape[-1]))
    parts = [mostly_small(small_detail(part, max_spot), part, max_spot, share) for part in incoherent.split(step)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def transient_residual(next_res: torch.Tensor, prev_res: torch.Tensor, pair_ok: torch.Tensor) -> torch.Tensor:
    """Detail that appears and vanishes within one or two frames, for frames ``1..T-2``.

    Args:
        next_res: ``(B, T-1, h, w)``, ``next_res[:, i]`` = residual of frame ``i`` against frame ``i+1``.
        prev_res: ``(B, T-1, h, w)``, ``prev_res[:, i]`` = residual of frame ``i+1`` against frame ``i``.
        pair_ok: ``(B, T-1)`` bool, frames ``i`` and ``i+1`` are both real and not split by a cut.

    Returns:
        ``(B, T-2, h, w)``: the largest of (a) unexplained by both neighbours (a one-frame speck)
        and (b) unexplained by the previous frame while the next frame's speck at the same place
        (within a pixel) is unexplained by the frame after (a two-frame speck), or the mirror.
    """
    b, pairs = next_res.shape[:2]
    res_next = next_res[:, 1:]  # frames 1..T-2 against their next frame
    res_prev = prev_res[:, :-1]  # frames 1..T-2 against their previous frame
    single = torch.minimum(res_prev, res_next)
    if pairs < 3:
        return single
    zero = next_res.new_zeros((b, 1) + next_res.shape[2:])
    # frame t+1 against t+2 (for t = 1..T-3), and frame t-1 against t-2 (for t = 2..T-2); 0 where absent
    later = torch.cat([next_res[:, 2:] * pair_ok[:, 2:, None, None], zero], 1)
    earlier = torch.cat([zero, prev_res[:, :-2] * pair_ok[:, :-2, None, None]], 1)
    first_of_two = torch.minimum(res_prev, dilate(later, 3, 3))
    second_of_two = torch.minimum(dilate(earlier, 3, 3), res_next)
    return torch.maximum(single, torch.maximum(first_of_two, second_of_two))


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Median over dim 1 of ``(B, T, ...)`` where ``mask`` ``(B, T)`` holds -> ``(B, ...)``."""
    shape = (mask.shape[0], mask.shape[1]) + (1,) * (x.ndim - 2)
    return torch.where(mask.view(shape), x, torch.full_like(x, float("nan"))).nanmedian(dim=1).values


def confetti_maps(
    frames: torch.Tensor,
    fps: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    config: ConfettiConfig | None = None,
    *,
    cut_ratio: float = 4.0,
    cut_level: float = 0.04,
    **options: Any,
) -> ConfettiMaps:
    """Confetti evidence for a batch of videos, without any per-frame Python loop.

    Args:
        frames: ``(B, T, C, H, W)`` RGB, uint8 or float in ``[0, 1]`` (or ``(T, C, H, W)`` for one
            video). uint8 is resampled in 8 bits (the detector's path, faster); float in float.
        fps: frame rate, a float or ``(B,)`` tensor. The search radius follows the lowest fps
            in the batch (the detector groups videos by radius so results do not depend on
            batching).
        mask: ``(B, T)`` bool of real frames (padding is False); None means all real.
        config: the detector's options (None: the defaults of :class:`ConfettiConfig`); this
            reads ``work_short_side``, ``max_speed``, ``min_speed``, ``min_contrast``,
            ``noise_factor``, ``colour``, ``max_spot_size``, ``min_small_share``, ``moving_only``,
            ``fine_specks``, ``fine_contrast``, ``fine_block`` and ``chunk``.
        cut_ratio, cut_level: a pair of frames whose median compensated luma difference exceeds
            both ``cut_ratio`` times the video's median and ``cut_level`` is a scene cut: frames
            on either side of it are not each other's neighbours.
        options: overrides of fields of ``config`` by name, e.g. ``work_short_side=64``.

    Raises:
        ShapeError: ``frames`` is not ``(B, T >= 3, 3, H, W)``.
        DetectorConfigError: an option is not a field of :class:`ConfettiConfig`.

    Returns:
        :class:`ConfettiMaps` with ``(B, T, h, w)`` maps on the working grid.
    """
    cfg = with_options(ConfettiConfig, config, options, "confetti_maps")
    colour, chunk = cfg.colour, cfg.chunk
    if frames.ndim == 4:
        frames = frames.unsqueeze(0)
        mask = None if mask is None else mask.reshape(1, -1)
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ShapeError("confetti_maps frames", "(B, T, 3, H, W)", tuple(frames.shape))
    b, t, _, height, width = frames.shape
    if t < 3:
        raise ShapeError("confetti_maps frames", "(B, T >= 3, 3, H, W)", tuple(frames.shape))
    device = frames.device
    if mask is None:
        mask = torch.ones((b, t), dtype=torch.bool, device=device)
    fps_t = torch.as_tensor(fps, dtype=torch.float32, device=device).reshape(-1).expand(b)
    size = working_size(height, width, cfg.work_short_side)
    short = min(size)
    radius = search_radius(float(fps_t.min()), short, cfg.max_speed)
    max_spot = max(3, int(round(cfg.max_spot_size * short)))

    fine = cfg.fine_specks and fine_factor(height, width, size) >= 2
    luma, chroma, specks = [], [], []
    for i in range(0, t, chunk):
        part = frames[:, i : i + chunk].flatten(0, 1)
        y, uv = to_planes(part, size, colour)
        luma.append(y.view(b, -1, 1, *size))
        chroma.append(None if uv is None else uv.view(b, -1, *uv.shape[1:]))
        if fine:
            specks.append(speck_planes(part, size).view(b, -1, 2, *size))
    # per frame, once: the motion pyramid and the 3x3 ranges; pairs index into them
    luma = torch.cat(luma, 1).flatten(0, 1)
    pyr = pyramid(luma)
    pad = max_vector(radius)
    ranges_y = range_sampler(luma, BLOCK, pad)
    chroma = torch.cat(chroma, 1).flatten(0, 1) if colour else None
    ranges_c = range_sampler(chroma, BLOCK // 2, pad // 2) if colour else None
    specks = torch.cat(specks, 1).flatten(0, 1) if fine else None
    fb = cfg.fine_block
    if fb not in (4, 8, BLOCK):
        raise DetectorConfigError(f"confetti: expected fine_block 4, 8 or {BLOCK}, got {fb!r}")
    ranges_f = range_sampler(specks, fb, pad + 1) if fine else None  # refined vectors reach pad + 1
    first = (torch.arange(b, device=device) * t).view(b, 1)
    step = torch.arange(t - 1, device=device).view(1, -1)
    # forward pairs (t -> t+1), then backward (t+1 -> t), per video
    ref_idx = torch.cat([first + step, first + step + 1], 1).flatten()
    tgt_idx = torch.cat([first + step + 1, first + step], 1).flatten()
    res_y, res_c, res_f, noise, cost, vectors = [], [], [], [], [], []
    for i in range(0, len(ref_idx), chunk):
        r, g = ref_idx[i : i + chunk], tgt_idx[i : i + chunk]
        vec = motion_vectors((pyr[0][r], pyr[1][r]), (pyr[0][g], pyr[1][g]), radius, BLOCK)
        res, sig, pair_cost = directional_residual(luma[r], ranges_y, vec, BLOCK, g)
        if colour:  # half-resolution colour: the vectors are even, so they halve exactly
            res2, sig2, _ = directional_residual(chroma[r], ranges_c, vec / 2, BLOCK // 2, g)
            res_c.append(res2)
            sig = torch.cat([sig, sig2], 1)
        if fine:  # the fine-speck planes live on the working grid: the luma's vectors
            fvec = vec
            if fb != BLOCK:  # each block's vector refined by +-1 pixel on fb-wide blocks of the full-resolution luma
                k = BLOCK // fb
                init = vec.view(*vec.shape[:2], size[0] // BLOCK, size[1] // BLOCK)
                init = init.repeat_interleave(k, -2).repeat_interleave(k, -1).flatten(2)
                fvec, _ = block_search(luma[r], luma[g], fb, init, 1, 1, ZERO_BIAS, pad=pad)
            res3, sig3, _ = directional_residual(specks[r], ranges_f, fvec, fb, g)
            res_f.append(res3)
            sig = torch.cat([sig, sig3], 1)
        res_y.append(res)
        noise.append(sig)
        cost.append(pair_cost)
        vectors.append(vec)
    planes = noise[0].shape[1]
    cost = torch.cat(cost).view(b, 2, t - 1).amax(1)
    real_pair = mask[:, :-1] & mask[:, 1:]
    typical = _masked_median(cost, real_pair)  # (B,)
    pair_ok = real_pair & (cost <= torch.clamp(typical * cut_ratio, min=cut_level).unsqueeze(1))
    sigma = _masked_median(torch.cat(noise).view(b, 2, t - 1, planes).transpose(1, 2), pair_ok)  # (B, 2, C)
    sigma = sigma.amax(1)  # (B, C)
    floor = torch.clamp(sigma * cfg.noise_factor, min=cfg.min_contrast)
    if fine:
        floor[:, -2:] = floor[:, -2:].clamp_min(cfg.fine_contrast)
    residual = torch.cat(res_y).view(b, 2, t - 1, *size) / floor[:, :1, None, None, None]
    if colour:
        res_c = (torch.cat(res_c).view(b, 2, t - 1, 2, size[0] // 2, size[1] // 2) / floor[:, 1:3].view(b, 1, 1, 2, 1, 1)).amax(3)
        residual = torch.maximum(residual, res_c.repeat_interleave(2, -2).repeat_interleave(2, -1))
    hb, wb = size[0] // BLOCK, size[1] // BLOCK
    speed = torch.cat(vectors).norm(dim=1).view(b, 2, t - 1, hb, wb)

    incoherent = transient_residual(residual[:, 0], residual[:, 1], pair_ok)
    fast = torch.maximum(speed[:, 0, 1:], speed[:, 1, :-1]) * (fps_t.view(b, 1, 1, 1) / short)
    moving_blocks = dilate((fast > cfg.min_speed).float(), 3, 3)  # a block of margin around moving blocks
    moving = moving_blocks.repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1) > 0
    excess = _standing_alone(incoherent.flatten(0, 1), max_spot, cfg.min_small_share).view_as(incoherent)
    if fine:
        # Their own transience and top-hat: a cell maximum widens a speck by up to a cell, so a
        # speck the coarse planes see as small could look too wide here, and mixed into one
        # top-hat it would lower what the coarse planes alone find.
        res_f = (torch.cat(res_f).view(b, 2, t - 1, 2, *size) / floor[:, -2:].view(b, 1, 1, 2, 1, 1)).amax(3)
        fine_incoherent = transient_residual(res_f[:, 0], res_f[:, 1], pair_ok)
        fine_incoherent = fine_incoherent.flatten(0, 1)
        fine_excess = _standing_alone(fine_incoherent, max_spot, cfg.min_small_share)
        excess = torch.maximum(excess, fine_excess.view_as(excess))
    spots = excess > 1.0
    if cfg.moving_only:
        spots &= moving

    valid = pair_ok[:, :-1] & pair_ok[:, 1:]
    pad_maps = lambda x: F.pad(x, (0, 0, 0, 0, 1, 1))  # noqa: E731  (first and last frames: no evidence)
    spots = pad_maps(spots & valid[..., None, None])
    return ConfettiMaps(
        spots=spots,
        moving=pad_maps(moving & valid[..., None, None]),
        excess=pad_maps(excess * valid[..., None, None]),
        valid=F.pad(valid, (1, 1)),
        noise=sigma,
        floor=floor,
    )


def peak_mean(series: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, T)`` -> ``(B,)``: mean of the ``k`` largest valid values (the worst ``k`` frames)."""
    filled = torch.where(valid, series, torch.full_like(series, -1.0))
    top = filled.topk(min(k, series.shape[1]), dim=1).values
    keep = top >= 0
    return (top.clamp_min(0) * keep).sum(1) / keep.sum(1).clamp_min(1)


def confetti_score(
    frames: torch.Tensor, fps: float | torch.Tensor, mask: torch.Tensor | None = None,
    config: ConfettiConfig | None = None, **options: Any,
) -> torch.Tensor:
    """Per-video confetti severity, ``(B,)``: per-mille of the moving area (at least ``min_moving``
    of the frame) covered by confetti, averaged over the worst ``peak_window_s`` seconds of frames.
    ``frames`` is ``(B, T, C, H, W)`` in ``[0, 1]``; ``config`` and ``options`` (overrides of its
    fields) as for :func:`confetti_maps`."""
    cfg = with_options(ConfettiConfig, config, options, "confetti_score")
    maps = confetti_maps(frames, fps, mask, cfg)
    fps_min = float(torch.as_tensor(fps).min())
    return peak_mean(maps.density(cfg.min_moving) * 1000.0, maps.valid, max(1, math.ceil(cfg.peak_window_s * fps_min)))


class ConfettiDetector(BaseDetector):
    """Confetti sparkle in moving regions: see the module docstring for the method."""

    name = "confetti"
    failure_mode = "confetti"
    requires = frozenset({"frames"})
    higher_is_worse = True
    version = "5"
    # 1-3 pixel specks of HD frames vanish at the run's default 512 px: frames come at their
    # delivered size, up to 2160p (memory: T x H x W x 3 bytes per clip, processed in chunks)
    max_side = 3840
    units = "per-mille of moving area"
    score_meaning = (
        "Per-mille of the moving area (at least min_moving of the frame) covered by small, "
        "motion-incoherent, high-contrast specks, averaged over the worst peak_window_s seconds of the video."
    )
    config_type: ClassVar[type] = ConfettiConfig
    options: ConfettiConfig

    def score(self, inputs: VideoInputs) -> DetectorResult:
        return self.score_batch([inputs])[0]

    def score_batch(self, inputs: Sequence[VideoInputs]) -> list[DetectorResult]:
        """Score videos, batching those of one size and one search radius together."""
        results: list[DetectorResult | None] = [None] * len(inputs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(inputs):
            video = item.video
            if video.num_frames < 3:
                results[i] = DetectorResult.skipped(f"needs >= 3 frames, got {video.num_frames}", video.num_frames)
                continue
            width, height = video.size
            short = min(working_size(height, width, self.options.work_short_side))
            radius = search_radius(video.fps, short, self.options.max_speed)
            groups.setdefault((video.size, radius), []).append(i)
        for members in groups.values():
            batch = _uint8_batch([inputs[i].video for i in members], self.device)
            for i, result in zip(members, self._score_videobatch(batch)):
                results[i] = result
        return results  # type: ignore[return-value]

    def _score_videobatch(self, batch: VideoBatch) -> list[DetectorResult]:
        cfg = self.options
        with torch.no_grad():
            maps = confetti_maps(batch.frames, batch.fps, batch.mask, cfg)
            share = maps.density(cfg.min_moving) * 1000.0
            scores = torch.stack(
                [peak_mean(share[i : i + 1], maps.valid[i : i + 1], max(1, math.ceil(cfg.peak_window_s * float(f))))[0]
                 for i, f in enumerate(batch.fps.tolist())]
            )
            moving_px = maps.moving.flatten(1).sum(1).float()
            affected = (maps.spots & maps.moving).flatten(1).sum(1).float() / moving_px.clamp_min(1)
            moving_share = maps.moving.flatten(2).float().mean(-1)
            block = cfg.map_block
            heat = F.avg_pool2d(maps.spots.flatten(0, 1).unsqueeze(1).float(), block).view(
                *maps.spots.shape[:2], maps.spots.shape[2] // block, maps.spots.shape[3] // block
            )
        out = []
        lengths = batch.mask.sum(1).tolist()
        for i, n in enumerate(lengths):
            fps = float(batch.fps[i])
            valid = maps.valid[i, :n].cpu().numpy()
            series = np.where(valid, share[i, :n].cpu().numpy(), np.nan).astype(np.float32)
            score = float(scores[i])
            events = series_events(
                series, cfg.event_level, max(0, round(cfg.event_gap_s * fps)), "confetti",
                min_length=max(1, math.ceil(cfg.min_event_s * fps - 1e-6)),
            )
            stats = {
                "moving_area_affected": float(affected[i]),
                "moving_share_mean": float(moving_share[i, :n][valid].mean()) if valid.any() else 0.0,
                "peak_frame": int(np.nanargmax(series)) if valid.any() else -1,
                "frames_with_confetti": int((series > cfg.event_level).sum()),
                "noise_sigma": [round(float(x), 5) for x in maps.noise[i]],
                "contrast_floor": [round(float(x), 5) for x in maps.floor[i]],
                "frames_scored": int(valid.sum()),
                "working_size": list(maps.spots.shape[-2:]),
                "frame_size": [int(batch.frames.shape[-1]), int(batch.frames.shape[-2])],
            }
            out.append(
                DetectorResult(
                    score=score,
                    flagged=bool(score > cfg.threshold),
                    series=series,
                    events=events,
                    stats=stats,
                    maps=heat[i, :n].cpu().numpy().astype(np.float16),
                )
            )
        return out


def _uint8_batch(videos: list[Any], device: torch.device) -> VideoBatch:
    """A :class:`VideoBatch` whose ``frames`` stay uint8 ``(B, T, 3, H, W)``: HD clips are a
    quarter of the memory, and :func:`confetti_maps` converts them chunk by chunk."""
    t_max = max(v.num_frames for v in videos)
    _, c, h, w = videos[0].frames.shape
    frames = torch.zeros((len(videos), t_max, c, h, w), dtype=torch.uint8, device=device)
    mask = torch.zeros((len(videos), t_max), dtype=torch.bool, device=device)
    for i, v in enumerate(videos):
        frames[i, : v.num_frames] = v.frames.to(device)
        mask[i, : v.num_frames] = True
    fps = torch.tensor([v.fps for v in videos], dtype=torch.float32, device=device)
    return VideoBatch(frames=frames, mask=mask, fps=fps)

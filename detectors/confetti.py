"""Confetti: small, high-contrast detail that flickers in and out of moving regions.

Video models trained on fast motion (rain, wings, hair) produce "sparkle": specks that exist
in one frame and are gone in the next, in a way no motion explains. Whole-frame averages
dilute it and flow-masked warping errors mask it out (see ``shared/REFERENCE.md``), so this
detector looks for it locally:

1. Luma is resampled to a working grid whose shorter side is ``work_short_side`` pixels, so
   sizes are fractions of the frame whatever the input resolution.
2. Motion is compensated in both directions (t -> t-1, t -> t+1) by coarse-to-fine block
   matching; the search radius is a speed in frame heights per second, divided by fps.
3. A pixel is *incoherent* by how far its value lies outside the 3x3 range of the
   motion-compensated neighbour frame, taking the best of the candidate vectors of its own and
   its four neighbouring blocks, and the smaller of the two directions (so occlusions, which
   one direction explains, do not count).
4. Only *small* incoherent detail is kept (a morphological top-hat against horizontal and
   vertical line openings), above a contrast floor that rises with the clip's own noise level
   (film grain and sensor noise raise it), and only in moving regions.

The functional form :func:`confetti_maps` runs on ``(B, T, C, H, W)`` tensors in one pass on any
device; :class:`ConfettiDetector` wraps it for the runner and batches videos of one size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evalkit._types import DetectorResult, Event, VideoBatch, VideoInputs
from evalkit.detector import BaseDetector
from evalkit.detectors._events import series_events
from evalkit.errors import ShapeError

BLOCK = 8  # block size of the motion search, in working-grid pixels
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class ConfettiMaps:
    """Per-frame evidence for a batch, all on the input device.

    Attributes:
        spots: ``(B, T, h, w)`` bool, confetti pixels (small, incoherent, above the contrast
            floor, in moving regions) on the working grid.
        moving: ``(B, T, h, w)`` bool, pixels in moving regions.
        excess: ``(B, T, h, w)`` float32, incoherent small-detail contrast (luma, ``[0, 1]``).
        valid: ``(B, T)`` bool, frames with both neighbours (first and last frames are not).
        noise: ``(B, T)`` float32, estimated noise sigma of the motion-compensated residual.
        floor: ``(B, T)`` float32, the contrast floor used per frame.
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


def working_size(height: int, width: int, work_short_side: int) -> tuple[int, int]:
    """``(h, w)`` of the working grid: shorter side near ``work_short_side``, multiples of ``2 * BLOCK``."""
    scale = work_short_side / min(height, width)
    unit = 2 * BLOCK  # the coarsest level of the motion search works on 2 * BLOCK blocks
    h = max(2 * unit, int(round(height * scale / unit)) * unit)
    w = max(2 * unit, int(round(width * scale / unit)) * unit)
    return h, w


def search_radius(fps: float, work_short_side: int, max_speed: float) -> int:
    """Block-matching radius in working pixels for motion up to ``max_speed`` frame heights/s."""
    return max(2, int(math.ceil(max_speed * work_short_side / max(fps, 1e-3))))


def to_luma(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in ``[0, 1]`` -> ``(N, 1, h, w)`` luma on the working grid."""
    weights = frames.new_tensor(_LUMA).view(1, 3, 1, 1)
    luma = (frames * weights).sum(1, keepdim=True)
    if tuple(luma.shape[-2:]) == tuple(size):
        return luma
    return F.interpolate(luma, size=size, mode="bilinear", antialias=True, align_corners=False)


def _shifted_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Running max of odd width ``k`` along ``dim`` (-1 or -2) with edge replication, same shape.

    Slices of one padded copy instead of ``max_pool2d``, which is slower on CPU for these shapes.
    """
    half = k // 2
    size = x.shape[dim]
    padded = F.pad(x, (half, half, 0, 0) if dim == -1 else (0, 0, half, half), mode="replicate")
    out = padded.narrow(dim, 0, size)
    for off in range(1, k):
        out = torch.maximum(out, padded.narrow(dim, off, size))
    return out


def _dilate(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Grey dilation of ``(..., h, w)`` by a ``kh x kw`` rectangle."""
    if kh > 1:
        x = _shifted_max(x, kh, -2)
    return _shifted_max(x, kw, -1) if kw > 1 else x


def _erode(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    return -_dilate(-x, kh, kw)


def _to_blocks(img: torch.Tensor, block: int) -> torch.Tensor:
    """``(N, 1, h, w)`` -> ``(N, nb, block, block)`` blocks in raster order."""
    n, _, h, w = img.shape
    x = img.view(n, h // block, block, w // block, block).permute(0, 1, 3, 2, 4)
    return x.reshape(n, -1, block, block)


def _from_blocks(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, nb, B, B)`` -> ``(N, h, w)``."""
    n, _, block, _ = blocks.shape
    x = blocks.view(n, h // block, w // block, block, block).permute(0, 1, 3, 2, 4)
    return x.reshape(n, h, w)


class _PatchSampler:
    """Cuts ``(block + 2 margin)``-wide patches around each block of ``images`` displaced by a
    per-block integer vector, with one gather (replicate padding keeps every index valid).

    ``images``: ``(N, C, h, w)``; patches come back as ``(N, C, nb, side, side)``.
    """

    def __init__(self, images: torch.Tensor, block: int, pad: int, margin: int) -> None:
        n, c, h, w = images.shape
        self.pad, self.margin, self.width = pad, margin, w + 2 * pad
        self.flat = F.pad(images, (pad,) * 4, mode="replicate").flatten(2)
        side = block + 2 * margin
        local = torch.arange(side, device=images.device) - margin + pad
        by = torch.arange(h // block, device=images.device) * block
        bx = torch.arange(w // block, device=images.device) * block
        rows = (by.view(-1, 1, 1, 1) + local.view(1, 1, -1, 1)) * self.width
        cols = bx.view(1, -1, 1, 1) + local.view(1, 1, 1, -1)
        self.base = (rows + cols).reshape(1, -1, side * side)  # (1, nb, side*side)
        self.side = side

    def __call__(self, vec: torch.Tensor) -> torch.Tensor:
        """``vec``: ``(N, 2, nb)`` integer (dy, dx) -> ``(N, C, nb, side, side)``."""
        v = vec.long().clamp(-self.pad + self.margin, self.pad - self.margin)
        idx = (self.base + (v[:, 0] * self.width + v[:, 1]).unsqueeze(-1)).flatten(1)
        n, c, nb = v.shape[0], self.flat.shape[1], v.shape[2]
        return self.flat.gather(2, idx.unsqueeze(1).expand(n, c, -1)).view(n, c, nb, self.side, self.side)


def _search(
    ref: torch.Tensor, tgt: torch.Tensor, block: int, init: torch.Tensor | None, radius: int, scale: int, zero_bias: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matching of ``ref`` blocks in ``tgt`` (both ``(N, 1, h, w)``).

    Candidates are ``init + d`` for ``|d|_inf <= radius`` (``init``: ``(N, 2, nb)`` or None for
    zero). The block cost is the mean absolute difference plus ``zero_bias`` per full-resolution
    pixel of vector length (``scale`` pixels per pixel of this level), so flat or noisy blocks
    keep short vectors; ties go to the shorter candidate. The loop is over candidates, each one
    vectorised over all frames and blocks.

    Returns vectors ``(N, 2, nb)`` (dy, dx) in this level's pixels and their costs ``(N, nb)``.
    """
    n = ref.shape[0]
    ref_blocks = _to_blocks(ref, block)
    nb = ref_blocks.shape[1]
    if init is None:
        init = torch.zeros((n, 2, nb), device=ref.device)
    side = 2 * radius + 1
    sampler = _PatchSampler(tgt, block, pad=int(init.abs().max()) + radius, margin=radius)
    # every candidate window of every block at once, a strided view: (N, nb, side, side, block, block)
    windows = sampler(init)[:, 0].unfold(-2, block, 1).unfold(-2, block, 1)
    diff = windows - ref_blocks[:, :, None, None]
    costs = diff.abs_().mean((-1, -2)).view(n, nb, side * side)
    raster = [(a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)]
    order = sorted(range(len(raster)), key=lambda i: (raster[i][0] ** 2 + raster[i][1] ** 2, raster[i]))
    steps = torch.tensor([raster[i] for i in order], dtype=torch.float32, device=ref.device)  # (D, 2)
    costs = costs[..., order]  # shortest candidates first, so ties go to them
    vy = init[:, 0].unsqueeze(-1) + steps[:, 0]
    vx = init[:, 1].unsqueeze(-1) + steps[:, 1]
    best_cost, best = (costs + zero_bias * scale * torch.sqrt(vy * vy + vx * vx)).min(dim=-1)
    vec = init + steps[best].permute(0, 2, 1)
    return vec, best_cost


def _upsample_vectors(vec: torch.Tensor, grid: tuple[int, int], factor: int) -> torch.Tensor:
    """Vectors ``(N, 2, nb)`` on a ``grid`` of blocks -> the grid ``factor`` times finer, lengths x2."""
    n = vec.shape[0]
    v = vec.view(n, 2, *grid).repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    return v.flatten(2) * 2


def motion_vectors(ref: torch.Tensor, tgt: torch.Tensor, radius: int, zero_bias: float = 0.004) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse-to-fine block motion from ``ref`` to ``tgt``, ``(N, 1, h, w)`` each.

    Three levels: a full search of radius ``radius / 4`` at quarter resolution with 16-pixel
    blocks, then +-1 refinements at half resolution and at full resolution with ``BLOCK``-pixel
    blocks. Returns integer vectors ``(N, 2, nb)`` per ``BLOCK`` block (raster order) in
    working pixels, and their block costs ``(N, nb)``.
    """
    h, w = ref.shape[-2:]
    half_r, half_t = F.avg_pool2d(ref, 2), F.avg_pool2d(tgt, 2)
    quarter_r, quarter_t = F.avg_pool2d(half_r, 2), F.avg_pool2d(half_t, 2)
    # quarter resolution: blocks of BLOCK // 2 quarter pixels = 2 * BLOCK working pixels
    vec, _ = _search(quarter_r, quarter_t, BLOCK // 2, None, max(1, -(-radius // 4)), 4, zero_bias)
    vec = _upsample_vectors(vec, (h // (2 * BLOCK), w // (2 * BLOCK)), 2)
    vec, _ = _search(half_r, half_t, BLOCK // 2, vec, 1, 2, zero_bias)
    return _search(ref, tgt, BLOCK, vec * 2, 1, 1, zero_bias)


def directional_residual(
    ref: torch.Tensor, tgt: torch.Tensor, radius: int, zero_bias: float = 0.004
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How much of ``ref`` the motion-compensated ``tgt`` cannot explain.

    Args:
        ref, tgt: ``(N, 1, h, w)`` luma on the working grid (``h``, ``w`` multiples of ``2 * BLOCK``).
        radius: search radius in working pixels.
        zero_bias: block cost (mean absolute luma) charged per pixel of vector length.

    Returns:
        residual ``(N, h, w)``: distance of each ``ref`` pixel outside the 3x3 value range of
        ``tgt`` displaced by the best of the vectors of its own and its 4 neighbouring blocks;
        speed ``(N, hb, wb)``: vector length per block in working pixels per frame;
        noise ``(N,)``: robust noise sigma of the compensated difference.
    """
    n, _, h, w = ref.shape
    hb, wb = h // BLOCK, w // BLOCK
    vec, cost = motion_vectors(ref, tgt, radius, zero_bias)
    # The 3x3 range of tgt, cut at the displaced blocks: dilation commutes with translation.
    bounds_img = torch.cat([_dilate(tgt, 3, 3), _erode(tgt, 3, 3)], 1)
    sampler = _PatchSampler(bounds_img, BLOCK, pad=int(vec.abs().max()) + 1, margin=0)
    ref_blocks = _to_blocks(ref, BLOCK)
    grid = F.pad(vec.view(n, 2, hb, wb), (1, 1, 1, 1), mode="replicate")
    residual = None
    for oy, ox in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
        bounds = sampler(grid[..., 1 + oy : 1 + oy + hb, 1 + ox : 1 + ox + wb].flatten(2))
        out = (ref_blocks - bounds[:, 0]).clamp_min(0) + (bounds[:, 1] - ref_blocks).clamp_min(0)
        residual = out if residual is None else torch.minimum(residual, out)
    # mean |a - b| of two frames with independent noise of sigma is 2 sigma / sqrt(pi)
    noise = cost.median(dim=1).values * (math.sqrt(math.pi) / 2.0)
    return _from_blocks(residual, h, w), vec.norm(dim=1).view(n, hb, wb), noise


def small_detail(residual: torch.Tensor, max_spot: int) -> torch.Tensor:
    """Keep only detail narrower than ``max_spot`` pixels in both directions: ``(N, h, w)`` -> same.

    A top-hat against line openings: removes flat areas, large blobs and long horizontal or
    vertical lines (edges of moving objects), keeps specks.
    """
    k = max_spot | 1
    opened_h = _dilate(_erode(residual, 1, k), 1, k)
    opened_v = _dilate(_erode(residual, k, 1), k, 1)
    return residual - torch.maximum(opened_h, opened_v)


def transient_residual(next_res: torch.Tensor, prev_res: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Detail that appears and vanishes within one or two frames, for frames ``1..T-2``.

    Args:
        next_res: ``(B, T-1, h, w)``, ``next_res[:, i]`` = residual of frame ``i`` against frame ``i+1``.
        prev_res: ``(B, T-1, h, w)``, ``prev_res[:, i]`` = residual of frame ``i+1`` against frame ``i``.
        mask: ``(B, T)`` bool of real frames.

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
    later = torch.cat([next_res[:, 2:] * mask[:, 3:, None, None], zero], 1)
    earlier = torch.cat([zero, prev_res[:, :-2] * mask[:, :-3, None, None]], 1)
    first_of_two = torch.minimum(res_prev, _dilate(later, 3, 3))
    second_of_two = torch.minimum(_dilate(earlier, 3, 3), res_next)
    return torch.maximum(single, torch.maximum(first_of_two, second_of_two))


def confetti_maps(
    frames: torch.Tensor,
    fps: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    work_short_side: int = 192,
    max_speed: float = 1.0,
    min_speed: float = 0.05,
    min_contrast: float = 0.10,
    noise_factor: float = 5.0,
    max_spot_size: float = 0.025,
    chunk: int = 64,
) -> ConfettiMaps:
    """Confetti evidence for a batch of videos, without any per-frame Python loop.

    Args:
        frames: ``(B, T, C, H, W)`` float in ``[0, 1]`` RGB (or ``(T, C, H, W)`` for one video).
        fps: frame rate, a float or ``(B,)`` tensor. The search radius follows the lowest fps
            in the batch (the detector groups videos by radius so results do not depend on
            batching).
        mask: ``(B, T)`` bool of real frames (padding is False); None means all real.
        work_short_side: shorter side of the working grid, in pixels.
        max_speed: fastest motion compensated, in frame heights per second.
        min_speed: slowest motion that counts as moving, in frame heights per second.
        min_contrast: smallest luma excess (``[0, 1]``) that counts as a speck.
        noise_factor: the contrast floor is at least this many noise sigmas.
        max_spot_size: widest speck, as a fraction of the shorter side.
        chunk: frame pairs processed at once (memory bound only; results do not depend on it).

    Returns:
        :class:`ConfettiMaps` with ``(B, T, h, w)`` maps on the working grid.
    """
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
    size = working_size(height, width, work_short_side)
    radius = search_radius(float(fps_t.min()), work_short_side, max_speed)
    max_spot = max(3, int(round(max_spot_size * work_short_side)))

    luma = to_luma(frames.reshape(b * t, 3, height, width), size).view(b, t, 1, *size)
    ref = torch.cat([luma[:, :-1], luma[:, 1:]], 1).reshape(-1, 1, *size)  # forward then backward
    tgt = torch.cat([luma[:, 1:], luma[:, :-1]], 1).reshape(-1, 1, *size)
    parts = [directional_residual(ref[i : i + chunk], tgt[i : i + chunk], radius) for i in range(0, len(ref), chunk)]
    residual, speed, noise = (torch.cat(p).view(b, 2, t - 1, *p[0].shape[1:]) for p in zip(*parts))

    incoherent = transient_residual(residual[:, 0], residual[:, 1], mask)
    fast = torch.maximum(speed[:, 0, 1:], speed[:, 1, :-1]) * (fps_t.view(b, 1, 1, 1) / work_short_side)
    moving_blocks = _dilate((fast > min_speed).float(), 3, 3)  # a block of margin around moving blocks
    moving = moving_blocks.repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1) > 0
    frame_noise = torch.maximum(noise[:, 0, 1:], noise[:, 1, :-1])
    floor = torch.clamp(frame_noise * noise_factor, min=min_contrast)
    excess = small_detail(incoherent.flatten(0, 1), max_spot).view_as(incoherent)
    spots = (excess > floor[..., None, None]) & moving

    valid = mask[:, :-2] & mask[:, 1:-1] & mask[:, 2:]
    pad_maps = lambda x: F.pad(x, (0, 0, 0, 0, 1, 1))  # noqa: E731  (first and last frames: no evidence)
    spots = pad_maps(spots & valid[..., None, None])
    return ConfettiMaps(
        spots=spots,
        moving=pad_maps(moving & valid[..., None, None]),
        excess=pad_maps(excess * valid[..., None, None]),
        valid=F.pad(valid, (1, 1)),
        noise=F.pad(frame_noise, (1, 1)),
        floor=F.pad(floor, (1, 1)),
    )


def peak_mean(series: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, T)`` -> ``(B,)``: mean of the ``k`` largest valid values (the worst ``k`` frames)."""
    filled = torch.where(valid, series, torch.full_like(series, -1.0))
    top = filled.topk(min(k, series.shape[1]), dim=1).values
    keep = top >= 0
    return (top.clamp_min(0) * keep).sum(1) / keep.sum(1).clamp_min(1)


def confetti_score(
    frames: torch.Tensor, fps: float | torch.Tensor, mask: torch.Tensor | None = None, peak_window_s: float = 0.1, **options: Any
) -> torch.Tensor:
    """Per-video confetti severity, ``(B,)``: mean per-mille of frame area covered by confetti over
    the worst ``peak_window_s`` seconds of frames. ``frames`` is ``(B, T, C, H, W)`` in ``[0, 1]``."""
    maps = confetti_maps(frames, fps, mask, **options)
    fps_min = float(torch.as_tensor(fps).min())
    return peak_mean(maps.frame_share() * 1000.0, maps.valid, max(1, math.ceil(peak_window_s * fps_min)))


class ConfettiDetector(BaseDetector):
    """Confetti sparkle in moving regions: see the module docstring for the method."""

    name = "confetti"
    failure_mode = "confetti"
    requires = frozenset({"frames"})
    higher_is_worse = True
    version = "1"
    score_meaning = (
        "Per-mille of the frame area covered by small, motion-incoherent, high-contrast specks in "
        "moving regions, averaged over the worst peak_window_s seconds of the video."
    )
    default_config: dict[str, Any] = {
        "threshold": 0.5,
        "event_level": 0.25,
        "event_gap_s": 0.1,
        "min_event_s": 0.06,
        "peak_window_s": 0.1,
        "work_short_side": 192,
        "max_speed": 1.0,
        "min_speed": 0.05,
        "min_contrast": 0.10,
        "noise_factor": 5.0,
        "max_spot_size": 0.025,
        "map_block": 8,
        "chunk": 64,
    }

    def _map_options(self) -> dict[str, Any]:
        keys = ("work_short_side", "max_speed", "min_speed", "min_contrast", "noise_factor", "max_spot_size", "chunk")
        return {k: self.config[k] for k in keys}

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
            radius = search_radius(video.fps, self.config["work_short_side"], self.config["max_speed"])
            groups.setdefault((video.size, radius), []).append(i)
        for members in groups.values():
            batch = VideoBatch.from_videos([inputs[i].video for i in members], self.device)
            for i, result in zip(members, self._score_videobatch(batch)):
                results[i] = result
        return results  # type: ignore[return-value]

    def _score_videobatch(self, batch: VideoBatch) -> list[DetectorResult]:
        cfg = self.config
        with torch.no_grad():
            maps = confetti_maps(batch.frames, batch.fps, batch.mask, **self._map_options())
            share = maps.frame_share() * 1000.0
            scores = torch.stack(
                [peak_mean(share[i : i + 1], maps.valid[i : i + 1], max(1, math.ceil(cfg["peak_window_s"] * float(f))))[0]
                 for i, f in enumerate(batch.fps.tolist())]
            )
            moving_px = maps.moving.flatten(1).sum(1).float()
            affected = maps.spots.flatten(1).sum(1).float() / moving_px.clamp_min(1)
            moving_share = maps.moving.flatten(2).float().mean(-1)
            block = cfg["map_block"]
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
                series, cfg["event_level"], max(0, round(cfg["event_gap_s"] * fps)), "confetti",
                min_length=max(1, math.ceil(cfg["min_event_s"] * fps - 1e-6)),
            )
            stats = {
                "moving_area_affected": float(affected[i]),
                "moving_share_mean": float(moving_share[i, :n][valid].mean()) if valid.any() else 0.0,
                "peak_frame": int(np.nanargmax(series)) if valid.any() else -1,
                "frames_with_confetti": int((series > cfg["event_level"]).sum()),
                "noise_sigma": float(maps.noise[i, :n][valid].median()) if valid.any() else 0.0,
                "contrast_floor": float(maps.floor[i, :n][valid].median()) if valid.any() else 0.0,
                "frames_scored": int(valid.sum()),
                "working_size": list(maps.spots.shape[-2:]),
            }
            out.append(
                DetectorResult(
                    score=score,
                    flagged=bool(score > cfg["threshold"]),
                    series=series,
                    events=events,
                    stats=stats,
                    maps=heat[i, :n].cpu().numpy().astype(np.float16),
                )
            )
        return out

"""Block motion and grey morphology on ``(N, C, h, w)`` tensors, batched, pure torch (used by
the confetti detector). Integer block vectors are applied with one gather per candidate, so
nothing loops over frames or blocks in Python."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit._lazy import lazy_import

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")


def shifted_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Running max of odd width ``k`` along ``dim`` (-1 or -2) with edge replication, same shape."""
    return dilate(x, k if dim == -2 else 1, k if dim == -1 else 1)


def _running(x: torch.Tensor, k: int, dim: int, op: Any) -> torch.Tensor:
    """Running ``op`` (``torch.maximum`` or ``torch.minimum``) of odd width ``k`` along ``dim``,
    over the window's part inside the frame (for a max or a min the same as replicated edges:
    the edge value is inside every window that reaches past it). A new tensor.

    ``k - 1`` in-place elementwise ops on shifted slices: on CPU about 15x faster than a
    stride-1 ``max_pool2d`` (whose kernel is not vectorised), with the same values."""
    n = x.shape[dim]
    if n == 1 or k == 1:
        return x.clone()
    out = torch.empty_like(x)  # the first shift writes it (no clone pass)
    op(x.narrow(dim, 1, n - 1), x.narrow(dim, 0, n - 1), out=out.narrow(dim, 1, n - 1))
    out.narrow(dim, 0, 1).copy_(x.narrow(dim, 0, 1))
    for s in range(1, min(k // 2, n - 1) + 1):
        if s > 1:
            a = out.narrow(dim, s, n - s)
            op(a, x.narrow(dim, 0, n - s), out=a)
        a = out.narrow(dim, 0, n - s)
        op(a, x.narrow(dim, s, n - s), out=a)
    return out


def dilate(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Grey dilation of ``(..., h, w)`` by a ``kh x kw`` rectangle (odd sides), edges replicated.

    Separable: a ``kh x 1`` pass, then a ``1 x kw`` pass (exact for a max)."""
    if kh > 1:
        x = _running(x, kh, -2, torch.maximum)
    return _running(x, kw, -1, torch.maximum) if kw > 1 else x


def erode(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Grey erosion of ``(..., h, w)`` by a ``kh x kw`` rectangle (odd sides), edges replicated."""
    if kh > 1:
        x = _running(x, kh, -2, torch.minimum)
    return _running(x, kw, -1, torch.minimum) if kw > 1 else x


def to_blocks(img: torch.Tensor, block: int, channels_first: bool = False) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(N, C, nb, block, block)`` blocks in raster order, or with
    ``channels_first`` ``(C, N, nb, block, block)`` (the layout :class:`PatchSampler` returns)."""
    n, c, h, w = img.shape
    if channels_first:
        img, n, c = img.transpose(0, 1), c, n
    x = img.reshape(n, c, h // block, block, w // block, block).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, -1, block, block)


def from_blocks(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, nb, B, B)`` -> ``(N, h, w)``."""
    n, _, block, _ = blocks.shape
    x = blocks.view(n, h // block, w // block, block, block).permute(0, 1, 3, 2, 4)
    return x.reshape(n, h, w)


class PatchSampler:
    """Cuts ``(block + 2 margin)``-wide patches around each block of a set of frames, displaced
    by a per-block integer vector, with one gather for any number of (frame, vectors) requests.

    ``images``: ``(T, C, h, w)``, replicate-padded once here (so every index stays valid and a
    frame used by several pairs is padded once). ``pad`` must be at least the largest vector
    component plus ``margin`` (vectors are clamped to it).
    """

    def __init__(self, images: torch.Tensor, block: int, pad: int, margin: int) -> None:
        _, c, h, w = images.shape
        self.pad, self.margin, self.width = pad, margin, w + 2 * pad
        self.frame_len = (h + 2 * pad) * self.width
        # channel-major: one row per channel holding every frame, so one gather serves all pairs
        self.flat = F.pad(images.transpose(0, 1), (pad,) * 4, mode="replicate").reshape(c, -1)
        side = block + 2 * margin
        local = torch.arange(side, device=images.device) - margin + pad
        by = torch.arange(h // block, device=images.device) * block
        bx = torch.arange(w // block, device=images.device) * block
        rows = (by.view(-1, 1, 1, 1) + local.view(1, 1, -1, 1)) * self.width
        cols = bx.view(1, -1, 1, 1) + local.view(1, 1, 1, -1)
        self.base = (rows + cols).reshape(1, -1, side * side)  # (1, nb, side*side)
        self.side = side

    def __call__(self, vec: torch.Tensor, frames: torch.Tensor | None = None, channels: slice = slice(None)) -> torch.Tensor:
        """Patches of ``frames`` (``(N,)`` long; None: request ``i`` reads frame ``i``) moved by
        ``vec`` ``(N, 2, nb)`` integer (dy, dx) -> ``(C', N, nb, side, side)`` for the ``channels``."""
        v = vec.long().clamp(-self.pad + self.margin, self.pad - self.margin)
        n, nb = v.shape[0], v.shape[2]
        offset = v[:, 0] * self.width + v[:, 1]  # (N, nb)
        if frames is None:
            frames = torch.arange(n, device=vec.device)
        offset = offset + frames.view(-1, 1) * self.frame_len
        idx = (self.base + offset.unsqueeze(-1)).reshape(1, -1)
        src = self.flat[channels]
        return src.gather(1, idx.expand(src.shape[0], -1)).view(-1, n, nb, self.side, self.side)


def block_search(
    ref: torch.Tensor, tgt: torch.Tensor, block: int, init: torch.Tensor | None, radius: int, scale: int,
    zero_bias: float, pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matching of ``ref`` blocks in ``tgt`` (both ``(N, 1, h, w)``).

    Candidates are ``init + d`` for ``|d|_inf <= radius`` (``init``: ``(N, 2, nb)`` or None for
    zero; ``pad`` bounds ``|init|``). The block cost is the mean absolute difference plus
    ``zero_bias`` per working-grid pixel of vector length (``scale`` working pixels per pixel
    of this level), so flat or noisy blocks keep short vectors; ties go to the shorter
    candidate. All candidates of all blocks of all frames are one strided view.

    Returns vectors ``(N, 2, nb)`` (dy, dx) in this level's pixels and their costs ``(N, nb)``.
    """
    n = ref.shape[0]
    ref_blocks = to_blocks(ref, block)[:, 0]
    nb = ref_blocks.shape[1]
    if init is None:
        init = torch.zeros((n, 2, nb), device=ref.device)
    side = 2 * radius + 1
    sampler = PatchSampler(tgt, block, pad=pad + radius, margin=radius)
    # every candidate window of every block at once, a strided view: (N, nb, side, side, block, block)
    windows = sampler(init)[0].unfold(-2, block, 1).unfold(-2, block, 1)
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


def halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 box average of ``(..., h, w)`` (even ``h``, ``w``): ``F.avg_pool2d(x, 2)``, about
    three times faster on CPU."""
    pairs = x[..., 0::2] + x[..., 1::2]
    return (pairs[..., 0::2, :] + pairs[..., 1::2, :]).mul_(0.25)


def pyramid(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, h, w)`` -> its half and quarter resolution averages, the levels :func:`motion_vectors` searches."""
    half = halve(luma)
    return half, halve(half)


# block cost per working-grid pixel of vector length: flat or noisy blocks keep short vectors
ZERO_BIAS = 0.004


def motion_vectors(
    ref: tuple[torch.Tensor, torch.Tensor], tgt: tuple[torch.Tensor, torch.Tensor], radius: int, block: int,
    zero_bias: float = ZERO_BIAS,
) -> torch.Tensor:
    """Coarse-to-fine block motion from ``ref`` to ``tgt``, both given as :func:`pyramid` levels
    of ``(N, 1, h, w)`` luma (computed once per frame, though every frame is in two pairs).

    The full-resolution grid is never searched: a full search of radius ``radius / 4`` at
    quarter resolution, then a +-1 refinement at half resolution, both on ``block``-wide blocks
    of the full-resolution grid (``block`` a multiple of 4). Vectors are thus even, exact to 2
    pixels. Returns integer vectors ``(N, 2, nb)`` per block (raster order) in full-resolution
    pixels.
    """
    (half_r, quarter_r), (half_t, quarter_t) = ref, tgt
    coarse = max(1, -(-radius // 4))
    vec, _ = block_search(quarter_r, quarter_t, block // 4, None, coarse, 4, zero_bias, pad=0)
    vec, _ = block_search(half_r, half_t, block // 2, vec * 2, 1, 2, zero_bias, pad=2 * coarse)
    return vec * 2


def max_vector(radius: int) -> int:
    """Largest component :func:`motion_vectors` can return for ``radius`` (a static bound: no sync)."""
    return 2 * (2 * max(1, -(-radius // 4)) + 1)


def diagonal_max(x: torch.Tensor, k: int, anti: bool) -> torch.Tensor:
    """Running max of odd length ``k`` along the diagonal (or anti-diagonal) of ``(N, h, w)``,
    edges replicated (a clamped diagonal step at the border may leave the diagonal)."""
    return _diagonal(x, k, anti, torch.maximum)


def diagonal_min(x: torch.Tensor, k: int, anti: bool) -> torch.Tensor:
    """Running min, as :func:`diagonal_max` (``-diagonal_max(-x)`` without the two negations)."""
    return _diagonal(x, k, anti, torch.minimum)


def _diagonal(x: torch.Tensor, k: int, anti: bool, op: Any) -> torch.Tensor:
    half = k // 2
    h, w = x.shape[-2:]
    padded = F.pad(x.unsqueeze(1), (half,) * 4, mode="replicate").squeeze(1)
    parts = [padded[..., off : off + h, (2 * half - off if anti else off) : (2 * half - off if anti else off) + w] for off in range(k)]
    if k == 1:
        return parts[0].clone()
    out = op(parts[0], parts[1])
    for part in parts[2:]:
        op(out, part, out=out)
    return out

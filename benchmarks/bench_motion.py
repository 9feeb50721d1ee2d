"""Benchmark: MediaPipe pose frames/s and the motion detector's own cost as a share of pose time.

    python benchmarks/bench_motion.py [--frames 96] [--repeats 20]

Pose runs in-process on one core over a dancing-puppet clip (the same graph the runner's worker
processes run, one per core), with and without the person-mask profile the ``cut`` check reads
(``LandmarkOptions.pose_limb_mask``), alternating so both see the same machine; the detector then
scores the track ``--repeats`` times. Target: detector time <= 10 % of pose time.
Version 10: the second pose model (MoveNet, ``--second-model``, one thread, batches of 32 frames) on
the same frames, alternating with MediaPipe, as a share of MediaPipe's pose time, and the
two-model rule's own cost (both tracks' checks and the confirmation).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evalkit.datasets import body
from evalkit.detectors.motion import MotionDetector, motion_breakage
from evalkit.landmarks import LandmarkOptions, extract_pose


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pose-runs", type=int, default=3, help="pose passes per setting (the fastest counts)")
    parser.add_argument("--second-model", choices=["lightning", "thunder", "none"], default="lightning")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one core, as MediaPipe's graph in one worker process
    frames, _ = body.make_clip(np.random.default_rng(0), args.fps, args.frames / args.fps, "teleport")
    settings = {"with mask": LandmarkOptions(), "landmarks only": LandmarkOptions(pose_limb_mask=False)}
    for options in settings.values():
        extract_pose(frames[:2], options)  # load the graphs once, outside the timing
    best = dict.fromkeys(settings, float("inf"))
    tracks = {}
    second = None
    if args.second_model != "none":
        from evalkit.movenet import MoveNet, movenet_keypoints, movenet_pose_track

        model = MoveNet.from_pretrained(args.second_model)
        movenet_keypoints(frames[:2], model=model)
        best["second model"] = float("inf")
    for _ in range(args.pose_runs):
        for name, options in settings.items():
            t0 = time.perf_counter()
            tracks[name] = extract_pose(frames, options)
            best[name] = min(best[name], time.perf_counter() - t0)
        if args.second_model != "none":
            t0 = time.perf_counter()
            second = movenet_pose_track(frames, keypoints=movenet_keypoints(frames, model=model))
            best["second model"] = min(best["second model"], time.perf_counter() - t0)
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
    if second is not None:
        print(f"second model (MoveNet {args.second_model}): {100 * best['second model'] / pose_s:.0f} % of MediaPipe's "
              f"pose time (with mask); pose time with both x {1 + best['second model'] / pose_s:.2f}")
        det = MotionDetector()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            det.score_tracks(args.fps, len(frames), pose, second)
        both_s = (time.perf_counter() - t0) / args.repeats
        print(f"motion detector, two-model rule: {1000 * both_s:.2f} ms per clip = "
              f"{100 * both_s / (pose_s + best['second model']):.2f} % of both models' pose time")
    print(f"motion detector: {1000 * detector_s:.2f} ms per clip = {100 * detector_s / pose_s:.2f} % of pose time "
          f"(target <= 10 %)")


if __name__ == "__main__":
    main()

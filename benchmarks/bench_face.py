"""Benchmark: MediaPipe face mesh frames/s and the blink and expression detectors' own cost as
a share of mesh time.

    python benchmarks/bench_face.py [--repeats 20] [--tile 1]

The mesh runs in-process on one core over carphone_pristine (120 frames, 176x144: the same
graph the runner's worker processes run, one per core); both detectors then score the resulting
track ``--repeats`` times (``--tile N`` repeats the track N times to time longer videos; mesh
time is scaled by N). Target: detector time <= 10 % of mesh time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evalkit._types import FaceTrack
from evalkit.datasets.face_eval import inputs_for
from evalkit.datasets.faces import ping_pong
from evalkit.datasets.footage import load_clip
from evalkit.detectors.blink import BlinkDetector
from evalkit.detectors.expression import ExpressionDetector
from evalkit.landmarks import extract_face


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tile", type=int, default=1, help="score a track this many times longer")
    args = parser.parse_args(argv)
    frames, fps = load_clip("carphone_pristine.mp4")
    extract_face(frames[:2])  # load the graph once, outside the timing
    t0 = time.perf_counter()
    track = extract_face(frames)
    mesh_s = time.perf_counter() - t0
    n = len(frames) * args.tile
    order = ping_pong(np.arange(len(frames)), n)
    long_track = FaceTrack(track.landmarks[order], track.image_size)
    inputs = inputs_for(frames[order], fps, long_track, "carphone")
    h, w = frames.shape[1:3]
    print(f"face mesh: {len(frames)} frames {w}x{h} in {mesh_s:.2f} s = {len(frames) / mesh_s:.1f} frames/s "
          f"({1000 * mesh_s / len(frames):.1f} ms/frame, one process, {track.landmarks.shape[1]} face slots)")
    mesh_s *= args.tile
    total = 0.0
    for detector in (BlinkDetector(), ExpressionDetector()):
        detector.score(inputs)  # warm-up (imports, reference file)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            detector.score(inputs)
        spent = (time.perf_counter() - t0) / args.repeats
        total += spent
        print(f"{detector.name} detector: {1000 * spent:.2f} ms per {n}-frame clip = {100 * spent / mesh_s:.2f} % of mesh time")
    verdict = "OK" if total <= 0.10 * mesh_s else "OVER TARGET"
    print(f"both detectors: {100 * total / mesh_s:.2f} % of mesh time (target <= 10 %): {verdict}")


if __name__ == "__main__":
    main()

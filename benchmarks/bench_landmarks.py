"""Benchmark: landmark backends (MediaPipe's graphs, LiteRT or torch with evalkit's pipeline) per
clip, and the four detectors end to end per backend.

    python benchmarks/bench_landmarks.py [--clips bikes.mp4,...] [--skip-e2e] [--runs 2]
                                         [--device cpu|cuda] [--videos 4] [--threads 1] [--batch 256]

Per clip (decoded at <= 512 px, as the runner does), in-process on one core: face mesh and pose
wall time and frames/s for each backend; for LiteRT, the time spent inside the model calls
(``TimedModel`` around every call, same run), so ``pipeline / model`` is the overhead of
everything around the models (target <= 1.25). Model files are loaded and warmed up before the
timed pass. End to end: ``evalkit.score`` over all clips with confetti, blink, expression and
motion (landmark workers as the CLI picks them), wall seconds per 5 s of video per backend
(target <= 2 s). Backends alternate, and the fastest of ``--runs`` passes counts. Then the work
itself in CPU seconds (one process, one thread), whose share per core is the floor under any
wall time on this machine.

torch (issue #16): per clip, ``--videos`` copies of the clip step through time together
(``evalkit.landmarks.extract_torch``) with ``--threads`` torch threads on ``--device``, in
the same run as the others. Then the torch models alone in batches of ``--batch`` (the GPU
targets: >= 5,000 face-mesh and >= 2,000 pose frames/s at 256) and the projection of a
VBench-sized sweep (4,719 clips of 5 s at 24 fps, face and pose) from the per-clip rates: CPU
backends one process per core (``--cores``), torch on CUDA one process for the GPU.
"""

from __future__ import annotations

import argparse
import time

CLIPS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
E2E_DETECTORS = ["confetti", "blink", "expression", "motion"]


class TimedEngine:
    """LiteRT engine whose models add up their own call time."""

    def __init__(self) -> None:
        from evalkit._litert import LiteRTEngine

        self.inner = LiteRTEngine()
        self.models: dict = {}

    def __call__(self, name: str):
        from evalkit._landmark_pipeline import TimedModel

        if name not in self.models:
            self.models[name] = TimedModel(self.inner(name))
        return self.models[name]

    def reset(self) -> None:
        for m in self.models.values():
            m.seconds, m.calls = 0.0, 0

    def seconds(self) -> float:
        return sum(m.seconds for m in self.models.values())


def torch_rates(frames, args) -> dict[str, float]:
    """Seconds per frame of face mesh and pose with the torch backend, ``--videos`` copies of the
    clip stepping through time together (fastest of ``--runs``)."""
    import torch

    from evalkit._torch_landmarks import TorchEngine
    from evalkit.landmarks import LandmarkOptions, extract_torch

    torch.set_num_threads(args.threads)
    options = LandmarkOptions(backend="torch", device=args.device)
    engine = TorchEngine(args.device)
    videos = [frames] * args.videos
    out = {}
    for kind in ("face", "pose"):
        extract_torch([frames[:2]], kind == "face", kind == "pose", options, engine=engine)  # load, warm up
        best = 1e9
        for _ in range(args.runs):
            start = time.perf_counter()
            extract_torch(videos, kind == "face", kind == "pose", options, engine=engine)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        out[kind] = best / (len(frames) * len(videos))
    return out


def per_clip(name: str, runs: int, args=None) -> dict[str, float]:
    from evalkit.datasets.footage import load_clip
    from evalkit.landmarks import (LandmarkOptions, _extract_face_pipeline, _extract_pose_pipeline,
                                   extract_face, extract_pose)

    frames, fps = load_clip(name, max_side=512)
    t = len(frames)
    engine = TimedEngine()
    litert = LandmarkOptions(backend="litert")
    _extract_face_pipeline(frames[:2], litert, engine)  # load and warm the models
    _extract_pose_pipeline(frames[:2], litert, engine)
    extract_face(frames[:2])  # MediaPipe's first graph pays its imports
    best: dict[str, float] = {}
    model: dict[str, float] = {}
    calls: dict[str, dict] = {}
    for _ in range(runs):
        for kind, mp_fn, lr_fn in (("face", extract_face, _extract_face_pipeline),
                                   ("pose", extract_pose, _extract_pose_pipeline)):
            start = time.perf_counter()
            mp_fn(frames)
            best[f"mediapipe {kind}"] = min(best.get(f"mediapipe {kind}", 1e9), time.perf_counter() - start)
            engine.reset()
            start = time.perf_counter()
            lr_fn(frames, litert, engine)
            wall = time.perf_counter() - start
            if wall < best.get(f"litert {kind}", 1e9):
                best[f"litert {kind}"] = wall
                model[kind] = engine.seconds()
                calls[kind] = {k: m.calls for k, m in engine.models.items() if m.calls}
    h, w = frames.shape[1:3]
    print(f"{name} ({t} frames, {w}x{h}, {t / fps:.1f} s)")
    for kind in ("face", "pose"):
        mp_s, lr_s = best[f"mediapipe {kind}"], best[f"litert {kind}"]
        print(f"  {kind}: mediapipe {1000 * mp_s / t:6.2f} ms/frame ({t / mp_s:6.1f} fps) | litert "
              f"{1000 * lr_s / t:6.2f} ms/frame ({t / lr_s:6.1f} fps), models {1000 * model[kind] / t:6.2f} "
              f"ms/frame, pipeline/model {lr_s / model[kind]:.2f} | speed-up {mp_s / lr_s:.2f}x | calls {calls[kind]}")
    both_lr = best["litert face"] + best["litert pose"]
    print(f"  face+pose: mediapipe {1000 * (best['mediapipe face'] + best['mediapipe pose']) / t:.2f} ms/frame, "
          f"litert {1000 * both_lr / t:.2f} ms/frame, pipeline/model {both_lr / (model['face'] + model['pose']):.2f}")
    per_frame = {"mediapipe": (best["mediapipe face"] + best["mediapipe pose"]) / t, "litert": both_lr / t}
    if args is not None and "torch" in args.backends:
        rates = torch_rates(frames, args)
        per_frame["torch"] = rates["face"] + rates["pose"]
        print(f"  torch ({args.device}, {args.videos} videos together, {args.threads} thread(s)): face "
              f"{1000 * rates['face']:6.2f} ms/frame ({1 / rates['face']:6.1f} fps), pose {1000 * rates['pose']:6.2f} "
              f"ms/frame ({1 / rates['pose']:6.1f} fps), face+pose {1000 * per_frame['torch']:.2f} ms/frame")
    return per_frame


def torch_models(device: str, batch: int, threads: int) -> None:
    """The torch models alone: frames/s in batches of ``batch``."""
    import torch

    from evalkit._torch_landmarks import TorchEngine

    torch.set_num_threads(threads)
    engine = TorchEngine(device)
    print(f"torch models alone ({device}, batch {batch}, float32, {threads} thread(s)):")
    for name in ("face_detection_short_range", "face_landmark", "iris_landmark", "pose_detection", "pose_landmark_full"):
        model = engine(name)
        x = torch.rand((batch,) + model.module.input_shape[1:], device=device)
        model.call(x[:2])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.call(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        print(f"  {name:28s} {batch / (time.perf_counter() - start):9.1f} frames/s", flush=True)


def sweep(per_frame: dict[str, float], args) -> None:
    """Projected wall time of a VBench-sized sweep through face and pose, per backend."""
    frames = args.sweep_clips * 5 * 24
    print(f"sweep projection: {args.sweep_clips} clips x 5 s x 24 fps = {frames:,} frames, face + pose")
    for backend, seconds in per_frame.items():
        workers = 1 if (backend == "torch" and args.device.startswith("cuda")) else max(1, args.cores // (args.threads if backend == "torch" else 1))
        minutes = frames * seconds / workers / 60
        print(f"  {backend:10s} {1000 * seconds:7.2f} ms/frame on one {'GPU' if workers == 1 and backend == 'torch' else 'core'}"
              f" -> {workers} worker(s): {minutes:8.1f} min")


def end_to_end(clips: list[str], runs: int, backends=("mediapipe", "litert"), device: str = "cpu") -> None:
    import evalkit
    from evalkit.datasets.footage import footage_path, load_clip

    paths = [str(footage_path(c)) for c in clips]
    seconds = sum(len(f) / fps for f, fps in (load_clip(c, max_side=64) for c in clips))
    workers = None  # as `evalkit score` picks for several files: one process per core, <= 4
    best: dict[str, float] = {}
    for _ in range(runs):
        for backend in backends:
            start = time.perf_counter()
            frame = evalkit.score(paths, detectors=E2E_DETECTORS, workers=workers, landmarks=backend, device=device)
            wall = time.perf_counter() - start
            errors = frame["error"].dropna().tolist()
            if errors:
                raise RuntimeError(f"{backend}: {errors}")
            best[backend] = min(best.get(backend, 1e9), wall)
            flags = dict(zip(frame["video"].map(lambda p: p.rsplit("/", 1)[-1]) + ":" + frame["detector"], frame["flagged"]))
            print(f"  {backend}: {wall:.1f} s wall, flagged {sorted(k for k, v in flags.items() if v)}", flush=True)
    for backend, wall in best.items():
        print(f"end to end ({', '.join(E2E_DETECTORS)}; {len(clips)} clips, {seconds:.1f} s of video): "
              f"{backend} {wall:.1f} s = {5 * wall / seconds:.2f} s per 5 s of video")


def work_floor(clips: list[str], cores: int) -> None:
    """The end-to-end work itself: ``evalkit.score`` in this process (no workers) with one torch
    thread and one LiteRT thread, CPU seconds measured (``time.process_time``), with the time
    inside LiteRT's model calls. The work divided by the cores is the least wall time any
    schedule of it can take here: the floor under the end-to-end bar."""
    import torch

    import evalkit
    from evalkit import landmarks
    from evalkit.datasets.footage import footage_path, load_clip

    torch.set_num_threads(1)
    paths = [str(footage_path(c)) for c in clips]
    seconds = sum(len(f) / fps for f, fps in (load_clip(c, max_side=64) for c in clips))
    engine = TimedEngine()
    landmarks._ENGINES["litert"] = engine
    evalkit.score(paths[-1:], detectors=E2E_DETECTORS, workers=0, landmarks="litert")  # imports, model loads
    engine.reset()
    cpu = time.process_time()
    evalkit.score(paths, detectors=E2E_DETECTORS, workers=0, landmarks="litert")
    cpu = time.process_time() - cpu
    per5 = 5 * cpu / seconds
    print(f"work ({', '.join(E2E_DETECTORS)}, litert, one thread): {cpu:.1f} CPU-s for {seconds:.1f} s of video "
          f"= {per5:.2f} CPU-s per 5 s, of which the landmark models {5 * engine.seconds() / seconds:.2f}; "
          f"on {cores} cores no schedule takes less than {per5 / cores:.2f} s per 5 s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-clips", action="store_true")
    parser.add_argument("--backends", default="mediapipe,litert,torch")
    parser.add_argument("--device", default="cpu", help="torch backend's device")
    parser.add_argument("--videos", type=int, default=4, help="torch: copies of a clip stepping through time together")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the per-core rate)")
    parser.add_argument("--batch", type=int, default=256, help="torch models alone: batch size")
    parser.add_argument("--cores", type=int, default=16, help="sweep projection: CPU worker processes")
    parser.add_argument("--sweep-clips", type=int, default=4719)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",")]
    import os
    from datetime import datetime, timezone

    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores visible, "
          f"load {os.getloadavg()[0]:.1f}, torch device {args.device}")
    clips = [c.strip() for c in args.clips.split(",")]
    if not args.skip_clips:
        total: dict[str, float] = {}
        for clip in clips:
            for backend, seconds in per_clip(clip, args.runs, args).items():
                total[backend] = total.get(backend, 0.0) + seconds / len(clips)
        if "torch" in args.backends:
            torch_models(args.device, args.batch, args.threads)
        sweep(total, args)
    if not args.skip_e2e:
        end_to_end(clips, args.runs, args.backends, args.device)
        work_floor(clips, len(os.sched_getaffinity(0)))


if __name__ == "__main__":
    main()

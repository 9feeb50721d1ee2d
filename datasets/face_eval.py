"""Validate the ``blink`` and ``expression`` detectors on real faces with known defects.

    python -m evalkit.datasets.face_eval [--skip-expression] [--skip-blink]

Blink (labels: carphone_pristine's two blinks, hand-labelled in ``faces.CARPHONE_BLINKS``):
  - blink count and positions on the real clip, its blink-free copy, and 16-s and 24-s
    back-and-forth loops of both (the mesh runs on every generated video);
  - the missing-blink flag on every clip (right: flagged exactly when blinks are missing and
    the clip is long enough to judge);
  - low frame rates: the real clip re-timed to 15, 10 and 8 fps at every frame phase (the mesh
    runs on the re-timed frames): blinks caught and false blinks;
  - the checkpoint-level pooled rate of the real and the blink-free loops.
Blink on real footage (labels: ``face_blink_labels.json``, hand-labelled frame by frame):
single_face.mp4, face_noface.mov (the face leaves) and WolfgangLanger_Pexels.mp4 (a woman
crying with her eyes shut and a hand over her face, then laughing): blinks caught, missed and
false, and the eyes-shut time left unjudged.
Expression, leave-one-identity-out: every segment of each real identity (carphone, the woman,
the single_face man; ``faces.IDENTITIES``) and the astronaut animated by carphone's motion,
warped by factors 1, 1.5, 2 and 3 (36 clips), each scored against a reference built without
its identity; the AUC of exaggerated (factor >= 1.5) vs real (factor 1) pooled over all of them,
the same AUC within identities only, the Spearman correlation of score with factor, the share
of 16 real variants (``faces.real_variants``: carphone pristine and distorted at several sizes,
frame rates and codecs) flagged, and the woman's whole real clip's score ("extreme but real").
The bundled reference's (in-sample) numbers are printed beside them. Every table shows three
scorings of the same clips with the same references: the naive baseline (the clip's maximum
mouth opening over face size), the unpaired score (versions 3/4, 5 and 6: version 6 drops the
faces the landmark model doubts, ``faces.cached_face_presence``, and skips a clip left with too
little face) and the paired mode (versions 4/5 and 6) (each clip against its own segment unwarped; real pairs: the real variants against the
clip they were made from), then how many clips the regression test needs paired and unpaired
(:func:`clips_needed`). ``--demo-root DEMO`` also shows the paired mode on a demo root that
``evalkit run`` has scored (:func:`evaluate_paired_demo`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from evalkit._types import FaceTrack, Video, VideoInputs
from evalkit.aggregate import find_regressions
from evalkit.datasets import faces
from evalkit.detectors.blink import BlinkDetector, pooled_blink_rate
from evalkit.datasets.expression_reference import build_from_features, build_from_points
from evalkit.detectors.expression import (
    PAIRED_FLOOR,
    PAIRED_THRESHOLD,
    ExpressionConfig,
    ExpressionDetector,
    deformation_peak,
    exaggeration,
    drop_uncertain_faces,
    expression_features,
    paired_exaggeration,
    reference_scale,
)
from evalkit.detectors.face_mesh import MEASURES, expression_measures, is_frontal

log = logging.getLogger(__name__)


def inputs_for(frames: np.ndarray, fps: float, track: FaceTrack, name: str) -> VideoInputs:
    """Runner-like inputs for generated frames ``(T, H, W, 3)`` and their face track."""
    import torch

    video = Video(
        path=name,
        frames=torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2),
        fps=fps,
        frame_indices=np.arange(len(frames)),
        source_size=(frames.shape[2], frames.shape[1]),
        source_fps=fps,
        content_hash=name,
    )
    return VideoInputs(video=video, face=track)


def blink_matches(events: list, truth: list[tuple[int, int]]) -> tuple[int, int, int]:
    """``(caught, missed, false)`` blink events against true frame ranges (overlap counts)."""
    blinks = [e for e in events if e.kind == "blink"]
    hit = [any(e.start <= t1 and e.end >= t0 for e in blinks) for t0, t1 in truth]
    false = sum(not any(e.start <= t1 and e.end >= t0 for t0, t1 in truth) for e in blinks)
    return sum(hit), len(truth) - sum(hit), false


def blink_cases() -> list[tuple[str, np.ndarray, float, list[tuple[int, int]]]]:
    """``(name, frames, fps, true blink ranges)`` of the real clip, its blink-free copy and loops."""
    frames, fps, _ = faces.carphone()
    cases = [("carphone", frames, fps, list(faces.CARPHONE_BLINKS)), ("carphone_blink_free", faces.remove_blinks(frames), fps, [])]
    for seconds in (16, 24):
        n = int(np.ceil(seconds * fps))
        cases.append((f"loop{seconds}s", faces.ping_pong(frames, n), fps, faces.blink_passes(faces.ping_pong_frames(frames, n))))
        cases.append((f"loop{seconds}s_blink_free", faces.ping_pong(faces.remove_blinks(frames), n), fps, []))
    return cases


def evaluate_blinks() -> dict:
    detector = BlinkDetector()
    rows, stats_by_clip = [], {}
    for name, frames, fps, truth in blink_cases():
        result = detector.score(inputs_for(frames, fps, faces.cached_face_track(frames, name), name))
        caught, missed, false = blink_matches(result.events, truth)
        judged = result.stats["judged"]
        should_flag = judged and not truth
        rows.append((name, len(frames) / fps, len(truth), result.stats["blink_count"], caught, false, result.stats["verdict"], result.flagged == should_flag))
        stats_by_clip[name] = result.stats
    print("\nBLINK  clip                       seconds  true  found  caught  false  verdict               flag right")
    for name, sec, true, found, caught, false, verdict, right in rows:
        print(f"       {name:26s} {sec:7.1f}  {true:4d}  {found:5d}  {caught:6d}  {false:5d}  {verdict:20s}  {right}")
    exact = all(r[2] == r[3] == r[4] and r[5] == 0 for r in rows)
    long_right = all(r[7] for r in rows if r[1] >= 15)
    print(f"       blink counts exact on every clip: {exact};  missing-blink flag right on every clip >= 15 s: {long_right}")

    real = evaluate_real_blinks(detector)
    low = evaluate_low_fps(detector)
    pooled_real = pooled_blink_rate([stats_by_clip["loop16s"], stats_by_clip["loop24s"]])
    pooled_free = pooled_blink_rate([stats_by_clip["loop16s_blink_free"], stats_by_clip["loop24s_blink_free"], stats_by_clip["carphone_blink_free"]])
    for label, pooled in (("real loops", pooled_real), ("blink-free clips", pooled_free)):
        ci = pooled["ci"]
        print(f"       pooled {label:17s}: {pooled['blinks_per_minute']:.1f} blinks/face-min, 95% CI {ci[0]:.1f}-{ci[1]:.1f}, {pooled['verdict']}")
    return {"exact": exact, "long_flags_right": long_right, "low_fps": low, "real": real}


def evaluate_low_fps(detector: BlinkDetector) -> dict:
    frames, fps, _ = faces.carphone()
    out = {}
    print("\nBLINK  low fps (re-timed by dropping frames, every phase)")
    for target in (15.0, 10.0, 8.0):
        step = fps / target
        caught = false = total = 0
        for phase in range(int(np.ceil(step))):
            keep = np.round(np.arange(phase, len(frames), step)).astype(int)
            keep = keep[keep < len(frames)]
            sub = frames[keep]
            result = detector.score(inputs_for(sub, fps / step, faces.cached_face_track(sub, f"carphone_{target:g}fps_{phase}"), "low"))
            events = [type(e)(int(keep[e.start]), int(keep[e.end]), e.kind, e.score) for e in result.events]
            c, _, f = blink_matches(events, list(faces.CARPHONE_BLINKS))
            caught, false, total = caught + c, false + f, total + len(faces.CARPHONE_BLINKS)
        out[target] = (caught, total, false)
        print(f"       {target:4.0f} fps: caught {caught}/{total} blinks over all phases, {false} false blinks")
    # Long loops at 10 fps: the verdict must allow for the blinks the frame rate misses.
    print("       40-s loops re-timed to 10 fps (time needed to judge grows as blinks get missed):")
    n = int(np.ceil(40 * fps))
    for name, source in (("with blinks", frames), ("blink free", faces.remove_blinks(frames))):
        loop = faces.ping_pong(source, n)[np.round(np.arange(0, n, fps / 10.0)).astype(int)[:400]]
        result = detector.score(inputs_for(loop, 10.0, faces.cached_face_track(loop, f"loop40s_10fps_{name[:4]}"), name))
        st = result.stats
        right = result.flagged == (name == "blink free" and st["judged"])
        print(f"         {name:11s}: {st['blink_count']} blinks in {st['face_seconds']:.0f} s, judged after {st['seconds_to_judge']:.1f} s, "
              f"verdict {st['verdict']!r}, flag right {right}")
        out[f"loop40s_10fps_{name}"] = right
    return out


def real_blink_counts(result, label: dict) -> tuple[int, int, int]:
    """``(caught, missed, false)`` of a blink result against a clip's hand labels; blinks on an
    ``ambiguous`` closure count neither way."""
    caught, missed, _ = blink_matches(result.events, [tuple(b) for b in label["blinks"]])
    known = [tuple(b) for b in label["blinks"] + label["ambiguous"]]
    return caught, missed, blink_matches(result.events, known)[2]


def evaluate_real_blinks(detector: BlinkDetector) -> dict:
    """The hand-labelled real clips of ``face_blink_labels.json`` at their full size."""
    from evalkit.datasets.footage import load_clip

    out = {}
    print("\nBLINK  real clip (hand labels)     seconds  true  found  caught  missed  false  ambiguous  face s  eyes-shut s  verdict")
    for name, label in faces.real_blink_labels().items():
        frames, fps = load_clip(name)
        result = detector.score(inputs_for(frames, fps, faces.cached_face_track(frames, Path(name).stem), name))
        caught, missed, false = real_blink_counts(result, label)
        st = result.stats
        out[name] = {"caught": caught, "missed": missed, "false": false, "blink_count": st["blink_count"], "verdict": st["verdict"]}
        print(f"       {name:28s} {len(frames) / fps:7.1f}  {len(label['blinks']):4d}  {st['blink_count']:5d}  {caught:6d}  {missed:6d}  {false:5d}"
              f"  {len(label['ambiguous']):9d}  {st['face_seconds']:6.1f}  {st['eyes_shut_seconds']:11.1f}  {st['verdict']}")
    return out


def auc(negatives: list[float], positives: list[float]) -> float:
    neg, pos = np.asarray(negatives)[None], np.asarray(positives)[:, None]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def _ranking(scores: dict, factor: dict, identity: dict | None = None) -> tuple[float, float, float]:
    """``(pooled AUC of factor >= 1.5 vs 1.0, Spearman of score vs factor, within-identity AUC)``;
    the last compares only clips of the same identity (NaN without ``identity``)."""
    names = [n for n in scores if np.isfinite(scores[n])]
    a = auc([scores[n] for n in names if factor[n] == 1.0], [scores[n] for n in names if factor[n] > 1.0])
    rho = float(spearmanr([factor[n] for n in names], [scores[n] for n in names]).statistic)
    within = float("nan")
    if identity is not None:
        pairs = [(scores[p] > scores[q]) + 0.5 * (scores[p] == scores[q]) for p in names for q in names
                 if identity[p] == identity[q] and factor[p] > 1.0 and factor[q] == 1.0]
        within = float(np.mean(pairs))
    return a, rho, within


def segment_of(name: str) -> str:
    """The real segment a warped clip was made from: ``"woman1_x1.5"`` -> ``"woman1"``."""
    return name.rsplit("_x", 1)[0]


def auc_interval(scores: dict, factor: dict, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the pooled AUC of factor > 1 vs 1, resampling whole segments
    (each drawn segment brings its factor-1 clip and its warps): how far the AUC of so few
    segments can move by which segments happened to be filmed. Skipped clips (NaN) are left out."""
    by_segment: dict[str, dict[float, float]] = {}
    for n, v in scores.items():
        if np.isfinite(v):
            by_segment.setdefault(segment_of(n), {})[factor[n]] = v
    segments = sorted(by_segment)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        drawn = [by_segment[g] for g in rng.choice(segments, len(segments))]
        neg = [s[1.0] for s in drawn if 1.0 in s]
        pos = [v for s in drawn for f, v in s.items() if f > 1.0]
        if neg and pos:
            values.append(auc(neg, pos))
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def linear_response_auc(scores: dict, factor: dict) -> float:
    """The pooled AUC if every warped clip scored exactly its factor times its segment's factor-1
    score: what the real spread between segments alone allows a score of the deformation's size.
    Below the measured AUC, the score grows faster than the warp; above it, the score falls
    short of the warp (the mesh under-reads large warps, or the clip's neutral moves)."""
    base = {segment_of(n): v for n, v in scores.items() if factor[n] == 1.0 and np.isfinite(v)}
    return auc(list(base.values()), [v * f for v in base.values() for f in sorted({*factor.values()} - {1.0})])


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """The naive baseline's per-frame measure: inner-lip opening over face size (frontal faces
    only), ``(T, F, 478, 3)`` px -> ``(T, F)``, NaN where no frontal face."""
    cfg = ExpressionConfig()
    opening = expression_measures(points)[..., MEASURES.index("mouth_open")]
    return np.where(is_frontal(points, cfg.max_yaw_deg, cfg.max_pitch_deg), opening, np.nan)


def naive_score(opening: np.ndarray, reference_q99: float) -> float:
    """The naive baseline: the clip's maximum mouth opening (face sizes, max over faces) over the
    reference clips' 99th percentile of per-frame mouth opening."""
    return float(np.nanmax(opening)) / reference_q99 if np.isfinite(opening).any() else float("nan")


def _pooled_q99(per_clip: list[np.ndarray]) -> float:
    values = np.concatenate([v.ravel() for v in per_clip])
    return float(np.quantile(values[np.isfinite(values)], 0.99))


def _scores_row(label: str, s: dict, r: dict, threshold: float, names: list, factor: dict, identity: dict,
                paired: bool = False) -> dict:
    """AUC, within-identity AUC, Spearman and flag rates of one scoring of the clips ``names``
    (``s``) and of the real clips (``r``: real variants and whole clips). ``paired``: the pooled
    AUC takes the real pairs ``r`` as the negatives (a factor-1 clip paired with itself is 1
    exactly, which would make it trivial); within identity, each exaggerated clip is compared
    with its own segment's factor-1 pair."""
    a, rho, within = _ranking({n: s[n] for n in names}, factor, identity)
    spread = ""
    interval, linear = (float("nan"), float("nan")), float("nan")
    if paired:
        a = auc([v for v in r.values() if np.isfinite(v)], [s[n] for n in names if factor[n] > 1.0])
    else:
        interval, linear = auc_interval({n: s[n] for n in names}, factor), linear_response_auc({n: s[n] for n in names}, factor)
        spread = f" [{interval[0]:.2f}, {interval[1]:.2f}] if linear {linear:.3f}"
    flags = {f: float(np.mean([s[n] > threshold for n in names if factor[n] == f])) for f in faces.FACTORS}
    variants = [n for n in r if "whole clip" not in n]
    fpr = float(np.mean([r[n] > threshold for n in variants]))  # a skipped clip (NaN) is not flagged
    skipped = sum(not np.isfinite(r[n]) for n in variants)
    whole = {n.split(" ")[0]: r[n] for n in r if "whole clip" in n}
    print(f"  {label:44s} AUC {a:.3f}{spread}  within {within:.3f}  Spearman {rho:5.2f}  real flagged {fpr:4.2f} "
          f"(max {np.nanmax([r[n] for n in variants]):.2f}{f', {skipped} skipped' if skipped else ''})  "
          + "  ".join(f"{k} {v:.2f}" for k, v in whole.items())
          + "  flagged at x" + "/".join(f"{k:g}" for k in flags) + ": " + "/".join(f"{100 * v:.0f}" for v in flags.values()) + " %")
    return {"auc": a, "auc_interval": interval, "auc_if_linear": linear, "spearman": rho, "within_identity_auc": within, "real_fpr": fpr, "real_skipped": skipped,
            "flagged_by_factor": flags, **{f"{k}_whole": v for k, v in whole.items()}}


def evaluate_expression() -> dict:
    """Leave-one-identity-out: every segment of every real identity (``faces.IDENTITIES``) and
    the astronaut animated by carphone's halves, warped by 1, 1.5, 2 and 3, each scored against
    a reference built from the factor-1 clips of the OTHER real identities only (the
    astronaut's against woman + single_face: its motion is carphone's): the reference's
    ``point_scale`` as well as its quantiles. Versions 6 and 7 drop the faces the landmark model
    doubts; version 7 measures on the face landmarker's mesh
    (:func:`evalkit.landmarks.landmarker_mesh`), each fold's reference built on it too. Every
    unpaired row also shows a bootstrap interval over segments (:func:`auc_interval`) and the
    AUC if the score followed the warp exactly (:func:`linear_response_auc`). Scorings of the
    same clips with the same references, side by side:

    - naive: the clip's maximum mouth opening / face size over the reference's 99th percentile;
    - version 3 (= version 4 unpaired): the peak whole-face deformation in face sizes over the reference's;
    - version 5: the same with each mesh point in units of how far the reference's people move it;
    - paired (versions 4 and 5): each clip against the same segment unwarped (the same prompt and
      seed at a checkpoint that does not exaggerate), :func:`paired_exaggeration` in face sizes
      (and, tried and not kept, in the bundled reference's point units). Its real pairs are the real variants (carphone
      pristine and distorted resized, re-timed and re-encoded) against the clip they were made
      from, and distorted against pristine.

    Also the bundled reference (in-sample for the real identities), the real variants of
    carphone (scored against the reference without carphone) and the unwarped woman and
    single_face clips whole ("extreme but real")."""
    detector = ExpressionDetector()
    threshold, q = detector.options.threshold, detector.options.peak_quantile
    v3_threshold = 1.25  # version 3's and 4's default
    points, fps, opening, factor, identity, presence, landmarker = {}, {}, {}, {}, {}, {}, {}
    for clip in faces.expression_clips():
        name = clip["name"]
        points[name] = faces.cached_face_track(clip["frames"], name).pixels()
        landmarker[name] = faces.cached_landmarker_mesh(clip["frames"], name, clip["fps"])
        presence[name] = faces.cached_face_presence(clip["frames"], name)
        fps[name], opening[name] = clip["fps"], mouth_opening(points[name])
        factor[name], identity[name] = clip["factor"], clip["identity"]
    warped = list(points)
    for clip in faces.real_variants():
        key = clip["name"].replace("@", "_")
        points[clip["name"]] = faces.cached_face_track(clip["frames"], key).pixels()
        landmarker[clip["name"]] = faces.cached_landmarker_mesh(clip["frames"], key, clip["fps"])
        presence[clip["name"]] = faces.cached_face_presence(clip["frames"], key)
        fps[clip["name"]] = clip["fps"]
    for who in ("woman", "single_face"):
        frames, fps[f"{who} (whole clip)"], whole = faces.real_face(who)
        points[f"{who} (whole clip)"] = whole[:, None]
        presence[f"{who} (whole clip)"] = faces.cached_face_presence(frames, f"{who}_{faces.REAL_MAX_SIDE}")[:, :1]  # as mesh_points: slot 0
        landmarker[f"{who} (whole clip)"] = faces.cached_landmarker_mesh(frames, f"{who}_{faces.REAL_MAX_SIDE}", fps[f"{who} (whole clip)"])[:, :1]
    reals = [n for n in points if n not in factor]
    real_opening = {n: mouth_opening(points[n]) for n in reals}
    real_ids = list(faces.IDENTITIES)

    def reference_clips(*held: str) -> list[str]:
        return [n for n in warped if factor[n] == 1.0 and identity[n] in real_ids and identity[n] not in held]

    held = {who: (who,) for who in real_ids} | {"astronaut": ("carphone",)}
    real_who = {n: "carphone" if n.startswith("carphone") else n.split(" ")[0] for n in reals}
    who_of = identity | real_who
    v3_features = {n: expression_features(points[n], fps[n]) for n in points}
    v3_scale = {who: reference_scale(build_from_features({n: (v3_features[n], 1.0) for n in reference_clips(*h)}, "held out"))
                for who, h in held.items()}
    v3_bundled = reference_scale(build_from_features({n: (v3_features[n], 1.0) for n in reference_clips()}, "bundled v3"))
    # version 5: each held-out person's clips measured in the units of the reference without them
    held_reference = {who: build_from_points({n: (points[n], fps[n], identity[n]) for n in reference_clips(*h)}, "held out")
                      for who, h in held.items()}
    loio_features = {n: expression_features(points[n], fps[n], point_scale=np.array(held_reference[who_of[n]]["point_scale"]))
                     for n in points}
    # versions 6 and 7: the same after dropping the faces the landmark model doubts (None: the
    # clip is skipped, under min_face_s of trusted frontal face, as the detector skips it);
    # version 7 on the face landmarker's mesh (what the detector now measures on)

    def checked(meshes: dict) -> tuple[dict, Callable[[str, np.ndarray | None], np.ndarray | None]]:
        """Each fold's reference and the features of a clip, on ``meshes`` after the presence check."""
        trusted = {n: drop_uncertain_faces(meshes[n], presence[n], detector.options.min_face_presence)[0] for n in points}
        references = {who: build_from_points({n: (trusted[n], fps[n], identity[n]) for n in reference_clips(*h)}, "held out")
                      for who, h in held.items()}

        def features_of(n: str, point_scale: np.ndarray | None) -> np.ndarray | None:
            f = expression_features(trusted[n], fps[n], point_scale=point_scale)
            return f if np.isfinite(f[..., 0]).any(axis=1).sum() / fps[n] >= detector.options.min_face_s else None

        return references, features_of

    v6_reference, v6_features = checked(points)
    v6_loio = {n: v6_features(n, np.array(v6_reference[who_of[n]]["point_scale"])) for n in points}
    v6_sizes = {n: v6_features(n, None) for n in points}
    v7_reference, v7_features = checked(landmarker)
    v7_loio = {n: v7_features(n, np.array(v7_reference[who_of[n]]["point_scale"])) for n in points}
    v7_bundled = {n: v7_features(n, detector._point_scale) for n in points}
    v7_sizes = {n: v7_features(n, None) for n in points}
    held_mouth = {who: _pooled_q99([opening[n] for n in reference_clips(*h)]) for who, h in held.items()}
    bundled_mouth = _pooled_q99([opening[n] for n in reference_clips()])

    def score(f: np.ndarray | None, scale: np.ndarray) -> float:
        return float("nan") if f is None else exaggeration(f, scale, q)[1]

    def both(score_of) -> tuple[dict, dict]:
        return {n: score_of(n) for n in warped}, {n: score_of(n) for n in reals}

    scorings = {
        "naive: max mouth opening, leave-one-identity-out": (
            {n: naive_score(opening[n], held_mouth[identity[n]]) for n in warped},
            {n: naive_score(real_opening[n], held_mouth[real_who[n]]) for n in reals}, v3_threshold),
        "naive: max mouth opening, bundled (in-sample)": (
            {n: naive_score(opening[n], bundled_mouth) for n in warped},
            {n: naive_score(real_opening[n], bundled_mouth) for n in reals}, v3_threshold),
        "v3 = v4 unpaired, leave-one-identity-out": (
            *both(lambda n: score(v3_features[n], v3_scale[who_of[n]])), v3_threshold),
        "v3 = v4 unpaired, bundled (in-sample)": (*both(lambda n: score(v3_features[n], v3_bundled)), v3_threshold),
        "v5 unpaired, leave-one-identity-out": (
            *both(lambda n: score(loio_features[n], reference_scale(held_reference[who_of[n]]))), threshold),
        "v6 unpaired, leave-one-identity-out": (
            *both(lambda n: score(v6_loio[n], reference_scale(v6_reference[who_of[n]]))), threshold),
        "v7 unpaired, leave-one-identity-out": (
            *both(lambda n: score(v7_loio[n], reference_scale(v7_reference[who_of[n]]))), threshold),
        "v7 unpaired, bundled (in-sample)": (*both(lambda n: score(v7_bundled[n], detector._scale)), threshold),
    }
    # Paired: no reference of other people but the bundled point scale.
    own = {n: n.rsplit("_x", 1)[0] + "_x1.0" for n in warped}
    sources = {n: ("carphone_distorted" if n.startswith("carphone_distorted") else "carphone_pristine") for n in reals if "whole" not in n}
    pairs = {n: (n, own[n]) for n in warped}
    real_pair_of = {n: (n, sources[n]) for n in sources if n != sources[n]}
    real_pair_of["carphone_distorted vs carphone_pristine"] = ("carphone_distorted", "carphone_pristine")
    for label, f in (("v4 = v5 paired (against the unwarped clip)", v3_features),
                     ("v6 paired (against the unwarped clip)", v6_sizes),
                     ("v7 paired (against the unwarped clip)", v7_sizes)):
        ratio = {n: _ratio(f[a], f[b], q, PAIRED_FLOOR) for n, (a, b) in pairs.items()}
        real_ratio = {n: _ratio(f[a], f[b], q, PAIRED_FLOOR) for n, (a, b) in real_pair_of.items()}
        scorings[label] = (ratio, real_ratio, PAIRED_THRESHOLD)
    paired, real_pairs = scorings["v7 paired (against the unwarped clip)"][:2]
    # The astronaut against a real clip of other content: the real footage that drives her.
    driver = {n: f"carphone{n[len('astronaut')]}_x1.0" for n in warped if identity[n] == "astronaut"}
    astro = {n: paired_exaggeration(v3_features[n], v3_features[driver[n]], q) for n in driver}

    print(f"\nEXPRESSION (version {detector.version})  clip       factor  naive(loio)  v3(loio)  v5(loio)  v6(loio)  v7(loio)  v7(bundled)  paired v5  paired v6  paired v7")
    v5_paired, v6_paired = scorings["v4 = v5 paired (against the unwarped clip)"], scorings["v6 paired (against the unwarped clip)"]
    col = {k: scorings[k][0] for k in scorings}
    for n in warped:
        print(f"            {n:22s} {factor[n]:6.1f}  {col['naive: max mouth opening, leave-one-identity-out'][n]:11.2f}"
              f"  {col['v3 = v4 unpaired, leave-one-identity-out'][n]:8.2f}  {col['v5 unpaired, leave-one-identity-out'][n]:8.2f}"
              f"  {col['v6 unpaired, leave-one-identity-out'][n]:8.2f}  {col['v7 unpaired, leave-one-identity-out'][n]:8.2f}"
              f"  {col['v7 unpaired, bundled (in-sample)'][n]:11.2f}  {v5_paired[0][n]:9.2f}  {v6_paired[0][n]:9.2f}  {paired[n]:9.2f}")
    print("            real clip / pair                      v5 unpaired  v6 unpaired  v7 unpaired  paired v5  paired v6  paired v7  (nan = skipped, the landmark model doubted the face)")
    for n in reals:
        pair = next((k for k in real_pairs if k == n), None)
        print(f"            {n:36s}  {scorings['v5 unpaired, leave-one-identity-out'][1][n]:11.2f}  {scorings['v6 unpaired, leave-one-identity-out'][1][n]:11.2f}"
              f"  {scorings['v7 unpaired, leave-one-identity-out'][1][n]:11.2f}"
              + (f"  {v5_paired[1][pair]:9.2f}  {v6_paired[1][pair]:9.2f}  {real_pairs[pair]:9.2f}" if pair else ""))
    n = "carphone_distorted vs carphone_pristine"
    print(f"            {n:36s}  {'':11s}  {'':11s}  {'':11s}  {v5_paired[1][n]:9.2f}  {v6_paired[1][n]:9.2f}  {real_pairs[n]:9.2f}")
    out: dict = {"scores": {k: v[0] for k, v in scorings.items()}, "real": {k: v[1] for k, v in scorings.items()}}
    subsets = (
        ("all", warped),
        ("real identities", [n for n in warped if identity[n] in real_ids]),
        ("issue protocol: carphone + astronaut", [n for n in warped if identity[n] in ("carphone", "astronaut")]),
    )
    for subset, names in subsets:
        print(f"\n  [{subset}: {len(names)} clips]")
        for label, (s, r, thr) in scorings.items():
            out[f"{label}, {subset}"] = _scores_row(label, s, r, thr, names, factor, identity, paired=" paired" in label)
    a, rho, _ = _ranking(astro, factor)
    print(f"\n  paired against a real clip of other content (the astronaut vs carphone, the real man driving her): "
          f"x1 {', '.join(f'{astro[n]:.2f}' for n in astro if factor[n] == 1.0)}; Spearman with factor {rho:.2f}")
    out["astronaut_vs_driver"] = astro
    unpaired = scorings["v7 unpaired, leave-one-identity-out"][0]
    peaks = {n: deformation_peak(v7_sizes[n], q) for n in warped}
    out["power"] = clips_needed(unpaired, peaks, factor, own)
    out["paired_false_alarms"] = paired_false_alarms(real_pairs)
    return out


def _ratio(features: np.ndarray, reference: np.ndarray, q: float, floor: float) -> float:
    """:func:`paired_exaggeration` with another floor (for the point-unit variant); NaN when
    either clip was skipped (None)."""
    if features is None or reference is None:
        return float("nan")
    peak, ref = deformation_peak(features, q), deformation_peak(reference, q)
    return peak / max(ref, floor) if np.isfinite(ref) else float("nan")


def _detects(values: np.ndarray, rng: np.random.Generator, n_boot: int = 500) -> bool:
    """The 95 % bootstrap CI of the mean of ``values`` lies above 0."""
    boots = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    return bool(np.quantile(boots, 0.025) > 0)


def clips_needed(unpaired: dict, peaks: dict, factor: dict, own: dict, draws: int = 100, seed: int = 0) -> dict:
    """How many clips the regression test of ``evalkit run`` (:func:`evalkit.aggregate.find_regressions`)
    needs, simulated on the validation's segments: checkpoint A renders each segment unwarped,
    checkpoint B warped by a factor. Paired: n segments drawn, both checkpoints on the same
    prompts and seeds (the test runs on the detector's paired score). Unpaired: n segments drawn
    for A and n drawn independently for B (no shared seeds: the two-sample test on the
    leave-one-identity-out scores). Returns ``{factor: {n: (paired, unpaired) share of draws
    in which B is found worse}}``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    segments = sorted({own[n] for n in own})
    paired_scores = {"expression": ExpressionDetector.paired_score}

    def row(checkpoint: str, name: str, prompt: str) -> dict:
        return {"checkpoint": checkpoint, "prompt_id": prompt, "seed": 0, "detector": "expression", "score": unpaired[name],
                "flagged": False, "stats": {"deformation_peak": peaks[name]}}

    out: dict = {}
    print(f"\n  clips needed by the regression test to find checkpoint B (warped) worse than A (unwarped): share of {draws} draws "
          "(paired: shared prompts and seeds; unpaired: independent draws, two-sample)")
    for f in (1.5, 2.0):
        out[f] = {}
        for n in range(3, len(segments) + 1):  # the regression test needs 3 clips per checkpoint
            hits_p = hits_u = 0
            for k in range(draws):
                pick = rng.choice(segments, n, replace=False)
                frame = pd.DataFrame([row("A", s, s) for s in pick] + [row("B", s.replace("_x1.0", f"_x{f}"), s) for s in pick])
                hits_p += bool(find_regressions(frame, ["A", "B"], {"expression": True}, seed=k, paired_scores=paired_scores))
                a, b = rng.choice(segments, n, replace=False), rng.choice(segments, n, replace=False)
                frame = pd.DataFrame([row("A", s, f"a{s}") for s in a] + [row("B", s.replace("_x1.0", f"_x{f}"), f"b{s}") for s in b])
                hits_u += bool(find_regressions(frame, ["A", "B"], {"expression": True}, seed=k))
            out[f][n] = (hits_p / draws, hits_u / draws)
        print(f"  x{f:g}: " + "  ".join(f"n={n} {p:.2f}/{u:.2f}" for n, (p, u) in out[f].items()) + "   (paired/unpaired)")
    return out


def paired_false_alarms(real_pairs: dict, draws: int = 200, seed: int = 0) -> dict:
    """The paired regression test on real pairs only (the same footage resized, re-timed or
    re-encoded: no checkpoint is more exaggerated): ``{n: share of draws of n pairs called worse}``
    (pairs with a skipped clip, NaN, are left out)."""
    rng = np.random.default_rng(seed)
    logs = np.log2(np.array([v for v in real_pairs.values() if np.isfinite(v)]))
    out = {n: float(np.mean([_detects(rng.choice(logs, n, replace=False), rng) for _ in range(draws)]))
           for n in (3, 5, 9) if n <= len(logs)}
    print(f"  real pairs ({len(logs)} scored), paired test calls B worse in: " + ", ".join(f"n={n} {v:.2f}" for n, v in out.items()) + " of draws")
    return out


def evaluate_paired_demo(root: str | Path) -> dict:
    """The paired mode on a demo root (``python -m evalkit.datasets.demo`` then ``evalkit run``):
    each checkpoint whose expression clips are exaggerated (the truth's ``expression_factor`` > 1)
    against the final checkpoint on the same prompts, over every subset of n of the clips tagged
    ``expression``. Paired: found when the subset's geometric-mean paired ratio exceeds
    ``PAIRED_THRESHOLD``; unpaired: found when the subset's mean unpaired score exceeds the
    detector's threshold. Also what ``evalkit run`` prints: each checkpoint against the previous one."""
    import itertools
    import json

    from evalkit.root import open_root

    view = open_root(root, detectors=["expression"])
    results = view.results.set_index(["checkpoint", "prompt_id"])
    prompts = [json.loads(line) for line in (Path(root) / "prompts.jsonl").read_text().splitlines() if line.strip()]
    expression_prompts = [p["id"] for p in prompts if "expression" in p.get("tags", [])]
    final = view.order[-1]
    threshold = ExpressionConfig.threshold
    # unpaired scores as for people no one tuned on: each clip's peak over the reference built
    # without its person (the bundled one holds carphone and the woman, the demo's faces)
    from evalkit.datasets.expression_reference import default_sources

    person = {"face_expression": "carphone", "face_astronaut": "carphone", "face_laugh": "woman", "face_talk": "carphone"}
    # stored peaks (stats["deformation_peak"]) are in face sizes, as the paired mode reads them: the
    # held-out quantile in face sizes too, so this column is the version 3/4 form of the unpaired
    # score without the person (the point-unit form would need the clips' landmarks, not stored)
    held_q99 = {}
    for who in set(person.values()):
        sources = default_sources(exclude=(who,))
        held_q99[who] = build_from_features({n: (expression_features(pts, fps), fps) for n, (pts, fps, _) in sources.items()},
                                            f"without {who}")["features"]["deformation"]["q99"]
    out = {}
    print(f"\nEXPRESSION paired mode on {root}: each checkpoint against {final} on the prompts tagged expression {expression_prompts}")
    print("  checkpoint             factor   per clip: paired ratio / unpaired (bundled) / unpaired v3 form (without the person)    "
          "found by n clips (share of subsets): paired | unpaired bundled | unpaired v3 form without the person (above 1.25)")
    for checkpoint in view.order[:-1]:
        truth = json.loads((Path(root) / "_truth" / f"{checkpoint}.json").read_text())
        if truth[expression_prompts[0]].get("still"):
            continue
        clips = [p for p in expression_prompts if (checkpoint, p) in results.index and (final, p) in results.index]
        ratio = {p: 2.0 ** ExpressionDetector.paired_score(results.loc[(checkpoint, p), "stats"], results.loc[(final, p), "stats"]) for p in clips}
        score = {p: float(results.loc[(checkpoint, p), "score"]) for p in clips}
        loio = {p: results.loc[(checkpoint, p), "stats"]["deformation_peak"] / held_q99[person[p]] for p in clips}
        found = {}
        for n in range(1, len(clips) + 1):
            subsets = list(itertools.combinations(clips, n))
            found[n] = (float(np.mean([np.exp(np.mean(np.log([ratio[p] for p in sub]))) > PAIRED_THRESHOLD for sub in subsets])),
                        float(np.mean([np.mean([score[p] for p in sub]) > threshold for sub in subsets])),
                        float(np.mean([np.mean([loio[p] for p in sub]) > 1.25 for sub in subsets])))  # v3's threshold
        factor = truth[expression_prompts[0]]["expression_factor"]
        out[checkpoint] = {"factor": factor, "ratio": ratio, "score": score, "loio": loio, "found": found}
        print(f"  {checkpoint:22s} {factor:5.2f}   " + ", ".join(f"{ratio[p]:.2f}/{score[p]:.2f}/{loio[p]:.2f}" for p in clips)
              + "   " + "  ".join(f"n={n}: {a:.2f} | {b:.2f} | {c:.2f}" for n, (a, b, c) in found.items()))
        # the regression test, as if the final checkpoint came first: paired on shared seeds,
        # and two-sample (the same clips with their pairing forgotten)
        part = view.results[view.results["checkpoint"].isin([final, checkpoint]) & view.results["prompt_id"].isin(clips)]
        paired_test = find_regressions(part, [final, checkpoint], {"expression": True}, paired_scores={"expression": ExpressionDetector.paired_score})
        unpaired_test = find_regressions(part.assign(prompt_id=part["checkpoint"] + part["prompt_id"]), [final, checkpoint], {"expression": True})
        out[checkpoint]["regression"] = (bool(paired_test), bool(unpaired_test))
        print(f"  {'':22s}         regression test against {final} on these {len(clips)} clips: paired {'found' if paired_test else 'not found'}"
              f"{f' ({paired_test[0].ci_low:+.2f}..{paired_test[0].ci_high:+.2f})' if paired_test else ''}, "
              f"unpaired {'found' if unpaired_test else 'not found'}")
    final_scores = [f"{float(results.loc[(final, p), 'score']):.2f}/{results.loc[(final, p), 'stats']['deformation_peak'] / held_q99[person[p]]:.2f}"
                    for p in expression_prompts if (final, p) in results.index]
    print(f"  {final:22s} 1.00   unpaired scores (bundled/without the person) {', '.join(final_scores)} (flagged above {threshold})")
    print("  consecutive checkpoints, as `evalkit run` prints them (log2 paired ratio, every shared face clip):")
    for row in view.paired.to_dict("records"):
        print(f"    {row['checkpoint']} vs {row['reference']}: {row['mean']:+.2f} [{row['ci_low']:+.2f},{row['ci_high']:+.2f}] over {row['paired']} clips")
    out["consecutive"] = view.paired
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-blink", action="store_true")
    parser.add_argument("--skip-expression", action="store_true")
    parser.add_argument("--landmarks", choices=["mediapipe", "litert", "torch"], default="mediapipe",
                        help="face mesh backend for every clip")
    parser.add_argument("--demo-root", type=Path, default=None,
                        help="also show the expression paired mode on this demo root (after `evalkit run` on it)")
    args = parser.parse_args(argv)
    faces.LANDMARK_BACKEND = args.landmarks
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    if not args.skip_blink:
        evaluate_blinks()
    if not args.skip_expression:
        evaluate_expression()
    if args.demo_root is not None:
        evaluate_paired_demo(args.demo_root)
    print(f"\n(done in {time.perf_counter() - start:.0f} s; face meshes cached under {faces.CACHE})")


if __name__ == "__main__":
    main()

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
Expression: carphone's two 2-s halves warped by factors 1, 1.5, 2, 3 and the astronaut
animated by them (16 clips), the AUC of exaggerated (factor > 1) vs real (factor 1) pooled over
all of them and the Spearman correlation of score with factor, with the bundled reference
(in-sample) and two held-out ones: leave-one-identity-out and leave-one-motion-out (each half
against the other half's real clips). 16 real variants (``faces.real_variants``: carphone
pristine and distorted at several sizes, frame rates and codecs) give the false-positive rate.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from scipy.stats import spearmanr

from evalkit._types import FaceTrack, Video, VideoInputs
from evalkit.datasets import faces
from evalkit.detectors.blink import BlinkDetector, pooled_blink_rate
from evalkit.datasets.expression_reference import build_from_features
from evalkit.detectors.expression import ExpressionDetector, exaggeration, expression_features, reference_scale

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

    low = evaluate_low_fps(detector)
    pooled_real = pooled_blink_rate([stats_by_clip["loop16s"], stats_by_clip["loop24s"]])
    pooled_free = pooled_blink_rate([stats_by_clip["loop16s_blink_free"], stats_by_clip["loop24s_blink_free"], stats_by_clip["carphone_blink_free"]])
    for label, pooled in (("real loops", pooled_real), ("blink-free clips", pooled_free)):
        ci = pooled["ci"]
        print(f"       pooled {label:17s}: {pooled['blinks_per_minute']:.1f} blinks/face-min, 95% CI {ci[0]:.1f}-{ci[1]:.1f}, {pooled['verdict']}")
    return {"exact": exact, "long_flags_right": long_right, "low_fps": low}


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


def auc(negatives: list[float], positives: list[float]) -> float:
    neg, pos = np.asarray(negatives)[None], np.asarray(positives)[:, None]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def _scores(features: dict, scale: np.ndarray, names) -> dict:
    return {n: exaggeration(features[n][0], scale)[1] for n in names}


def _ranking(scores: dict, factor: dict) -> tuple[float, float]:
    names = [n for n in scores if np.isfinite(scores[n])]
    a = auc([scores[n] for n in names if factor[n] == 1.0], [scores[n] for n in names if factor[n] > 1.0])
    return a, float(spearmanr([factor[n] for n in names], [scores[n] for n in names]).statistic)


def evaluate_expression() -> dict:
    """Warped clips (16) and real variants (19), scored with the bundled reference and with
    held-out references: leave-one-identity-out (carphone clips against the astronaut's real
    motion, the astronaut's clips against carphone) and leave-one-motion-out (each 2-s half's
    clips against the other half's real clips, both identities)."""
    detector = ExpressionDetector()
    threshold = detector.config["threshold"]
    clips = faces.expression_clips()
    reals = faces.real_variants()
    features = {}
    for clip in clips + reals:
        track = faces.cached_face_track(clip["frames"], clip["name"].replace("@", "_"))
        features[clip["name"]] = (expression_features(track.pixels(), clip["fps"]), clip["fps"])
    factor = {c["name"]: c["factor"] for c in clips}
    warped, real = [c["name"] for c in clips], [c["name"] for c in reals]

    def reference(names: list[str]) -> np.ndarray:
        return reference_scale(build_from_features({n: features[n] for n in names}, "held out"))

    bundled = _scores(features, detector._scale, warped + real)
    by_identity = {}
    by_identity.update(_scores(features, reference(["astronaut0_x1.0", "astronaut1_x1.0"]), [n for n in warped if n.startswith("carphone")] + real))
    by_identity.update(_scores(features, reference(["carphone_pristine"]), [n for n in warped if n.startswith("astronaut")]))
    by_motion = {}
    for half in (0, 1):
        other = reference([f"carphone{1 - half}_x1.0", f"astronaut{1 - half}_x1.0"])
        by_motion.update(_scores(features, other, [n for n in warped if n[-6] == str(half)]))

    print("\nEXPRESSION  clip                 factor  bundled  held-out identity  held-out motion")
    for n in warped:
        print(f"            {n:20s} {factor[n]:6.1f}  {bundled[n]:7.2f}  {by_identity[n]:17.2f}  {by_motion[n]:15.2f}")
    print("            real clip                       bundled  held-out identity  (flagged at %.2f)" % threshold)
    for n in real:
        print(f"            {n:30s}  {bundled[n]:7.2f}  {by_identity[n]:17.2f}  {'FLAGGED' if bundled[n] > threshold else ''}")
    out = {}
    for label, s in (("bundled (in-sample)", bundled), ("held-out identity", by_identity), ("held-out motion", by_motion)):
        a, rho = _ranking({n: s[n] for n in warped}, factor)
        fpr = float(np.mean([s[n] > threshold for n in real])) if all(n in s for n in real) else float("nan")
        flags = {f: float(np.mean([s[n] > threshold for n in warped if factor[n] == f])) for f in faces.FACTORS}
        out[label] = {"auc": a, "spearman": rho, "real_fpr": fpr, "flagged_by_factor": flags}
        print(f"            {label:20s}: AUC {a:.3f}, Spearman {rho:.3f}, real clips flagged {fpr:.2f}, flagged by factor "
              + ", ".join(f"{k:g}: {v:.2f}" for k, v in flags.items()))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-blink", action="store_true")
    parser.add_argument("--skip-expression", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    if not args.skip_blink:
        evaluate_blinks()
    if not args.skip_expression:
        evaluate_expression()
    print(f"\n(done in {time.perf_counter() - start:.0f} s; face meshes cached under {faces.CACHE})")


if __name__ == "__main__":
    main()

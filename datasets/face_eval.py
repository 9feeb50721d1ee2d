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
animated by them (16 clips), the AUC of exaggerated (factor > 1) vs real (factor 1) and the
Spearman correlation of score with factor, with the bundled reference (built from all of
carphone_pristine, so in-sample for the carphone clips) and with a cross-half reference
(built from the other half only: held out). carphone_distorted (real, heavily compressed) is
scored as one more real clip.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from scipy.stats import spearmanr

from evalkit._types import FaceTrack, Video, VideoInputs
from evalkit.datasets import faces
from evalkit.datasets.footage import load_clip
from evalkit.detectors.blink import BlinkDetector, pooled_blink_rate
from evalkit.detectors.expression import ExpressionDetector, exaggeration, expression_features

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


def evaluate_expression() -> dict:
    clips = faces.expression_clips()
    detector = ExpressionDetector()
    features, scores = {}, {}
    for clip in clips:
        track = faces.cached_face_track(clip["frames"], clip["name"])
        result = detector.score(inputs_for(clip["frames"], clip["fps"], track, clip["name"]))
        scores[clip["name"]] = result.score
        features[clip["name"]] = expression_features(track.pixels(), clip["fps"])
    factor = {c["name"]: c["factor"] for c in clips}
    fps = clips[0]["fps"]

    # Held out: a reference from one half of carphone scores the clips made from the other half.
    frames, _, points = faces.carphone()
    half = len(frames) // 2
    held_out = {}
    for k, part in enumerate((points[:half], points[half:])):
        scale = np.nanquantile(expression_features(part[:, None], fps).reshape(-1, 7), 0.99, axis=0)
        for name, f in features.items():
            if name.endswith(f"{1 - k}_x{factor[name]}"):
                held_out[name] = float(np.nanmax(exaggeration(f, scale, fps)))

    distorted, dfps = load_clip("carphone_distorted.mp4")
    dres = detector.score(inputs_for(distorted, dfps, faces.cached_face_track(distorted, "carphone_distorted"), "distorted"))

    print("\nEXPRESSION  clip              factor  score(bundled ref)  score(cross-half ref)  flagged")
    for name in scores:
        print(f"            {name:17s} {factor[name]:6.1f}  {scores[name]:18.2f}  {held_out[name]:21.2f}  {scores[name] > detector.config['threshold']}")
    print(f"            carphone_distorted (real, heavy compression): score {dres.score:.2f}, flagged {dres.flagged}")
    out = {}
    for label, s in (("bundled reference (in-sample for carphone)", scores), ("cross-half reference (held out)", held_out)):
        names = [n for n in s if np.isfinite(s[n])]
        a = auc([s[n] for n in names if factor[n] == 1.0], [s[n] for n in names if factor[n] > 1.0])
        rho = float(spearmanr([factor[n] for n in names], [s[n] for n in names]).statistic)
        per_source = {
            src: float(spearmanr([factor[n] for n in names if n.startswith(src)], [s[n] for n in names if n.startswith(src)]).statistic)
            for src in ("carphone", "astronaut")
        }
        out[label] = {"auc": a, "spearman": rho, "spearman_by_source": per_source}
        print(f"            {label}: AUC {a:.3f}, Spearman(score, factor) {rho:.3f}  (by source: "
              + ", ".join(f"{k} {v:.3f}" for k, v in per_source.items()) + ")")
    for half in (0, 1):  # each held-out reference on its own scale
        names = [n for n in held_out if f"{half}_x" in n]
        a = auc([held_out[n] for n in names if factor[n] == 1.0], [held_out[n] for n in names if factor[n] > 1.0])
        out[f"held_out_half{half}_auc"] = a
        print(f"            clips of half {half} scored with a reference from half {1 - half} only: AUC {a:.3f}")
    threshold = detector.config["threshold"]
    flags = {f: np.mean([scores[n] > threshold for n in scores if factor[n] == f]) for f in faces.FACTORS}
    print("            flagged share by factor at threshold %.2f: %s" % (threshold, {k: round(float(v), 2) for k, v in flags.items()}))
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

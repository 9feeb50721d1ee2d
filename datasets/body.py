"""A dancing "puppet" of a real person with body breakage injected at known frames.

The puppet is a piecewise-affine warp of scikit-image's astronaut photo (a real upper body):
a triangle mesh over the photo whose arm vertices follow a driven skeleton (each bone moves
rigidly, the joints bend the mesh), while the head and torso sway, bob and tilt to a beat.
Breakage, with its frame range and body part kept as ground truth:

- ``stretch``: a forearm or upper arm grows by ``factor`` (>= 1.4) over a range of frames;
- ``detach``: a forearm comes off at the elbow and floats away from it by about half its
  length (a visible gap: the mesh between upper arm and forearm is cut and the background
  shows through, rather than the skin stretching across like a bent elbow);
- ``teleport``: a whole arm jumps to another pose in one frame and stays there;
- ``swap``: left and right exchange (the body is mirrored about its midline) for a while.

Ground-truth keypoints (pixels, MediaPipe's indices 0, 11-16) come with every clip so the
pose model's own tracking error on the puppet can be measured (``tracking_error``).
Rig points were placed on the photo by running MediaPipe pose once on it (static mode) and
rounding; the limb half-widths were read off the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from evalkit.datasets.footage import DemoClip, astronaut

BREAK_KINDS = ("stretch", "detach", "teleport", "swap")
KEYPOINTS = (0, 11, 12, 13, 14, 15, 16)  # nose, shoulders, elbows, wrists (MediaPipe indices)
# Photo coordinates (512 px) of the rig; "left"/"right" are the person's (MediaPipe's).
_NOSE = (225.0, 128.0)
_SHOULDERS = {"left": (305.0, 256.0), "right": (115.0, 243.0)}
_SLEEVE = ((105.0, 265.0), (72.0, 420.0))  # a straight run of the real right sleeve
_CANVAS = (1000, 800)  # rest canvas, photo pixels
_PHOTO_AT = (244, 30)
_CUT_ROW = 340  # photo rows kept above the helmet; the trunk below is this band stretched
# Rest upper-arm and forearm lengths and half-widths, photo pixels: human proportions for this
# head and torso. Version 1 of the rig (190, 165; 30, 25) had arms ~1.45x too long for the body:
# MediaPipe read them at 65-75 % of their length (wrists 0.5-0.6 shoulder widths short on clean
# dances), so a clean puppet was itself "stretched" and a further stretch did not show.
_BONES = (130.0, 115.0)
_HALF_WIDTH = (38.0, 32.0)
_REST_OUT = 0.45  # rest angle of the arms from vertical, outward, radians
_OUTWARD = {"left": -1.0, "right": 1.0}  # sign of an outward raise in image angle (y down)


@dataclass
class PuppetRig:
    """A meshed photo. ``points`` ``(N, 2)`` rest positions (canvas pixels); ``group`` ``(N,)``
    names what moves each point; ``triangles`` ``(M, 3)`` in draw order (arms last, on top)."""

    image: np.ndarray
    points: np.ndarray
    group: np.ndarray
    triangles: np.ndarray
    joints: dict[str, np.ndarray]
    plate: np.ndarray  # the same frame with no arms: what shows through a gap

    def forearm(self, side: str) -> np.ndarray:
        """``(M,)`` bool: the triangles that carry ``side``'s forearm (and hand)."""
        return (self.group[self.triangles] == f"{side}_fore").any(-1)


def _paste_limb(canvas: np.ndarray, photo: np.ndarray, src: tuple, a: np.ndarray, b: np.ndarray, hw: float) -> None:
    """Paint the photo's strip ``src`` (two points) as a limb from ``a`` to ``b`` of half-width ``hw``."""
    s0, s1 = (np.asarray(p, np.float32) for p in src)
    ds = (s1 - s0) / np.linalg.norm(s1 - s0)
    dd = (b - a) / np.linalg.norm(b - a)
    ns, nd = np.array([-ds[1], ds[0]]) * hw, np.array([-dd[1], dd[0]]) * hw
    m = cv2.getAffineTransform(np.float32([s0 + ns, s0 - ns, s1 + ns]), np.float32([a + nd, a - nd, b + nd]))
    warped = cv2.warpAffine(photo, m, canvas.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round([a + nd, b + nd, b - nd, a - nd]).astype(np.int32), 1)
    for p in (a, b):
        cv2.circle(mask, tuple(int(v) for v in np.round(p)), int(hw), 1, -1)
    canvas[mask > 0] = warped[mask > 0]


def _rest_pose() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The astronaut re-posed with arms held out from the body (photo-pixel canvas), the same
    canvas without arms, and the joints."""
    photo = astronaut()
    w, h = _CANVAS
    ox, oy = _PHOTO_AT
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    canvas = (np.array([178, 182, 190], np.float32) * (1 - 0.25 * yy) * np.ones((h, w, 3), np.float32)).astype(np.uint8)
    canvas[oy : oy + _CUT_ROW, ox : ox + 512] = photo[:_CUT_ROW]
    canvas[oy + 270 : oy + _CUT_ROW, ox : ox + 120] = canvas[oy + 270 : oy + _CUT_ROW, :1]  # the real arms'
    canvas[oy + 270 : oy + _CUT_ROW, ox + 330 : ox + 512] = canvas[oy + 270 : oy + _CUT_ROW, :1]  # stubs go
    band = photo[_CUT_ROW - 16 : _CUT_ROW, 130:330]
    canvas[oy + _CUT_ROW :, ox + 130 : ox + 330] = cv2.resize(band, (200, h - oy - _CUT_ROW), interpolation=cv2.INTER_LINEAR)
    plate = canvas.copy()
    skin = photo[140:165, 190:215].reshape(-1, 3).mean(0)
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    joints: dict[str, np.ndarray] = {"nose": np.array(_NOSE, np.float32) + (ox, oy)}
    for side, shoulder in _SHOULDERS.items():
        s = np.array(shoulder, np.float32) + (ox, oy)
        out = _OUTWARD[side] * -1.0  # image x direction of "outward" for this side
        d1 = np.array([out * np.sin(_REST_OUT), np.cos(_REST_OUT)], np.float32)
        d2 = np.array([out * np.sin(_REST_OUT * 0.6), np.cos(_REST_OUT * 0.6)], np.float32)
        e = s + _BONES[0] * d1
        wr = e + _BONES[1] * d2
        src, img = (_SLEEVE, photo) if side == "right" else (tuple((511.0 - x, y) for x, y in _SLEEVE), mirrored)
        _paste_limb(canvas, img, src, s, e, _HALF_WIDTH[0])
        _paste_limb(canvas, img, src, e, wr, _HALF_WIDTH[1])
        centre = wr + 22.0 * d2
        axes = (16, 26)
        angle = float(np.degrees(np.arctan2(d2[1], d2[0]))) - 90.0
        cv2.ellipse(canvas, tuple(int(v) for v in centre), axes, angle, 0, 360, tuple(float(c) * 0.8 for c in skin), -1)
        cv2.ellipse(canvas, tuple(int(v) for v in centre), (axes[0] - 3, axes[1] - 3), angle, 0, 360, tuple(float(c) for c in skin), -1)
        joints.update({f"{side}_shoulder": s, f"{side}_elbow": e, f"{side}_wrist": wr, f"{side}_tip": wr + 50.0 * d2})
    return canvas, plate, joints


def astronaut_rig(size: tuple[int, int] = (336, 272)) -> PuppetRig:
    """The astronaut, re-posed and meshed, for a ``(W, H)`` frame."""
    rest, plate, joints = _rest_pose()
    w, h = size
    scale = min(w / _CANVAS[0], h / _CANVAS[1])
    pad = (np.array([w, h], np.float32) - np.array(_CANVAS, np.float32) * scale) / 2.0
    px, py = int(round(pad[0])), int(round(pad[1]))

    def fit(canvas: np.ndarray) -> np.ndarray:
        out = np.full((h, w, 3), canvas[0, 0], np.uint8)
        small = cv2.resize(canvas, (int(round(_CANVAS[0] * scale)), int(round(_CANVAS[1] * scale))), interpolation=cv2.INTER_AREA)
        out[py : py + small.shape[0], px : px + small.shape[1]] = small[: h - py, : w - px]
        return out

    image = fit(rest)
    to_frame = lambda p: np.asarray(p, np.float32) * scale + pad  # noqa: E731
    joints = {k: to_frame(v) for k, v in joints.items()}
    pts: list[np.ndarray] = []
    groups: list[str] = []

    def add(p: np.ndarray, g: str) -> None:
        pts.append(np.asarray(p, np.float32))
        groups.append(g)

    for x in np.linspace(0, w - 1, 7):  # fixed frame border
        add((x, 0), "fixed")
        add((x, h - 1), "fixed")
    for y in np.linspace(0, h - 1, 5)[1:-1]:
        add((0, y), "fixed")
        add((w - 1, y), "fixed")
    ox, oy = _PHOTO_AT
    body = [(225, 10), (150, 90), (300, 90), (170, 200), (280, 200), (225, 300), (125, 340), (330, 340), (225, 560), (130, 760), (330, 760)]
    for p in body:
        add(to_frame(np.array(p, np.float32) + (ox, oy)), "body")
    add(joints["nose"], "body")
    for side in ("left", "right"):
        s, e, wr, tip = (joints[f"{side}_{k}"] for k in ("shoulder", "elbow", "wrist", "tip"))
        for a, b, hw, g_a, g_b in ((s, e, _HALF_WIDTH[0], "body", f"{side}_upper"), (e, tip, _HALF_WIDTH[1], f"{side}_upper", f"{side}_fore")):
            d = (b - a) / np.linalg.norm(b - a)
            n = np.array([-d[1], d[0]], np.float32) * (hw + 6.0) * scale
            for p, g in ((a, g_a), (b, g_b)):
                add(p + n, g)
                add(p - n, g)
        add(s, "body")
        add(e, f"{side}_upper")
        add(e + 0.2 * (wr - e), f"{side}_fore")
        add(wr, f"{side}_fore")
    points = np.stack(pts)
    group = np.array(groups)
    tri = Delaunay(points).simplices
    on_arm = np.array([all(group[i] not in ("fixed", "body") for i in t) for t in tri])
    triangles = np.concatenate([tri[~on_arm], tri[on_arm]]).astype(np.int32)
    return PuppetRig(image=image, points=points, group=group, triangles=triangles, joints=joints, plate=fit(plate))


@dataclass
class Breakage:
    """One injected defect: ``kind`` of ``BREAK_KINDS`` on ``side`` arm, frames ``start..end``."""

    kind: str
    side: str
    start: int
    end: int
    part: str = "arm"
    factor: float = 1.6
    offset: tuple[float, float] = (0.0, 0.0)  # detach: (away from the elbow, sideways), forearm lengths
    angles: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        body_part = "body" if self.kind == "swap" else f"{self.side}_{self.part}"
        out = {"kind": self.kind, "part": body_part, "start": int(self.start), "end": int(self.end)}
        if self.kind == "stretch":
            out["factor"] = float(self.factor)
        elif self.kind == "detach":
            out["offset_forearms"] = [float(v) for v in self.offset]
        elif self.kind == "teleport":
            out["angles_rad"] = [float(v) for v in self.angles]
        return out


@dataclass
class Dance:
    """Beat-driven joint angles. ``arm_angles(t)`` -> ``(T, 2 sides, 2)`` radians (upper-arm raise,
    elbow bend); ``body(t)`` -> ``(T, 4)`` (dx, dy as a share of height, tilt rad, scale)."""

    beat_hz: float
    raise_amp: np.ndarray
    raise_base: np.ndarray
    bend_amp: np.ndarray
    phase: np.ndarray
    sway: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Dance:
        return cls(
            beat_hz=float(rng.uniform(0.5, 1.1)),
            raise_amp=rng.uniform(0.35, 0.8, 2),
            raise_base=rng.uniform(0.3, 0.8, 2),
            bend_amp=rng.uniform(0.2, 0.7, 2),
            phase=rng.uniform(0, 2 * np.pi, 4),
            sway=float(rng.uniform(0.01, 0.035)),
        )

    def arm_angles(self, t: np.ndarray) -> np.ndarray:
        w = 2 * np.pi * self.beat_hz * t[:, None]
        raise_ = self.raise_base + self.raise_amp * 0.5 * (1 + np.sin(w + self.phase[:2]))
        bend = self.bend_amp * np.sin(w * 2 + self.phase[2:])
        return np.stack([raise_, bend], axis=-1).astype(np.float32)

    def body(self, t: np.ndarray) -> np.ndarray:
        w = 2 * np.pi * self.beat_hz * t
        return np.stack([self.sway * np.sin(w), 0.5 * self.sway * np.abs(np.sin(w)), 0.04 * np.sin(w + 1.0),
                         1.0 + 0.02 * np.sin(0.5 * w)], axis=-1).astype(np.float32)


def _rotate(p: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    d = p - centre
    return centre + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)


def pose_points(rig: PuppetRig, arm: np.ndarray, body: np.ndarray, breaks: list[Breakage], frame: int) -> np.ndarray:
    """Destination positions ``(N, 2)`` of the mesh at one frame (``arm`` ``(2, 2)``, ``body`` ``(4,)``)."""
    p = rig.points.copy()
    dst = p.copy()
    active = [b for b in breaks if b.start <= frame <= b.end]
    for k, side in enumerate(("left", "right")):
        raise_, bend = float(arm[k, 0]), float(arm[k, 1])
        for b in active:
            if b.kind == "teleport" and b.side == side:
                raise_, bend = raise_ + b.angles[0], bend + b.angles[1]
        shoulder, elbow = rig.joints[f"{side}_shoulder"], rig.joints[f"{side}_elbow"]
        up, fore = rig.group == f"{side}_upper", rig.group == f"{side}_fore"
        a1 = _OUTWARD[side] * raise_
        dst[up | fore] = _rotate(p[up | fore], shoulder, a1)
        new_elbow = _rotate(elbow, shoulder, a1)
        dst[fore] = _rotate(dst[fore], new_elbow, _OUTWARD[side] * bend)
        wrist = _rotate(_rotate(rig.joints[f"{side}_wrist"], shoulder, a1), new_elbow, _OUTWARD[side] * bend)
        forearm = wrist - new_elbow
        for b in active:
            if b.side != side:
                continue
            if b.kind == "stretch":
                if b.part == "forearm":
                    root, direction, sel = new_elbow, forearm, fore
                else:
                    root, direction, sel = shoulder, new_elbow - shoulder, up | fore
                dst[sel] += (b.factor - 1.0) * _along(dst[sel], root, direction) * direction
            elif b.kind == "detach":  # moves the keypoints; detached_frame draws the cut
                dst[fore] += b.offset[0] * forearm + b.offset[1] * np.array([-forearm[1], forearm[0]], np.float32)
    dx, dy, tilt, scale = (float(v) for v in body)
    h = rig.image.shape[0]
    moving = rig.group != "fixed"
    pivot = np.array([rig.image.shape[1] / 2.0, h * 0.95], np.float32)
    dst[moving] = _rotate((dst[moving] - pivot) * scale + pivot, pivot, tilt) + np.array([dx, -dy]) * h
    if any(b.kind == "swap" for b in active):
        mid = 0.5 * (dst[rig.group == "body"][:, 0].min() + dst[rig.group == "body"][:, 0].max())
        dst[moving, 0] = 2 * mid - dst[moving, 0]
    return dst


def _along(points: np.ndarray, root: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Projection of ``points`` on the bone, as a share of its length, ``(N, 1)`` in ``[0, 1]``."""
    t = ((points - root) @ direction) / max(float(direction @ direction), 1e-6)
    return np.clip(t, 0.0, 1.0)[:, None]


def warp_frame(rig: PuppetRig, dst: np.ndarray, src: np.ndarray | None = None, cut: np.ndarray | None = None) -> np.ndarray:
    """Render the mesh: each destination triangle samples its source triangle (affine), arms on top.
    Triangles in ``cut`` (``(M,)`` bool) are holes: the arm-less plate shows through, under the arms."""
    src = rig.points if src is None else src
    cut = np.zeros(len(rig.triangles), bool) if cut is None else cut
    h, w = rig.image.shape[:2]
    tri_dst = dst[rig.triangles]  # (M, 3, 2)
    tri_src = src[rig.triangles]
    ones = np.ones((*tri_dst.shape[:2], 1), np.float32)
    a = np.concatenate([tri_dst, ones], -1)  # (M, 3, 3)
    det = np.linalg.det(a)
    ok = np.abs(det) > 1e-3
    affine = np.zeros((len(a), 3, 2), np.float32)
    affine[ok] = np.linalg.solve(a[ok], tri_src[ok])  # [x y 1] @ affine -> source xy
    index = np.full((h, w), -1, np.int32)
    on_arm = ~np.isin(rig.group[rig.triangles], ("fixed", "body")).any(-1)
    order = np.argsort(np.where(cut, 1, np.where(on_arm, 2, 0)), kind="stable")  # body, holes, arms
    for m in order[ok[order]]:
        cv2.fillConvexPoly(index, np.round(tri_dst[m]).astype(np.int32), -2 if cut[m] else int(m))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sel = np.maximum(index, 0)
    mapx = xs * affine[sel, 0, 0] + ys * affine[sel, 1, 0] + affine[sel, 2, 0]
    mapy = xs * affine[sel, 0, 1] + ys * affine[sel, 1, 1] + affine[sel, 2, 1]
    mapx = np.where(index >= 0, mapx, xs)
    mapy = np.where(index >= 0, mapy, ys)
    frame = cv2.remap(rig.image, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    frame[index == -2] = rig.plate[index == -2]
    return frame


def detached_frame(rig: PuppetRig, dst: np.ndarray, side: str, shift: np.ndarray, cut_at: float = 0.15) -> np.ndarray:
    """Render ``dst`` (the arm attached) with ``side``'s forearm cut off ``cut_at`` of the way
    from the elbow and moved by ``shift`` pixels ``(2,)``: a visible gap where it was joined."""
    h, w = rig.image.shape[:2]
    whole = warp_frame(rig, dst)
    out = warp_frame(rig, dst, cut=rig.forearm(side))
    names = ("elbow", "wrist")
    elbow, wrist = (dst[int(np.argmin(np.linalg.norm(rig.points - rig.joints[f"{side}_{k}"], axis=1)))] for k in names)
    along = wrist - elbow
    normal = np.array([-along[1], along[0]]) / max(float(np.linalg.norm(along)), 1e-6) * float(np.linalg.norm(along))
    root = elbow + cut_at * along
    quad = np.array([root + normal, root - normal, wrist + 1.2 * along - normal, wrist + 1.2 * along + normal])
    region = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(region, np.round(quad).astype(np.int32), 1)
    arm = np.zeros((h, w), np.uint8)  # pixels the arm's own triangles cover, not the background
    for tri in dst[rig.triangles[rig.forearm(side)]]:
        cv2.fillConvexPoly(arm, np.round(tri).astype(np.int32), 1)
    move = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    mask = cv2.warpAffine(region & arm, move, (w, h), flags=cv2.INTER_NEAREST) > 0
    moved = cv2.warpAffine(whole, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[mask] = moved[mask]
    return out


def sample_breakage(kind: str, num_frames: int, fps: float, rng: np.random.Generator, severity: float = 1.0) -> Breakage:
    """A defect of ``kind`` placed in the middle part of the clip, strength scaled by ``severity``."""
    side = str(rng.choice(["left", "right"]))
    dur = int(round(rng.uniform(0.6, 1.2) * fps))
    start = int(rng.integers(int(0.25 * num_frames), max(int(0.25 * num_frames) + 1, num_frames - dur - int(0.15 * num_frames))))
    end = min(num_frames - 1, start + dur - 1)
    if kind == "stretch":
        return Breakage(kind, side, start, end, part=str(rng.choice(["forearm", "upper_arm"])),
                        factor=1.0 + severity * float(rng.uniform(0.45, 0.8)))
    if kind == "detach":
        # away from the elbow, so the cut shows (pushed back onto the upper arm it reads as a bend)
        away, sideways = rng.uniform(0.35, 0.6), rng.uniform(-0.3, 0.3)
        return Breakage(kind, side, start, end, part="forearm", offset=(severity * away, severity * sideways))
    if kind == "teleport":
        jump = severity * rng.uniform(0.9, 1.4) * rng.choice([-1.0, 1.0])
        return Breakage(kind, side, start, num_frames - 1, angles=(float(jump), float(rng.uniform(-0.6, 0.6) * severity)))
    if kind == "swap":
        return Breakage(kind, side, start, end, part="body")
    raise ValueError(f"sample_breakage: expected kind in {BREAK_KINDS}, got {kind!r}")


def make_clip(
    rng: np.random.Generator,
    fps: float = 24.0,
    seconds: float = 4.0,
    kind: str | None = None,
    severity: float = 1.0,
    size: tuple[int, int] = (336, 272),
    rig: PuppetRig | None = None,
) -> tuple[np.ndarray, dict]:
    """One dancing-puppet clip -> ``(frames (T, H, W, 3) uint8, truth)``; ``kind=None`` is clean.

    ``truth`` holds ``breaks`` (list of dicts with kind, part, start, end), ``keypoints``
    ``(T, 7, 2)`` pixel positions of ``KEYPOINTS`` and ``fps``.
    """
    rig = rig or astronaut_rig(size)
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    dance = Dance.sample(rng)
    arms, body = dance.arm_angles(t), dance.body(t)
    breaks = [sample_breakage(kind, n, fps, rng, severity)] if kind and severity > 0 else []
    names = ["nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
    key_idx = [int(np.argmin(np.linalg.norm(rig.points - rig.joints[k], axis=1))) for k in names]
    frames = np.empty((n, *rig.image.shape), np.uint8)
    keypoints = np.empty((n, len(names), 2), np.float32)
    for i in range(n):  # rendering is per frame by nature; each frame is one remap
        dst = pose_points(rig, arms[i], body[i], breaks, i)
        detached = [b for b in breaks if b.kind == "detach" and b.start <= i <= b.end]
        if detached:
            attached = pose_points(rig, arms[i], body[i], [b for b in breaks if b.kind != "detach"], i)
            wrist = int(np.argmin(np.linalg.norm(rig.points - rig.joints[f"{detached[0].side}_wrist"], axis=1)))
            frames[i] = detached_frame(rig, attached, detached[0].side, dst[wrist] - attached[wrist])
        else:
            frames[i] = warp_frame(rig, dst)
        keypoints[i] = dst[key_idx]
    return frames, {"breaks": [b.to_dict() for b in breaks], "keypoints": keypoints, "fps": fps}


def tracking_error(landmarks: np.ndarray, truth: dict, image_size: tuple[int, int]) -> np.ndarray:
    """Per-keypoint pose error in shoulder widths, ``(T, 7)``, of MediaPipe ``(T, 33, 4)`` vs truth."""
    w, h = image_size
    pred = landmarks[:, list(KEYPOINTS), :2] * np.array([w, h], np.float32)
    gt = truth["keypoints"]
    width = np.linalg.norm(gt[:, 1] - gt[:, 2], axis=-1, keepdims=True)
    return np.linalg.norm(pred - gt, axis=-1) / width


def demo_clips(severity: float, rng: np.random.Generator) -> list[DemoClip]:
    """Three 3.5-second dancing-puppet clips (24 fps, 336x272): two broken with strength following
    ``severity`` in [0, 1] (none at 0), one clean."""
    rig = astronaut_rig()
    out = []
    kinds = list(rng.permutation(BREAK_KINDS))[:2] + [None]
    for i, kind in enumerate(kinds):
        frames, truth = make_clip(rng, 24.0, 3.5, kind if severity > 0 else None, severity, rig=rig)
        truth.pop("keypoints")
        truth["severity"] = float(severity)
        out.append(DemoClip(
            prompt_id=f"astronaut_dance_{i}",
            prompt="an astronaut dancing, waving her arms to the beat",
            tags=["motion", "dance"],
            frames=frames,
            fps=24.0,
            truth=truth,
        ))
    return out

"""Face-mesh geometry shared by the face detectors (``blink``, ``expression``) and the face
generators in ``datasets/faces.py``.

Landmarks follow :class:`evalkit.FaceTrack`: MediaPipe's 478-point mesh (468 + 10 iris points).
"Right"/"left" are the subject's. Every function takes pixel coordinates (``FaceTrack.pixels()``,
so that a non-square frame does not squash distances) of shape ``(..., 478, 3)`` and works on any
leading shape, e.g. ``(T, F)``; NaN landmarks (no face) give NaN outputs.
"""

from __future__ import annotations

import warnings

import numpy as np

from evalkit._types import FaceTrack
from evalkit.errors import ShapeError
from evalkit.detectors._events import runs  # noqa: F401  (re-exported for blink/expression)

NUM_POINTS = 478

# Eye-aspect-ratio points p1..p6 (Soukupova & Cech 2016): corners p1, p4; upper lid p2, p3;
# lower lid p6, p5 (p2-p6 and p3-p5 face each other).
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
RIGHT_UPPER_LID, RIGHT_LOWER_LID = 159, 145
LEFT_UPPER_LID, LEFT_LOWER_LID = 386, 374
RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS = (33, 133), (362, 263)
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (300, 293, 334, 296, 336)
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
MOUTH_CORNERS = (61, 291)
FOREHEAD, CHIN = 10, 152
# Points that expressions barely move (eye corners, nose ridge and base): they define face size.
RIGID = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327)


def check_landmarks(landmarks: np.ndarray, what: str = "face landmarks") -> np.ndarray:
    """Return ``landmarks`` as float32 if shaped ``(..., 478, 3)``, else raise ShapeError."""
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2:] != (NUM_POINTS, 3):
        raise ShapeError(what, f"(..., {NUM_POINTS}, 3)", landmarks.shape)
    return landmarks.astype(np.float32, copy=False)


def face_pixels(face: FaceTrack, source: str = "FaceTrack", num_frames: int | None = None) -> np.ndarray:
    """``(T, F, 478, 3)`` float32 pixel landmarks of a track, shape-checked (``T == num_frames``
    when given: the track must belong to the video being scored)."""
    check_landmarks(face.landmarks, f"{source} landmarks")
    if face.landmarks.ndim != 4 or (num_frames is not None and face.landmarks.shape[0] != num_frames):
        t = "T" if num_frames is None else str(num_frames)
        raise ShapeError(f"{source} landmarks", f"({t}, F, {NUM_POINTS}, 3)", face.landmarks.shape)
    return face.pixels().astype(np.float32, copy=False)


def _dist(points: np.ndarray, a: int | tuple[int, ...], b: int | tuple[int, ...]) -> np.ndarray:
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def face_size(points: np.ndarray) -> np.ndarray:
    """RMS 3-D distance of the rigid points from their centre: ``(...)``. Unlike the distance
    between the eyes seen in the image, it hardly shrinks when the head turns."""
    rigid = points[..., RIGID, :]
    centred = rigid - rigid.mean(axis=-2, keepdims=True)
    return np.sqrt((centred**2).sum(axis=-1).mean(axis=-1))


def head_angles(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate ``(yaw, pitch)`` in degrees, each ``(...)``, 0 for a face looking at the camera.

    The face's normal is the cross product of its left-right axis (outer eye corners) and its
    up-down axis (mouth-corner midpoint to eye midpoint), from the mesh's 3-D points.
    """
    across = points[..., 263, :] - points[..., 33, :]
    eyes_mid = 0.5 * (points[..., 263, :] + points[..., 33, :])
    mouth_mid = 0.5 * (points[..., MOUTH_CORNERS[0], :] + points[..., MOUTH_CORNERS[1], :])
    up = eyes_mid - mouth_mid
    normal = np.cross(across, up)
    normal = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
    # Image y points down and MediaPipe's z grows away from the camera: a frontal face's normal
    # is (0, 0, +-1); the sign depends on the axis order, so angles use |n_z|.
    nz = np.abs(normal[..., 2])
    yaw = np.degrees(np.arctan2(normal[..., 0], nz))
    pitch = np.degrees(np.arctan2(normal[..., 1], nz))
    return yaw.astype(np.float32), pitch.astype(np.float32)


def is_frontal(points: np.ndarray, max_yaw_deg: float, max_pitch_deg: float) -> np.ndarray:
    """``(...)`` bool: a face is present and turned less than the given angles."""
    yaw, pitch = head_angles(points)
    with np.errstate(invalid="ignore"):
        return (np.abs(yaw) <= max_yaw_deg) & (np.abs(pitch) <= max_pitch_deg)


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """EAR of each eye, ``(..., 2)`` (right, left), from 3-D distances so yaw matters less:
    ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)``."""
    out = []
    for p1, p2, p3, p4, p5, p6 in (RIGHT_EYE, LEFT_EYE):
        vertical = _dist(points, p2, p6) + _dist(points, p3, p5)
        out.append(vertical / (2.0 * _dist(points, p1, p4)))
    return np.stack(out, axis=-1).astype(np.float32)


def expression_measures(points: np.ndarray) -> np.ndarray:
    """Raw expression measures ``(..., 4)`` in face-size units (see :data:`MEASURES`)."""
    size = face_size(points)
    mouth_open = _dist(points, UPPER_LIP_INNER, LOWER_LIP_INNER)
    mouth_width = _dist(points, *MOUTH_CORNERS)
    lids = 0.5 * (_dist(points, RIGHT_UPPER_LID, RIGHT_LOWER_LID) + _dist(points, LEFT_UPPER_LID, LEFT_LOWER_LID))
    right_eye = points[..., RIGHT_EYE_CORNERS, :].mean(axis=-2)
    left_eye = points[..., LEFT_EYE_CORNERS, :].mean(axis=-2)
    brows = 0.5 * (
        np.linalg.norm(points[..., RIGHT_BROW, :].mean(axis=-2) - right_eye, axis=-1)
        + np.linalg.norm(points[..., LEFT_BROW, :].mean(axis=-2) - left_eye, axis=-1)
    )
    return (np.stack([mouth_open, mouth_width, brows, lids], axis=-1) / size[..., None]).astype(np.float32)


MEASURES = ("mouth_open", "lip_stretch", "brow_raise", "eye_widen")
MESH_POINTS = 468  # the face mesh without the 10 iris points (eyes looking around are no expression)


def normalised_shape(points: np.ndarray) -> np.ndarray:
    """Image-plane mesh ``(..., 478, 3)`` px -> ``(..., 468, 2)``: translated to the rigid points'
    centre and divided by :func:`face_size`, so shapes of any size and position compare."""
    xy = points[..., :MESH_POINTS, :2]
    centre = points[..., RIGID, :2].mean(axis=-2, keepdims=True)
    return (xy - centre) / face_size(points)[..., None, None]


def rotate_onto(shapes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """In-plane rotation of each ``(..., N, 2)`` shape that best lays its rigid points onto
    ``target``'s (least squares, closed form for 2-D); ``target`` broadcasts against ``shapes``."""
    src, dst = shapes[..., RIGID, :], target[..., RIGID, :]
    cross = (src[..., 0] * dst[..., 1] - src[..., 1] * dst[..., 0]).sum(axis=-1)
    dot = (src[..., 0] * dst[..., 0] + src[..., 1] * dst[..., 1]).sum(axis=-1)
    angle = np.arctan2(cross, dot)
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x, y = shapes[..., 0], shapes[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def frames_for(seconds: float, fps: float, minimum: int = 1) -> int:
    """A window of ``seconds`` in whole frames at ``fps`` (at least ``minimum``)."""
    return max(minimum, int(round(seconds * fps)))


def rolling_nanmedian(series: np.ndarray, window: int, min_valid: int) -> np.ndarray:
    """Centred rolling median over axis 0 of ``(T, ...)``, ignoring NaN; NaN where the window
    holds fewer than ``min_valid`` values. ``window`` is made odd."""
    half = window // 2
    pad = np.full((half,) + series.shape[1:], np.nan, series.dtype)
    padded = np.concatenate([pad, series, pad], axis=0)
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (T, ..., W)
    count = np.isfinite(views).sum(axis=-1)
    med = quiet_nanmedian(views, axis=-1)
    return np.where(count >= min_valid, med, np.nan).astype(series.dtype)


def quiet_nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` without the warning for all-NaN slices (they give NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def quiet_nanquantile(values: np.ndarray, q: float, axis: int) -> np.ndarray:
    """``np.nanquantile`` without the warning for all-NaN slices (they give NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(values, q, axis=axis)

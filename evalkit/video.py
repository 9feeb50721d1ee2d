"""Video decoding with PyAV into evalkit's one layout (see :mod:`evalkit._types`)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evalkit._types import Video
from evalkit.errors import VideoDecodeError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".gif")


@dataclass(frozen=True)
class DecodeOptions:
    """How every video of a run is decoded, once, for all detectors.

    Attributes:
        max_side: resize so the longer side is at most this many pixels (None: keep size).
            A downscaled frame gets even sides; a frame that fits keeps its size.
        max_frames: keep at most this many frames from the start (None: all).
        target_fps: drop frames to approach this rate when the source is faster (None: all).
        detector_sides: other ``max_side`` values detectors declared (``BaseDetector.max_side``):
            each frame, decoded once, is also scaled to each of these (``Video.at(side)``).
    """

    max_side: int | None = 512
    max_frames: int | None = None
    target_fps: float | None = None
    detector_sides: tuple[int | None, ...] = ()


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hash of the file's bytes: the key of the results store."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise VideoDecodeError(str(path), f"cannot read file ({exc.strerror or exc})") from exc
    return h.hexdigest()


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height  # never resample a frame that fits
    scale = max_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def decode_video(path: str | Path, options: DecodeOptions = DecodeOptions(), digest: str | None = None) -> Video:
    """Decode ``path`` into a :class:`Video` with ``frames`` of shape ``(T, 3, H, W)`` uint8.

    Frames come out as a player shows them: rotation metadata (a phone's portrait clip) is
    applied, so ``H, W`` are the displayed height and width. Grayscale, alpha and 10-bit sources
    are converted to 8-bit RGB (alpha dropped); interlaced frames are kept as decoded (woven
    fields, no deinterlacing); a variable-rate clip keeps every frame and reports its average rate.

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream or no frames.
    """
    import av  # local: keeps `import evalkit` light

    path = str(path)
    if not Path(path).is_file():
        raise VideoDecodeError(path, "no such file")
    digest = digest or content_hash(path)
    if Path(path).stat().st_size == 0:
        raise VideoDecodeError(path, "not a readable video (empty file, 0 bytes)")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(path, f"not a readable video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        source_fps = float(rate) if rate else 0.0
        if not math.isfinite(source_fps) or source_fps <= 0:
            source_fps = 25.0  # some containers (GIF) carry no rate
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoDecodeError(path, f"invalid frame size {width}x{height}")
        out_w, out_h = _output_size(width, height, options.max_side)
        # one decode, several sizes: each further size swscale'd from the same decoded frame
        others: dict[tuple[int, int], list[np.ndarray]] = {}
        side_size = {side: _output_size(width, height, side) for side in options.detector_sides}
        for size in side_size.values():
            if size != (out_w, out_h):
                others.setdefault(size, [])
        step = 1.0
        if options.target_fps and source_fps > options.target_fps:
            step = source_fps / options.target_fps
        frames: list[np.ndarray] = []
        kept: list[int] = []
        next_keep = 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index + 1e-6 < next_keep:
                    continue
                next_keep += step
                frames.append(_upright(frame.to_ndarray(format="rgb24", width=out_w, height=out_h), frame.rotation))
                for (w, h), scaled in others.items():
                    scaled.append(_upright(frame.to_ndarray(format="rgb24", width=w, height=h), frame.rotation))
                kept.append(index)
                if options.max_frames and len(frames) >= options.max_frames:
                    break
        except av.FFmpegError as exc:
            if not frames:
                raise VideoDecodeError(path, f"decoding failed ({exc})") from exc
            # A truncated file: keep what decoded, as players do.
        if not frames:
            raise VideoDecodeError(path, "no frames decoded")
    if len({f.shape for f in frames}) > 1:  # rotation metadata cannot change midway in practice
        raise VideoDecodeError(path, f"frame size changes midway ({frames[0].shape[:2]} then {frames[-1].shape[:2]})")
    if frames[0].shape[:2] != (out_h, out_w):  # rotated a quarter turn
        width, height = height, width
    made = {size: _video(path, scaled, source_fps / step, kept, (int(width), int(height)), source_fps, digest)
            for size, scaled in others.items()}
    video = _video(path, frames, source_fps / step, kept, (int(width), int(height)), source_fps, digest)
    video.resized = {side: made[size] for side, size in side_size.items() if size in made}
    return video


def _video(path: str, frames: list[np.ndarray], fps: float, kept: list[int], source_size: tuple[int, int],
           source_fps: float, digest: str) -> Video:
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # (T, H, W, C) -> (T, C, H, W)
    return Video(path=path, frames=tensor, fps=fps, frame_indices=np.asarray(kept, dtype=np.int64),
                 source_size=source_size, source_fps=source_fps, content_hash=digest)


def _upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """``(H, W, 3)`` as displayed: ``rotation`` is the display matrix's counter-clockwise angle
    (PyAV's ``VideoFrame.rotation``), in degrees."""
    quarter_turns = int(round(rotation / 90.0)) % 4
    return image if quarter_turns == 0 else np.ascontiguousarray(np.rot90(image, k=quarter_turns))


def write_video(path: str | Path, frames: np.ndarray | torch.Tensor, fps: float, crf: int = 18) -> Path:
    """Encode ``frames`` to H.264 (yuv420p) with PyAV; playable in Chromium.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB (numpy) or ``(T, 3, H, W)`` uint8 tensor.
    """
    import av
    from fractions import Fraction

    if isinstance(frames, torch.Tensor):
        frames = frames.permute(0, 2, 3, 1).cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video: expected (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:  # yuv420p needs even sizes
        frames = frames[:, : h - h % 2, : w - w % 2]
        h, w = frames.shape[1:3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

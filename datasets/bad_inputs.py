"""A corpus of bad inputs, generated at test time with PyAV (no binaries in the repository).

:func:`build_corpus` writes a checkpoint root in which every :data:`KINDS` entry appears once,
beside good control videos, and returns what each kind is expected to end as:

- ``"result"``: every detector stores a result (a documented conversion, e.g. alpha dropped);
- ``"skip"``: the detectors in ``skipped_by`` store a result marked skipped with its reason
  (``stats["skipped"]``), the others a normal result;
- ``"error"``: every detector stores an error record naming the file and the reason;
- ``"layout"``: the run records a layout problem naming the path and scores nothing there;
- ``"layout+run"``: a layout problem is recorded and the videos still run;
- ``"label"``: a review label holding the text is stored verbatim (escaping: tests/test_browser.py).

``python -m evalkit.datasets.bad_inputs DIR`` writes the corpus to DIR for a look by hand;
``tests/test_bad_inputs.py`` runs evalkit over it.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

HTML_PROMPT = 'a cat <script>alert("prompt")</script> <b>bold</b> & <img src=x onerror=alert(2)>'
HTML_NOTE = '<script>alert("note")</script><i>odd</i> & "off"'
SIZE = (48, 64)  # (H, W) of the small clips
FPS = 10


@dataclass(frozen=True)
class Kind:
    name: str
    expect: str  # "result", "skip", "error", "layout", "layout+run", "label"
    paths: tuple[str, ...]  # relative to the root: the files or folders this kind is about
    reason: str = ""  # a regular expression the error record or layout problem must match
    skipped_by: tuple[str, ...] = ()  # detectors that store a documented skip


def moving_pattern(t: int, h: int = SIZE[0], w: int = SIZE[1], seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a textured gradient sliding right, with no face or person."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 50, size=(h, w, 3))
    frames = [np.clip(base + (((xx + 3 * i) % w) * 180 // max(w - 1, 1))[..., None] + (yy * 40 // h)[..., None], 0, 255)
              for i in range(t)]
    return np.stack(frames).astype(np.uint8)


def upright_marker(h: int = SIZE[0], w: int = SIZE[1]) -> np.ndarray:
    """``(H, W, 3)``: red top half, blue bottom half, a white square top-left; any rotation or
    flip of it is told apart."""
    image = np.zeros((h, w, 3), np.uint8)
    image[: h // 2] = (220, 20, 20)
    image[h // 2:] = (20, 20, 220)
    image[:10, :10] = 255
    return image


def encode(path: Path, frames: np.ndarray, fps: float = FPS, codec: str = "libx264", pix_fmt: str = "yuv420p",
           source_format: str = "rgb24", options: dict[str, str] | None = None, pts_ms: list[int] | None = None,
           container_options: dict[str, str] | None = None) -> Path:
    """Encode ``(T, H, W, C)`` uint8 ``frames`` with PyAV; ``pts_ms`` gives each frame's time in ms."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = {"preset": "ultrafast", **(options or {})} if codec == "libx264" else dict(options or {})
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=source_format)
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _rotation_matrix(degrees_clockwise: int) -> bytes:
    """A tkhd display matrix telling players to turn the picture ``degrees_clockwise``."""
    c = round(math.cos(math.radians(degrees_clockwise)))
    s = round(math.sin(math.radians(degrees_clockwise)))
    return struct.pack(">9i", c << 16, s << 16, 0, (-s) << 16, c << 16, 0, 0, 0, 1 << 30)


def encode_rotated(path: Path, upright: np.ndarray, degrees_clockwise: int) -> Path:
    """A clip stored turned ``degrees_clockwise`` counter-clockwise, with the display matrix a
    phone writes to undo it (the ``tkhd`` box's matrix, patched in place)."""
    stored = np.rot90(upright, k=degrees_clockwise // 90, axes=(1, 2))
    encode(path, np.ascontiguousarray(stored))
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    # size/type already passed: version+flags (4), times and track id (20 or 32), reserved (8),
    # layer, alternate group, volume, reserved (8): then the 36-byte matrix.
    offset = at + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    if at < 0 or struct.unpack(">9i", data[offset:offset + 36])[8] != 1 << 30:
        raise ValueError(f"{path}: expected the tkhd box's identity matrix at byte {offset}, got another layout")
    data[offset:offset + 36] = _rotation_matrix(degrees_clockwise)
    path.write_bytes(bytes(data))
    return path


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.linspace(0, 200, 16000)) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def build_corpus(root: Path) -> list[Kind]:
    """Write the bad-input root at ``root`` (and its outside-the-root targets beside it)."""
    root.mkdir(parents=True)
    outside = root.parent / f"{root.name}_outside"
    (outside / "ckpt").mkdir(parents=True)
    a, b = root / "ckpt_a", root / "ckpt_b"
    for folder, step in ((a, 100), (b, 200)):
        folder.mkdir()
        (folder / "checkpoint.json").write_text(json.dumps({"step": step, "stage": "lowres"}))
    clip = moving_pattern(8)
    kinds: list[Kind] = []

    def add(name: str, expect: str, *paths: str, reason: str = "", skipped_by: tuple[str, ...] = (),
            make: Callable[[], object] | None = None) -> None:
        if make is not None:
            make()
        kinds.append(Kind(name, expect, tuple(paths), reason, skipped_by))

    # controls: the videos that must finish whatever else is in the root
    encode(a / "good.mp4", clip)
    encode(b / "good.mp4", moving_pattern(8, seed=1))

    # files that are not videos, or not whole ones
    good_bytes = (a / "good.mp4").read_bytes()
    add("truncated", "error", "ckpt_a/truncated.mp4", reason="not a readable video|no frames|decoding failed",
        make=lambda: (a / "truncated.mp4").write_bytes(good_bytes[: len(good_bytes) // 2]))
    faststart = encode(root / "_tmp_faststart.mp4", moving_pattern(30, seed=2), container_options={"movflags": "+faststart"})
    fs_bytes = faststart.read_bytes()
    faststart.unlink()
    add("truncated, index first (the frames before the cut are kept, as players do)", "result",
        "ckpt_a/truncated_faststart.mp4",
        make=lambda: (a / "truncated_faststart.mp4").write_bytes(fs_bytes[: len(fs_bytes) * 2 // 3]))
    add("zero bytes", "error", "ckpt_a/zero_byte.mp4", reason=r"not a readable video \(empty file, 0 bytes\)",
        make=lambda: (a / "zero_byte.mp4").write_bytes(b""))
    add("not a video (text)", "error", "ckpt_a/not_a_video.mp4", reason="not a readable video",
        make=lambda: (a / "not_a_video.mp4").write_text("this is a shopping list, not a video\n" * 20))
    add("header only", "error", "ckpt_a/header_only.mp4", reason="not a readable video|no video stream|no frames",
        make=lambda: (a / "header_only.mp4").write_bytes(good_bytes[:48]))
    add("audio only", "error", "ckpt_a/audio_only.mp4", reason="no video stream", make=lambda: _audio_only(a / "audio_only.mp4"))
    add("a directory named .mp4", "layout", "ckpt_a/folder.mp4", reason="expected a video file, got a directory",
        make=lambda: (a / "folder.mp4").mkdir())

    def garbage_midstream() -> None:
        data = bytearray(encode(a / "garbage_midstream.mp4", moving_pattern(30, seed=3),
                                container_options={"movflags": "+faststart"}).read_bytes())
        rng = np.random.default_rng(7)
        start = len(data) // 2
        data[start:start + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
        (a / "garbage_midstream.mp4").write_bytes(bytes(data))

    add("garbage in the middle of the stream", "result", "ckpt_a/garbage_midstream.mp4", make=garbage_midstream)

    # unusual but valid pictures
    add("1 frame", "skip", "ckpt_a/one_frame.mp4", skipped_by=("confetti", "framediff"), make=lambda: encode(a / "one_frame.mp4", clip[:1]))
    add("2x2 pixels", "result", "ckpt_a/tiny_2x2.mp4",
        make=lambda: encode(a / "tiny_2x2.mp4", moving_pattern(6, 2, 2), pix_fmt="yuv444p"))
    add("7680x4320", "result", "ckpt_a/huge_8k.mp4",
        make=lambda: encode(a / "huge_8k.mp4", np.repeat(np.repeat(moving_pattern(3, 45, 80), 96, axis=1), 96, axis=2)))
    add("grayscale", "result", "ckpt_a/grayscale.mp4",
        make=lambda: encode(a / "grayscale.mp4", clip[..., :1].copy(), pix_fmt="gray", source_format="gray"))
    rgba = np.concatenate([clip, np.full((*clip.shape[:3], 1), 128, np.uint8)], axis=-1)
    add("alpha channel (PNG in MOV; alpha dropped)", "result", "ckpt_a/alpha.mov",
        make=lambda: encode(a / "alpha.mov", rgba, codec="png", pix_fmt="rgba", source_format="rgba"))
    add("10-bit", "result", "ckpt_a/ten_bit.mp4", make=lambda: encode(a / "ten_bit.mp4", clip, pix_fmt="yuv420p10le"))
    add("variable frame rate", "result", "ckpt_a/vfr.mp4",
        make=lambda: encode(a / "vfr.mp4", clip, pts_ms=[0, 40, 80, 250, 290, 600, 640, 700]))
    add("rotation metadata (frames upright)", "result", "ckpt_a/rotated_90.mp4", "ckpt_a/rotated_180.mp4",
        "ckpt_a/rotated_270.mp4",
        make=lambda: [encode_rotated(a / f"rotated_{d}.mp4", np.stack([upright_marker()] * 4), d) for d in (90, 180, 270)])
    interlaced = clip.copy()
    interlaced[:, 1::2] = np.roll(interlaced[:, 1::2], 6, axis=2)  # odd lines a field later: combing
    add("interlaced (woven fields, not deinterlaced)", "result", "ckpt_a/interlaced.mp4",
        make=lambda: encode(a / "interlaced.mp4", interlaced, options={"x264-params": "interlaced=1:tff=1"}))
    add("upper-case extension", "result", "ckpt_a/upper_case.MP4", make=lambda: encode(a / "upper_case.MP4", clip))
    add("no face or person", "skip", "ckpt_a/no_person.mp4", skipped_by=("blink", "motion"), make=lambda: encode(a / "no_person.mp4", moving_pattern(8, seed=4)))

    # metadata: prompts and checkpoints
    prompts = [
        json.dumps({"id": "good", "prompt": "a sliding gradient"}),
        '{"id": "broken", "prompt": "cut off here',
        "[1, 2, 3]",
        json.dumps({"id": "dup", "prompt": "first wording"}),
        json.dumps({"id": "dup", "prompt": "second wording"}),
        json.dumps({"id": "html", "prompt": HTML_PROMPT}),
        json.dumps({"id": "no_id_type", "prompt": 3}),
    ]
    ids = ["truncated", "truncated_faststart", "zero_byte", "not_a_video", "header_only", "audio_only",
           "garbage_midstream", "one_frame", "tiny_2x2", "huge_8k", "grayscale", "alpha", "ten_bit", "vfr",
           "rotated_90", "rotated_180", "rotated_270", "interlaced", "upper_case", "no_person", "escape", "dotdot"]
    prompts += [json.dumps({"id": i, "prompt": f"prompt for {i}"}) for i in ids]
    (root / "prompts.jsonl").write_text("\n".join(prompts) + "\n")
    add("corrupt prompts.jsonl lines", "layout+run", "prompts.jsonl", reason=r"prompts\.jsonl:[23]: ")
    add("duplicate prompt id", "layout+run", "ckpt_a/dup.mp4", reason="duplicate prompt id 'dup'",
        make=lambda: encode(a / "dup.mp4", moving_pattern(8, seed=5)))
    add("prompt id missing from prompts.jsonl", "result", "ckpt_a/missing_prompt.mp4",
        make=lambda: encode(a / "missing_prompt.mp4", moving_pattern(8, seed=6)))
    add("prompt holding HTML and <script>", "result", "ckpt_a/html.mp4",
        make=lambda: encode(a / "html.mp4", moving_pattern(8, seed=8)))

    def bad_checkpoint() -> None:
        folder = root / "ckpt_badmeta"
        folder.mkdir()
        (folder / "checkpoint.json").write_text('{"step": 300, "stage": ')
        encode(folder / "good.mp4", moving_pattern(8, seed=9))

    add("bad checkpoint.json (checkpoint skipped)", "layout", "ckpt_badmeta", reason="checkpoint.json: not valid JSON",
        make=bad_checkpoint)

    def bad_step() -> None:
        folder = root / "ckpt_badstep"
        folder.mkdir()
        (folder / "checkpoint.json").write_text(json.dumps({"step": "ten", "stage": "sideways"}))
        encode(folder / "good.mp4", moving_pattern(8, seed=10))

    add("checkpoint.json with a bad step", "layout", "ckpt_badstep", reason='"step" must be a non-negative integer',
        make=bad_step)

    # paths escaping the root
    encode(outside / "secret.mp4", moving_pattern(8, seed=11))
    encode(outside / "ckpt" / "good.mp4", moving_pattern(8, seed=12))
    add("symlinked video outside the root", "layout", "ckpt_a/escape.mp4", reason="expected a video inside",
        make=lambda: os.symlink(outside / "secret.mp4", a / "escape.mp4"))
    add("relative '..' link escaping the root", "layout", "ckpt_a/dotdot.mp4", reason="expected a video inside",
        make=lambda: os.symlink(Path("..") / ".." / outside.name / "secret.mp4", a / "dotdot.mp4"))
    add("symlinked checkpoint folder outside the root", "layout", "ckpt_link", reason="expected a checkpoint folder inside",
        make=lambda: os.symlink(outside / "ckpt", root / "ckpt_link", target_is_directory=True))
    add("review note holding HTML and <script>", "label", "ckpt_a/good.mp4")
    return kinds


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs_root")
    for kind in build_corpus(target):
        print(f"{kind.expect:10s} {kind.name}")

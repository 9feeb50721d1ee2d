from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from evalkit import DecodeOptions, VideoBatch, VideoDecodeError, decode_video
from evalkit.video import content_hash, write_video
from conftest import synthetic_frames


def _write_lossless(path: Path, frames: np.ndarray, fps: Fraction) -> Path:
    """FFV1 in Matroska: lossless and any frame size, odd ones included."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


def test_decode_layout_and_values_lossless_odd_size(tmp_path):
    frames = synthetic_frames(7, 23, 37)
    path = _write_lossless(tmp_path / "odd.mkv", frames, Fraction(12))
    video = decode_video(path, DecodeOptions(max_side=None))
    assert video.frames.shape == (7, 3, 23, 37) and video.frames.dtype == torch.uint8
    assert video.fps == pytest.approx(12.0)
    assert video.source_size == (37, 23)
    np.testing.assert_array_equal(video.numpy_hwc(), frames)  # lossless round trip, RGB order kept
    f = video.float_frames()
    assert f.dtype == torch.float32 and 0.0 <= float(f.min()) and float(f.max()) <= 1.0


def test_decode_resizes_to_even_max_side(clips):
    video = decode_video(clips["bigbuckbunny.mp4"], DecodeOptions(max_side=101))
    w, h = video.size
    assert max(w, h) <= 102 and w % 2 == 0 and h % 2 == 0
    assert video.source_size == (1280, 720)
    assert abs(w / h - 1280 / 720) < 0.1


def test_decode_ntsc_rate_and_frame_count(clips):
    video = decode_video(clips["carphone_pristine.mp4"])
    assert video.num_frames == 120
    assert video.fps == pytest.approx(30000 / 1001, rel=1e-6)
    np.testing.assert_array_equal(video.frame_indices, np.arange(120))


def test_target_fps_keeps_original_frame_indices(clips):
    video = decode_video(clips["bikes.mp4"], DecodeOptions(max_side=64, target_fps=12.5))
    assert video.fps == pytest.approx(12.5)
    assert video.num_frames == 125
    np.testing.assert_array_equal(video.frame_indices[:4], [0, 2, 4, 6])


def test_short_clips_and_max_frames(tmp_path, clips):
    one = write_video(tmp_path / "one.mp4", synthetic_frames(1, 32, 48), fps=24)
    assert decode_video(one).num_frames == 1
    video = decode_video(clips["bikes.mp4"], DecodeOptions(max_side=64, max_frames=5))
    assert video.num_frames == 5


@pytest.mark.parametrize("content, problem", [(None, "no such file"), (b"", "not a readable video"),
                                               (b"not a video at all" * 10, "not a readable video")])
def test_bad_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoDecodeError) as info:
        decode_video(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_truncated_file_keeps_decoded_frames(tmp_path, clips):
    data = Path(clips["bikes.mp4"]).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        video = decode_video(cut, DecodeOptions(max_side=64))
    except VideoDecodeError as exc:  # mp4 with its index at the end may not open at all
        assert str(cut) in str(exc)
    else:
        assert 0 < video.num_frames < 250


def test_content_hash_tracks_bytes(tmp_path, clips):
    a = tmp_path / "a.mp4"
    a.write_bytes(Path(clips["carphone_pristine.mp4"]).read_bytes())
    assert content_hash(a) == content_hash(clips["carphone_pristine.mp4"])
    assert content_hash(a) != content_hash(clips["carphone_distorted.mp4"])


def test_write_video_h264_round_trip(tmp_path):
    frames = synthetic_frames(10, 40, 64)
    path = write_video(tmp_path / "x.mp4", frames, fps=8)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    video = decode_video(path, DecodeOptions(max_side=None))
    assert video.num_frames == 10 and video.fps == pytest.approx(8)
    # yuv420p halves chroma resolution: compare brightness, which H.264 keeps.
    gray = lambda x: x.astype(float).mean(axis=-1)  # noqa: E731
    assert np.abs(gray(video.numpy_hwc()) - gray(frames)).mean() < 6


def test_video_batch_pads_and_masks(tmp_path):
    a = decode_video(write_video(tmp_path / "a.mp4", synthetic_frames(4, 32, 32), fps=10))
    b = decode_video(write_video(tmp_path / "b.mp4", synthetic_frames(6, 32, 32), fps=20))
    batch = VideoBatch.from_videos([a, b])
    assert batch.frames.shape == (2, 6, 3, 32, 32)
    assert batch.mask.tolist() == [[True] * 4 + [False] * 2, [True] * 6]
    assert batch.frames[0, 4:].abs().sum() == 0
    assert batch.fps.tolist() == [10.0, 20.0]

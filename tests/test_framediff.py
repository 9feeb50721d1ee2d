from __future__ import annotations

import numpy as np
import torch

from evalkit import VideoInputs, decode_video, get_detector
from evalkit.video import DecodeOptions
from evalkit.detectors.framediff import frame_difference as fd


def test_frame_difference_numbers():
    frames = torch.zeros(1, 4, 3, 2, 2)
    frames[0, 1] = 0.5
    frames[0, 2] = 0.5
    frames[0, 3, :, 0, 0] = 1.0
    out = fd(frames)
    assert torch.isnan(out[0, 0])
    np.testing.assert_allclose(out[0, 1:].numpy(), [127.5, 0.0, (0.5 * 3 + 0.5 * 9) / 12 * 255], rtol=1e-6)


def test_frame_difference_respects_mask():
    frames = torch.rand(2, 5, 3, 4, 4)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = fd(frames, mask)
    assert torch.isnan(out[1, 3:]).all() and torch.isfinite(out[1, 1:3]).all()


def test_detector_flags_a_cut_in_real_footage(clips, tmp_path):
    from evalkit.video import write_video

    talk = decode_video(clips["carphone_pristine.mp4"], DecodeOptions(max_side=None)).numpy_hwc()
    bikes = decode_video(clips["bikes.mp4"], DecodeOptions(max_side=None, max_frames=30)).numpy_hwc()
    bikes = bikes[:, : talk.shape[1], : talk.shape[2]]
    spliced = np.concatenate([talk[:40], bikes[:20], talk[40:80]])
    path = write_video(tmp_path / "cut.mp4", spliced, fps=25)
    det = get_detector("framediff")
    clean = det.score_batch([VideoInputs(decode_video(clips["carphone_pristine.mp4"]))])[0]
    cut = det.score_batch([VideoInputs(decode_video(path))])[0]
    assert not clean.flagged
    assert cut.flagged
    starts = sorted(e.start for e in cut.events)
    assert 40 in starts and 60 in starts  # both splice points, frame-exact

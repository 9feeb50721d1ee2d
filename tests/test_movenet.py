"""MoveNet in torch (evalkit.movenet, evalkit._tfjs_torch) against a numpy interpreter of the same
TF.js graph (tests/tfjs_reference.py) and its recorded outputs on real frames
(tests/data/movenet_reference.npz), and against MediaPipe's pose on real footage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit.errors import ModelWeightsMissingError
from evalkit.movenet import MODELS_ENV, MoveNet, model_dir, movenet_keypoints, movenet_pose_track

FIXTURE = Path(__file__).parent / "data" / "movenet_reference.npz"


def _weights_or_skip(variant: str = "lightning") -> None:
    path = model_dir() / f"movenet-{variant}.json"
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but MoveNet is missing at {path}: `make test` runs `make models` first", pytrace=False)
        pytest.skip(f"MoveNet weights not fetched ({path}); run `make models`")


@pytest.fixture(scope="module")
def reference():
    return np.load(FIXTURE)


@pytest.mark.parametrize("variant", ["lightning", "thunder"])
def test_torch_equals_the_reference_on_real_frames(reference, variant):
    """The torch module (batched, channels-last, pointwise convs as matrix products, the head
    written out batched) against the numpy interpreter's recorded outputs, on 4 real frames."""
    from tests.tfjs_reference import model_inputs

    _weights_or_skip(variant)
    model = MoveNet.from_pretrained(variant)
    images = model_inputs(reference["images"], model.input_size)
    out = model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    ref = reference[f"{variant}_output"]
    np.testing.assert_allclose(out[..., :2], ref[..., :2], atol=1e-4)  # y, x: same heatmap cell and offset
    np.testing.assert_allclose(out[..., 2], ref[..., 2], atol=1e-4)  # scores
    # batch independence: one image alone gives the same numbers
    one = model(torch.from_numpy(images[1:2]).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(one, out[1:2], atol=1e-5)


def test_reference_interpreter_reproduces_the_fixture(reference):
    """The slow numpy interpreter itself, run again on one image: the fixture is what it computes."""
    from evalkit._tfjs_torch import read_graph
    from evalkit.movenet import model_path
    from tests.tfjs_reference import model_inputs, reference_output

    _weights_or_skip("lightning")
    graph = read_graph(model_path("lightning"))
    image = model_inputs(reference["images"][:1], graph.input_size)[0]
    np.testing.assert_allclose(reference_output(graph, image), reference["lightning_output"][0], atol=1e-5)


def test_missing_weights_name_the_file_and_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    with pytest.raises(ModelWeightsMissingError, match=r"movenet-thunder\.json.*make models"):
        MoveNet.from_pretrained("thunder")
    # a model.json without its shard names the shard
    (tmp_path / "movenet-lightning.json").write_text(
        '{"format": "graph-model", "modelTopology": {"node": []}, '
        '"weightsManifest": [{"paths": ["movenet-lightning.bin"], "weights": []}]}')
    from evalkit._tfjs_torch import read_graph

    with pytest.raises(ModelWeightsMissingError, match=r"movenet-lightning\.bin"):
        read_graph(tmp_path / "movenet-lightning.json")


def test_bad_frames_shape():
    from evalkit.errors import ShapeError

    _weights_or_skip()
    with pytest.raises(ShapeError, match=r"\(T, H, W, 3\)"):
        movenet_keypoints(np.zeros((4, 3, 32, 32), np.uint8), "lightning", "cpu")


@pytest.fixture(scope="module")
def cyclist():
    from evalkit.datasets.footage import load_clip
    from evalkit.datasets.motion_eval import retime
    from evalkit.landmarks import extract_pose

    bikes, fps = load_clip("bikes.mp4", max_side=360)
    frames, _ = retime(bikes[75:175], fps, 8.0)
    return frames, extract_pose(frames)


def test_keypoints_land_on_mediapipes_joints_on_real_footage(cyclist):
    """MoveNet and MediaPipe, two independent models, on the cyclist of bikes.mp4: where both see a
    joint confidently they put it within a fraction of a shoulder width of each other."""
    _weights_or_skip()
    frames, mp = cyclist
    mn = movenet_pose_track(frames, "lightning", "cpu")
    joints = [0, 11, 12, 13, 14, 15, 16]  # nose, shoulders, elbows, wrists
    a, b = mp.pixels()[:, joints], mn.pixels()[:, joints]
    both = (a[..., 3] >= 0.8) & (b[..., 3] >= 0.6)
    width = np.linalg.norm(a[:, 1, :2] - a[:, 2, :2], axis=-1)[:, None]
    dist = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1) / np.maximum(width, 1.0)
    assert both[:, :3].mean() > 0.3, both.mean(0)
    assert np.median(dist[both]) < 0.35, np.nanmedian(np.where(both, dist, np.nan), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(reference):
    from tests.tfjs_reference import model_inputs

    _weights_or_skip()
    cpu = MoveNet.from_pretrained("lightning")
    gpu = MoveNet.from_pretrained("lightning", "cuda")
    x = torch.from_numpy(model_inputs(reference["images"], cpu.input_size)).permute(0, 3, 1, 2)
    np.testing.assert_allclose(gpu(x.cuda()).cpu().numpy(), cpu(x).numpy(), atol=2e-3)

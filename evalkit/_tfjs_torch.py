"""A small TF.js-graph-to-torch loader for MoveNet's single-pose models.

A TF.js graph model is a ``model.json`` (``modelTopology.node``: TensorFlow GraphDef nodes as
JSON, each ``{name, op, input, attr}``; ``weightsManifest``: the constants' names, shapes and
dtypes, with their quantization) beside ``.bin`` shards holding the constants back to back in
manifest order. :func:`read_graph` reads both (float16-quantized constants are expanded to
float32 once, at load). :func:`load_tfjs` returns a :class:`TfjsBackbone`: a torch module that
runs the graph's convolutional part node by node, NCHW inside.

Operators of the backbone: ``_FusedConv2D`` (conv + ``BiasAdd`` + optional ``Relu``/``Relu6``),
``FusedDepthwiseConv2dNative`` (the same, depthwise), ``DepthwiseConv2dNative``, ``AddV2`` and
``ResizeBilinear`` (half-pixel centres), with TensorFlow's ``SAME`` padding (asymmetric: the extra
row and column go after). The graph's decoding head (argmax, ``GatherNd`` with batch-1 index
constants) is written out batched in :mod:`evalkit.movenet`, reading its constants from the graph.
Anything else in the convolutional part raises :class:`UnsupportedOperatorError`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import EvalkitError, ModelWeightsMissingError

__all__ = ["TfjsBackbone", "TfjsGraph", "TfjsNode", "UnsupportedOperatorError", "load_tfjs", "read_graph"]

CONV_OPS = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative")
BACKBONE_OPS = (*CONV_OPS, "AddV2", "ResizeBilinear")
_DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8,
           "uint16": np.uint16, "bool": np.bool_}


class UnsupportedOperatorError(EvalkitError, NotImplementedError):
    """The graph uses an operator (or an option of one) this loader does not implement."""


@dataclass(frozen=True)
class TfjsNode:
    name: str
    op: str
    inputs: tuple[str, ...]  # node names, ``name:k`` for a node's k-th output; control inputs dropped
    attr: dict[str, Any]

    def string(self, key: str) -> str:
        return base64.b64decode(self.attr[key]["s"]).decode()

    def strings(self, key: str) -> list[str]:
        return [base64.b64decode(s).decode() for s in self.attr.get(key, {}).get("list", {}).get("s", [])]

    def ints(self, key: str) -> list[int]:
        return [int(i) for i in self.attr.get(key, {}).get("list", {}).get("i", [])]

    def flag(self, key: str) -> bool:
        return bool(self.attr.get(key, {}).get("b", False))


@dataclass
class TfjsGraph:
    """A read graph: nodes in file order (TF.js writes them topologically sorted) and constants
    by node name (float32 or int32 numpy arrays)."""

    path: Path
    nodes: list[TfjsNode]
    constants: dict[str, np.ndarray]
    input_size: int  # the square input side the file declares

    def node(self, name: str) -> TfjsNode:
        return next(n for n in self.nodes if n.name == name)

    def constant(self, suffix: str) -> np.ndarray:
        """The one constant whose name ends with ``/suffix`` (or is ``suffix``)."""
        hits = [k for k in self.constants if k == suffix or k.endswith("/" + suffix)]
        if len(hits) != 1:
            raise UnsupportedOperatorError(f"{self.path.name}: expected one constant named like {suffix!r}, got {hits}")
        return self.constants[hits[0]]


def _dequantize(raw: bytes, offset: int, spec: dict) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in spec["shape"]]
    count = int(np.prod(shape)) if shape else 1
    quant = spec.get("quantization")
    if quant is None:
        dtype = np.dtype(_DTYPES[spec["dtype"]])
        data = np.frombuffer(raw, dtype, count, offset)
    elif quant["dtype"] == "float16":
        dtype = np.dtype(np.float16)
        data = np.frombuffer(raw, dtype, count, offset).astype(np.float32)
    elif quant["dtype"] in ("uint8", "uint16"):  # affine: value = q * scale + min
        dtype = np.dtype(_DTYPES[quant["dtype"]])
        q = np.frombuffer(raw, dtype, count, offset).astype(np.float32)
        data = q * np.float32(quant["scale"]) + np.float32(quant["min"])
    else:
        raise UnsupportedOperatorError(f"expected float16, uint8 or uint16 quantization, got {quant['dtype']!r}")
    return data.reshape(shape), offset + count * dtype.itemsize


def read_graph(model_json: str | Path) -> TfjsGraph:
    """Read a TF.js graph model: ``model_json`` and the weight shards it names (same folder).
    Raises :class:`ModelWeightsMissingError` naming the first missing file."""
    path = Path(model_json)
    if not path.is_file():
        raise ModelWeightsMissingError(f"expected TF.js model file {path}, found nothing (run `make models`)")
    spec = json.loads(path.read_text())
    if spec.get("format") != "graph-model":
        raise UnsupportedOperatorError(f"{path.name}: expected format 'graph-model', got {spec.get('format')!r}")
    constants: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        shards = [path.parent / p for p in group["paths"]]
        for shard in shards:
            if not shard.is_file():
                raise ModelWeightsMissingError(f"expected TF.js weight shard {shard}, found nothing (run `make models`)")
        raw = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for w in group["weights"]:
            constants[w["name"]], offset = _dequantize(raw, offset, w)
        if offset != len(raw):
            raise UnsupportedOperatorError(f"{path.name}: the manifest covers {offset} of {len(raw)} weight bytes")
    nodes = [TfjsNode(n["name"], n["op"], tuple(i for i in n.get("input", []) if not i.startswith("^")),
                      n.get("attr", {})) for n in spec["modelTopology"]["node"]]
    placeholder = next(n for n in nodes if n.op == "Placeholder")
    dims = [int(d["size"]) for d in placeholder.attr["shape"]["shape"]["dim"]]
    return TfjsGraph(path, nodes, constants, dims[1])


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Module):
    """One ``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` / ``DepthwiseConv2dNative``, NCHW."""

    def __init__(self, node: TfjsNode, weight: np.ndarray, bias: np.ndarray | None) -> None:
        super().__init__()
        self.depthwise = node.op != "_FusedConv2D"
        kh, kw, cin, cout = weight.shape  # HWIO; depthwise: (kh, kw, C, multiplier)
        if self.depthwise:
            if cout != 1:
                raise UnsupportedOperatorError(f"{node.name}: expected depth multiplier 1, got {cout}")
            w = np.transpose(weight, (2, 3, 0, 1))  # (C, 1, kh, kw)
        else:
            w = np.transpose(weight, (3, 2, 0, 1))  # (O, I, kh, kw)
        strides, dilations = node.ints("strides") or [1, 1, 1, 1], node.ints("dilations") or [1, 1, 1, 1]
        if node.string("data_format") != "NHWC" or set(dilations) != {1}:
            raise UnsupportedOperatorError(f"{node.name}: expected NHWC without dilation, got "
                                           f"{node.string('data_format')} dilations {dilations}")
        self.stride = (strides[1], strides[2])
        self.kernel = (kh, kw)
        self.same = node.string("padding") == "SAME"
        if node.string("padding") not in ("SAME", "VALID"):
            raise UnsupportedOperatorError(f"{node.name}: expected SAME or VALID padding, got {node.string('padding')}")
        fused = node.strings("fused_ops")
        if fused and fused[0] != "BiasAdd" or len(fused) > 2:
            raise UnsupportedOperatorError(f"{node.name}: expected fused ops [BiasAdd, activation], got {fused}")
        self.activation = fused[1] if len(fused) == 2 else None
        if self.activation not in (None, "Relu", "Relu6"):
            raise UnsupportedOperatorError(f"{node.name}: expected Relu or Relu6, got {self.activation}")
        self.groups = cin if self.depthwise else 1
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(w, np.float32)).contiguous(
            memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(bias.astype(np.float32)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == (1, 1) and self.stride == (1, 1) and not self.depthwise:
            # a pointwise conv is a matrix product over the channels (x is channels-last in memory)
            n, c, h, w = x.shape
            rows = x.permute(0, 2, 3, 1).reshape(-1, c)
            weight = self.weight.reshape(self.weight.shape[0], c).t()
            y = torch.addmm(self.bias, rows, weight) if self.bias is not None else rows @ weight
            y = y.reshape(n, h, w, -1).permute(0, 3, 1, 2)
        else:
            padding: int | tuple[int, int] = 0
            if self.same:
                top, bottom = same_padding(x.shape[2], self.kernel[0], self.stride[0])
                left, right = same_padding(x.shape[3], self.kernel[1], self.stride[1])
                if top == bottom and left == right:
                    padding = (top, left)
                else:
                    x = F.pad(x, (left, right, top, bottom))
            y = F.conv2d(x, self.weight, self.bias, self.stride, padding, 1, self.groups)
        if self.activation == "Relu":
            y = y.relu_()
        elif self.activation == "Relu6":
            y = y.clamp_(0.0, 6.0)
        return y


class TfjsBackbone(nn.Module):
    """The graph's convolutional part, from the node ``image`` (NHWC float in the file; here
    ``(N, C, H, W)``) to the nodes ``outputs`` (each ``(N, C_k, H_k, W_k)``), node by node in file
    order. Any batch size; the weights are parameters (``.to(device)`` moves them)."""

    def __init__(self, graph: TfjsGraph, image: str, outputs: list[str]) -> None:
        super().__init__()
        self.image, self.outputs = image, list(outputs)
        known = {image}
        self.steps: list[tuple[str, str, tuple[str, ...]]] = []  # (node, op, activation inputs)
        self.convs = nn.ModuleDict()
        self.sizes: dict[str, tuple[int, int]] = {}
        for node in graph.nodes:
            live = tuple(i for i in node.inputs if i in known)
            if not live or node.op not in BACKBONE_OPS:
                continue
            if node.op in CONV_OPS:
                weight = graph.constants[node.inputs[1]]
                bias = graph.constants[node.inputs[2]] if len(node.inputs) > 2 else None
                self.convs[str(len(self.convs))] = _Conv(node, weight, bias)
            elif node.op == "ResizeBilinear":
                if node.flag("align_corners") or not node.flag("half_pixel_centers"):
                    raise UnsupportedOperatorError(f"{node.name}: expected half-pixel centres, no corner alignment")
                self.sizes[node.name] = tuple(int(v) for v in graph.constants[node.inputs[1]])
            elif len(live) != 2:
                raise UnsupportedOperatorError(f"{node.name}: expected AddV2 of two activations, got inputs {node.inputs}")
            self.steps.append((node.name, node.op, live))
            known.add(node.name)
        missing = [o for o in outputs if o not in known]
        if missing:
            raise UnsupportedOperatorError(f"{graph.path.name}: outputs {missing} are not reached from {image!r} "
                                           f"through {', '.join(BACKBONE_OPS)}")

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        # channels-last memory (the layout stays NCHW): torch's CPU depthwise convolutions are ~4x
        # faster on it
        values = {self.image: image.contiguous(memory_format=torch.channels_last)}
        convs = iter(self.convs.values())
        for name, op, inputs in self.steps:
            if op in CONV_OPS:
                values[name] = next(convs)(values[inputs[0]])
            elif op == "AddV2":
                values[name] = values[inputs[0]] + values[inputs[1]]
            else:  # ResizeBilinear, half-pixel centres: torch's align_corners=False
                values[name] = F.interpolate(values[inputs[0]], size=self.sizes[name], mode="bilinear",
                                             align_corners=False)
        return [values[o] for o in self.outputs]


def load_tfjs(model_json: str | Path, image: str, outputs: list[str]) -> tuple[TfjsGraph, TfjsBackbone]:
    """Read ``model_json`` and build the torch module of its convolutional part (see
    :class:`TfjsBackbone`)."""
    graph = read_graph(model_json)
    return graph, TfjsBackbone(graph, image, outputs)

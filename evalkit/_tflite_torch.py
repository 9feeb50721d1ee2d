"""A small TFLite-to-torch loader for MediaPipe's landmark models.

:func:`load_tflite` parses a ``.tflite`` flatbuffer with the ``tflite`` package (the schema's
generated reader) and returns a :class:`TFLiteModule`: a torch module that runs the file's one
subgraph operator by operator, with the file's weights as tensors (float16 weights behind
``DEQUANTIZE`` and sparse weights behind ``DENSIFY`` are expanded once, at load).

Layout: the module takes and returns the file's layout, NHWC with a leading batch of any size
(``(N, H, W, C)`` in, each output ``(N, *file_shape[1:])``), but keeps rank-4 activations NCHW
inside, where torch's convolutions are fastest. The batch dimension is every tensor's first
(true of MediaPipe's models; the files themselves say batch 1).

Operators: those of the five classic MediaPipe models (face detection, face landmark, iris,
pose detection, pose landmark full): CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, PRELU, RELU, RELU6,
LOGISTIC, MAX_POOL_2D, PAD, RESHAPE, CONCATENATION, STRIDED_SLICE, RESIZE_BILINEAR,
DEPTH_TO_SPACE, DEQUANTIZE, DENSIFY. Anything else (the attention mesh's custom ops among them)
raises :class:`UnsupportedOperatorError` naming the operator and the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import EvalkitError, ModelWeightsMissingError

__all__ = ["TFLiteModule", "UnsupportedOperatorError", "load_tflite", "read_graph"]


class UnsupportedOperatorError(EvalkitError, NotImplementedError):
    """The file uses an operator (or an option of one) this loader does not implement."""


# tflite.TensorType values -> numpy dtypes (the ones these models use).
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
_PADDING_SAME, _PADDING_VALID = 0, 1
# Fused activations, applied in place: they always follow an operator's fresh output (a new
# tensor on CPU costs more in page faults than the activation itself).
_ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor] | None] = {
    0: None,
    1: torch.relu_,
    2: lambda x: x.clamp_(-1.0, 1.0),  # RELU_N1_TO_1
    3: lambda x: x.clamp_(0.0, 6.0),  # RELU6
    4: torch.tanh_,
}


# ----------------------------------------------------------------------------------------------
# Reading the flatbuffer


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: Any
    data: np.ndarray | None  # constant data, or None for an activation


@dataclass
class OpInfo:
    name: str  # builtin name (CONV_2D...) or the custom code
    inputs: list[int]  # tensor indices; -1: an optional input left out
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """One subgraph, read: tensors (constants with their data), operators in execution order,
    graph inputs and outputs (tensor indices)."""

    path: Path
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: list[int]
    outputs: list[int]


def _options(op: Any, cls: Any, fields: dict[str, str]) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return {key: getattr(opts, method)() for key, method in fields.items()}


def _read_options(tfl: Any, name: str, op: Any) -> dict[str, Any]:
    conv = {"padding": "Padding", "stride_h": "StrideH", "stride_w": "StrideW",
            "dilation_h": "DilationHFactor", "dilation_w": "DilationWFactor",
            "activation": "FusedActivationFunction"}
    if name == "CONV_2D":
        return _options(op, tfl.Conv2DOptions, conv)
    if name == "DEPTHWISE_CONV_2D":
        return _options(op, tfl.DepthwiseConv2DOptions, {**conv, "depth_multiplier": "DepthMultiplier"})
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return _options(op, tfl.Pool2DOptions, {"padding": "Padding", "stride_h": "StrideH", "stride_w": "StrideW",
                                                "filter_h": "FilterHeight", "filter_w": "FilterWidth",
                                                "activation": "FusedActivationFunction"})
    if name == "ADD":
        return _options(op, tfl.AddOptions, {"activation": "FusedActivationFunction"})
    if name == "MUL":
        return _options(op, tfl.MulOptions, {"activation": "FusedActivationFunction"})
    if name == "CONCATENATION":
        return _options(op, tfl.ConcatenationOptions, {"axis": "Axis", "activation": "FusedActivationFunction"})
    if name == "RESIZE_BILINEAR":
        return _options(op, tfl.ResizeBilinearOptions, {"align_corners": "AlignCorners",
                                                        "half_pixel_centers": "HalfPixelCenters"})
    if name == "DEPTH_TO_SPACE":
        return _options(op, tfl.DepthToSpaceOptions, {"block_size": "BlockSize"})
    if name == "STRIDED_SLICE":
        return _options(op, tfl.StridedSliceOptions, {"begin_mask": "BeginMask", "end_mask": "EndMask",
                                                      "ellipsis_mask": "EllipsisMask", "new_axis_mask": "NewAxisMask",
                                                      "shrink_axis_mask": "ShrinkAxisMask", "offset": "Offset"})
    return {}


def _index_vector(tfl: Any, kind: int, table: Any) -> np.ndarray:
    """A SparseIndexVector union (Int32Vector, Uint16Vector or Uint8Vector) as an int64 array."""
    cls = {1: tfl.Int32Vector, 2: tfl.Uint16Vector, 3: tfl.Uint8Vector}.get(kind)
    if cls is None:
        raise UnsupportedOperatorError(f"expected a sparse index vector of type 1-3, got {kind}")
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    return np.asarray(vec.ValuesAsNumpy(), np.int64)


def _densify(tfl: Any, tensor: Any, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A sparse constant (TFLite's SparsityParameters: traversal order and, per level, DENSE or
    SPARSE_CSR metadata) -> its dense array, as TFLite's FormatConverter does. Block sparsity
    (``block_map``) is not implemented: these models do not use it."""
    sp = tensor.Sparsity()
    order = sp.TraversalOrderAsNumpy().tolist()
    if sp.BlockMapLength() or len(order) != len(shape):
        raise UnsupportedOperatorError(f"DENSIFY: expected sparsity without blocks, got block map "
                                       f"{sp.BlockMapAsNumpy().tolist() if sp.BlockMapLength() else []}")
    positions = np.zeros(1, np.int64)  # index into the next level's storage, per path so far
    coords = np.zeros((1, 0), np.int64)  # coordinates per level along each path
    for level in range(len(order)):
        meta = sp.DimMetadata(level)
        if meta.Format() == 0:  # DENSE
            size = meta.DenseSize()
            coords = np.concatenate([np.repeat(coords, size, 0), np.tile(np.arange(size), len(positions))[:, None]], 1)
            positions = (positions[:, None] * size + np.arange(size)).ravel()
        else:  # SPARSE_CSR
            segments = _index_vector(tfl, meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(tfl, meta.ArrayIndicesType(), meta.ArrayIndices())
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions], counts)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            positions = starts + offsets
            coords = np.concatenate([np.repeat(coords, counts, 0), indices[positions][:, None]], 1)
    dense = np.zeros(shape, values.dtype)
    index = [None] * len(shape)
    for level, dim in enumerate(order):
        index[dim] = coords[:, level]
    dense[tuple(index)] = values[positions]
    return dense


def read_graph(path: str | Path) -> Graph:
    """Parse a ``.tflite`` file's first subgraph. Raises :class:`ModelWeightsMissingError`
    naming the file when it is not there."""
    import tflite as tfl
    from tflite.utils import BUILTIN_OPCODE2NAME

    path = Path(path)
    if not path.is_file():
        raise ModelWeightsMissingError(f"expected TFLite model file {path}, found nothing")
    buf = path.read_bytes()
    model = tfl.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    tensors: list[TensorInfo] = []
    raw_tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        raw_tensors.append(t)
        dtype = _NUMPY_TYPES.get(t.Type())
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        buffer = model.Buffers(t.Buffer())
        data = None
        if buffer is not None and buffer.DataLength():
            if dtype is None:
                raise UnsupportedOperatorError(f"{path.name}: tensor {t.Name().decode()!r} has type {t.Type()}")
            data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype)
            if t.Sparsity() is None:
                data = data.reshape(shape)
        elif buffer is not None and buffer.Offset() > 1:  # large models keep buffers past the flatbuffer
            data = np.frombuffer(buf[buffer.Offset(): buffer.Offset() + buffer.Size()], dtype)
            if t.Sparsity() is None:
                data = data.reshape(shape)
        tensors.append(TensorInfo(t.Name().decode(), shape, dtype, data))
    ops: list[OpInfo] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = code.CustomCode().decode() if builtin == 32 else BUILTIN_OPCODE2NAME.get(builtin, str(builtin))
        info = OpInfo(name, [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [],
                      [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else [],
                      _read_options(tfl, name, op))
        if builtin == 32 and op.CustomOptionsLength():
            from flatbuffers import flexbuffers

            info.options = dict(flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()))
        info.options["version"] = code.Version()
        if name == "DENSIFY":
            src = tensors[info.inputs[0]]
            info.options["dense"] = _densify(tfl, raw_tensors[info.inputs[0]], src.data, src.shape)
        ops.append(info)
    return Graph(path, tensors, ops,
                 [int(x) for x in graph.InputsAsNumpy()], [int(x) for x in graph.OutputsAsNumpy()])


# ----------------------------------------------------------------------------------------------
# Building the torch module


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis: the extra pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _nhwc_to_nchw_axis(axis: int) -> int:
    return (0, 2, 3, 1)[axis]


def _to_nchw_const(array: np.ndarray, rank: int) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor of ``rank`` 4 -> its NCHW form."""
    if array.ndim == 0:
        return array
    full = array.reshape((1,) * (rank - array.ndim) + array.shape)
    return np.transpose(full, (0, 3, 1, 2))


# Operators whose output is a new tensor (or, for an in-place ADD/MUL, a tensor that one did own).
_OWNING_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "PRELU", "RELU", "RELU6", "LOGISTIC",
                         "TANH", "MAX_POOL_2D", "PAD", "CONCATENATION", "RESIZE_BILINEAR",
                         "TransformTensorBilinear"})


class TFLiteModule(nn.Module):
    """A ``.tflite`` subgraph as a torch module.

    Call with ``(N, H, W, C)`` float (the file's input, NHWC, any batch ``N``); returns the
    file's outputs in its order, each ``(N, *shape[1:])`` in the file's layout. Weights are
    float32 buffers; ``.to(device, dtype)`` moves and casts them like any module.
    """

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.path = graph.path
        self.input_index = graph.inputs[0]
        self.input_shape = graph.tensors[self.input_index].shape
        self.output_indices = list(graph.outputs)
        self.output_shapes = [graph.tensors[i].shape for i in graph.outputs]
        self._steps: list[list[Any]] = []  # [operator, fn, input indices, output index]
        self._free_after: list[list[int]] = []
        self._nchw: dict[int, bool] = {self.input_index: len(self.input_shape) == 4}
        self._const_arrays: dict[int, np.ndarray] = {}
        self._graph = graph
        self._buffer_count = 0
        self._consumers: dict[int, int] = {}
        for op in graph.ops:
            for i in op.inputs:
                self._consumers[i] = self._consumers.get(i, 0) + 1
        self._spatial_pads: dict[int, tuple[int, tuple[int, int, int, int]]] = {}  # PAD out -> (in, pads)
        self._inplace: dict[int, Callable[..., Any]] = {}  # output index -> in-place step
        self._folded_pads: set[int] = set()
        # Fold the constant chains (DEQUANTIZE of a float16 constant, DENSIFY of a sparse one).
        for op in graph.ops:
            if op.name == "DENSIFY":
                self._const_arrays[op.outputs[0]] = op.options["dense"]
            elif op.name == "DEQUANTIZE" and self._const(op.inputs[0]) is not None:
                self._const_arrays[op.outputs[0]] = self._const(op.inputs[0]).astype(np.float32)
        for op in graph.ops:
            if op.outputs and op.outputs[0] in self._const_arrays:
                continue
            self._build(op)
        self._plan_frees()
        del self._graph, self._const_arrays, self._consumers, self._spatial_pads, self._inplace

    # -- build helpers --------------------------------------------------------------------------
    def _const(self, index: int) -> np.ndarray | None:
        if index in self._const_arrays:
            return self._const_arrays[index]
        return self._graph.tensors[index].data

    def _weight(self, array: np.ndarray) -> str:
        name = f"w{self._buffer_count}"
        self._buffer_count += 1
        self.register_buffer(name, torch.from_numpy(np.array(array, np.float32, order="C")))
        return name

    def _shape(self, index: int) -> tuple[int, ...]:
        return self._graph.tensors[index].shape

    def _add(self, op: OpInfo, fn: Callable[..., Any], inputs: list[int], nchw: bool) -> None:
        self._steps.append([op.name, fn, inputs, op.outputs[0]])
        self._nchw[op.outputs[0]] = nchw

    def _unsupported(self, op: OpInfo, what: str = "") -> UnsupportedOperatorError:
        detail = f" ({what})" if what else ""
        return UnsupportedOperatorError(f"{self.path.name}: operator {op.name}{detail} is not implemented by "
                                        f"evalkit's TFLite-to-torch loader")

    def _build(self, op: OpInfo) -> None:
        builder = getattr(self, f"_build_{op.name.lower()}", None)
        if builder is None:
            raise self._unsupported(op)
        builder(op)

    def _activation(self, op: OpInfo) -> Callable[[torch.Tensor], torch.Tensor] | None:
        code = op.options.get("activation", 0)
        if code not in _ACTIVATIONS:
            raise self._unsupported(op, f"fused activation {code}")
        return _ACTIVATIONS[code]

    def _conv(self, op: OpInfo, weight: np.ndarray, groups: int) -> None:
        x_index, _, *rest = op.inputs
        _, h, w, _ = self._shape(x_index)
        o = op.options
        kh, kw = weight.shape[2:]
        pad_h = pad_w = (0, 0)
        if o["padding"] == _PADDING_SAME:
            pad_h = _same_padding(h, kh, o["stride_h"], o["dilation_h"])
            pad_w = _same_padding(w, kw, o["stride_w"], o["dilation_w"])
        if o["padding"] == _PADDING_VALID and x_index in self._spatial_pads:
            # A zero PAD feeding only this convolution: the convolution pads instead.
            self._folded_pads.add(x_index)
            x_index, (top, bottom, left, right) = self._spatial_pads[x_index]
            pad_h, pad_w = (top, bottom), (left, right)
        symmetric = pad_h[0] == pad_h[1] and pad_w[0] == pad_w[1]
        bias = self._const(rest[0]) if rest and rest[0] >= 0 else None
        wname = self._weight(weight)
        bname = self._weight(bias) if bias is not None else None
        stride, dilation = (o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"])
        act = self._activation(op)
        conv_pad = (pad_h[0], pad_w[0]) if symmetric else (0, 0)
        pre_pad = None if symmetric else (pad_w[0], pad_w[1], pad_h[0], pad_h[1])

        def conv(x: torch.Tensor) -> torch.Tensor:
            if pre_pad is not None:
                x = F.pad(x, pre_pad)
            y = F.conv2d(x, getattr(self, wname), getattr(self, bname) if bname else None,
                         stride, conv_pad, dilation, groups)
            return act(y) if act is not None else y

        self._add(op, conv, [x_index], True)

    def _build_conv_2d(self, op: OpInfo) -> None:
        weight = self._const(op.inputs[1])  # (O, KH, KW, I)
        self._conv(op, np.transpose(weight, (0, 3, 1, 2)), groups=1)

    def _build_depthwise_conv_2d(self, op: OpInfo) -> None:
        weight = self._const(op.inputs[1])  # (1, KH, KW, C * M)
        channels = self._shape(op.inputs[0])[3]
        self._conv(op, np.transpose(weight, (3, 0, 1, 2)), groups=channels)

    def _binary(self, op: OpInfo, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                inplace: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        a, b = op.inputs
        act = self._activation(op)
        consts = [self._const(a), self._const(b)]
        variable = [i for i, c in zip((a, b), consts) if c is None]
        if not variable:
            raise self._unsupported(op, "on two constants")
        nchw = all(self._nchw[i] for i in variable) and len(self._shape(variable[0])) == 4
        layouts = [self._nchw[i] for i in variable]
        if len(set(layouts)) > 1:
            raise self._unsupported(op, "on tensors of different layouts")
        names = []
        for index, const in zip((a, b), consts):
            if const is None:
                names.append(None)
            else:
                arr = const.astype(np.float32)
                names.append(self._weight(_to_nchw_const(arr, 4) if nchw else arr))
        na, nb = names

        def binary(*xs: torch.Tensor) -> torch.Tensor:
            it = iter(xs)
            x = next(it) if na is None else getattr(self, na)
            y = next(it) if nb is None else getattr(self, nb)
            out = fn(x, y)
            return act(out) if act is not None else out

        self._add(op, binary, variable, nchw)
        if inplace is not None and na is None and self._shape(a) == self._shape(op.outputs[0]):
            def binary_inplace(x: torch.Tensor, *ys: torch.Tensor) -> torch.Tensor:
                out = inplace(x, ys[0] if ys else getattr(self, nb))
                return act(out) if act is not None else out

            self._inplace[op.outputs[0]] = binary_inplace

    def _build_add(self, op: OpInfo) -> None:
        self._binary(op, torch.add, torch.Tensor.add_)

    def _build_mul(self, op: OpInfo) -> None:
        self._binary(op, torch.mul, torch.Tensor.mul_)

    def _build_prelu(self, op: OpInfo) -> None:
        x_index, alpha_index = op.inputs
        alpha = self._const(alpha_index).astype(np.float32)
        nchw = self._nchw[x_index]
        channels = self._shape(x_index)[-1]
        if nchw and alpha.size == channels and alpha.shape[-1] == channels:
            name = self._weight(alpha.reshape(-1))
            self._add(op, lambda x: F.prelu(x, getattr(self, name)), [x_index], nchw)
            return
        name = self._weight(_to_nchw_const(alpha, 4) if nchw else alpha)
        self._add(op, lambda x: torch.where(x >= 0, x, x * getattr(self, name)), [x_index], nchw)

    def _unary(self, op: OpInfo, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self._add(op, fn, [op.inputs[0]], self._nchw[op.inputs[0]])

    def _build_relu(self, op: OpInfo) -> None:
        self._unary(op, torch.relu)

    def _build_relu6(self, op: OpInfo) -> None:
        self._unary(op, lambda x: x.clamp(0.0, 6.0))

    def _build_logistic(self, op: OpInfo) -> None:
        self._unary(op, torch.sigmoid)

    def _build_tanh(self, op: OpInfo) -> None:
        self._unary(op, torch.tanh)

    def _build_dequantize(self, op: OpInfo) -> None:  # on an activation (constants are folded)
        self._unary(op, lambda x: x.float())

    def _build_max_pool_2d(self, op: OpInfo) -> None:
        x_index = op.inputs[0]
        if not self._nchw[x_index]:
            raise self._unsupported(op, "on a tensor that is not rank 4")
        _, h, w, _ = self._shape(x_index)
        o = op.options
        kernel, stride = (o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"])
        pad = (0, 0, 0, 0)
        if o["padding"] == _PADDING_SAME:
            ph = _same_padding(h, kernel[0], stride[0], 1)
            pw = _same_padding(w, kernel[1], stride[1], 1)
            pad = (pw[0], pw[1], ph[0], ph[1])
        act = self._activation(op)

        def pool(x: torch.Tensor) -> torch.Tensor:
            if any(pad):
                x = F.pad(x, pad, value=float("-inf"))
            y = F.max_pool2d(x, kernel, stride)
            return act(y) if act is not None else y

        self._add(op, pool, [x_index], True)

    def _build_pad(self, op: OpInfo) -> None:
        x_index, pad_index = op.inputs[:2]
        pads = self._const(pad_index).reshape(-1, 2).astype(int)  # per NHWC axis: before, after
        nchw = self._nchw[x_index]
        if op.name == "PADV2" or len(op.inputs) > 2:
            raise self._unsupported(op, "with a padding value")
        axes = [0, 3, 1, 2] if nchw else list(range(len(pads)))
        flat: list[int] = []
        for axis in reversed(axes):  # F.pad lists the last axis first
            flat += [int(pads[axis][0]), int(pads[axis][1])]
        while len(flat) > 2 and flat[-2:] == [0, 0]:
            flat = flat[:-2]
        pad = tuple(flat)
        self._add(op, lambda x: F.pad(x, pad), [x_index], nchw)
        spatial_only = nchw and not pads[0].any() and not pads[3].any()
        if spatial_only and self._consumers.get(op.outputs[0], 0) == 1 and op.outputs[0] not in self.output_indices:
            self._spatial_pads[op.outputs[0]] = (x_index, (*pads[1].tolist(), *pads[2].tolist()))

    def _build_reshape(self, op: OpInfo) -> None:
        x_index = op.inputs[0]
        shape = self._shape(op.outputs[0])
        nchw_in = self._nchw[x_index]
        nchw_out = len(shape) == 4
        tail = tuple(shape[1:])

        def reshape(x: torch.Tensor) -> torch.Tensor:
            if nchw_in:
                x = x.permute(0, 2, 3, 1)
            y = x.reshape((x.shape[0],) + tail)
            return y.permute(0, 3, 1, 2) if nchw_out else y

        self._add(op, reshape, [x_index], nchw_out)

    def _build_concatenation(self, op: OpInfo) -> None:
        rank = len(self._shape(op.inputs[0]))
        axis = op.options["axis"] % rank
        layouts = {self._nchw[i] for i in op.inputs}
        if len(layouts) > 1:
            raise self._unsupported(op, "on tensors of different layouts")
        nchw = layouts.pop()
        dim = _nhwc_to_nchw_axis(axis) if nchw else axis
        act = self._activation(op)

        def concat(*xs: torch.Tensor) -> torch.Tensor:
            y = torch.cat(xs, dim)
            return act(y) if act is not None else y

        self._add(op, concat, list(op.inputs), nchw)

    def _build_resize_bilinear(self, op: OpInfo) -> None:
        x_index, size_index = op.inputs
        out_h, out_w = (int(v) for v in self._const(size_index))
        o = op.options
        if not self._nchw[x_index]:
            raise self._unsupported(op, "on a tensor that is not rank 4")
        if o["align_corners"]:
            fn = lambda x: F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=True)  # noqa: E731
        elif o["half_pixel_centers"]:
            fn = lambda x: F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)  # noqa: E731
        else:
            _, in_h, in_w, _ = self._shape(x_index)
            fn = _legacy_resize(in_h, in_w, out_h, out_w)
        self._add(op, fn, [x_index], True)

    def _build_depth_to_space(self, op: OpInfo) -> None:
        x_index = op.inputs[0]
        bs = op.options["block_size"]

        def depth_to_space(x: torch.Tensor) -> torch.Tensor:
            # TFLite's channel order is (row in block, column in block, channel): unlike
            # pixel_shuffle's (channel, row, column).
            n, c, h, w = x.shape
            y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
            return y.reshape(n, c // (bs * bs), h * bs, w * bs)

        self._add(op, depth_to_space, [x_index], True)

    def _build_strided_slice(self, op: OpInfo) -> None:
        x_index, b_index, e_index, s_index = op.inputs
        begin, end, strides = (self._const(i).astype(int).tolist() for i in (b_index, e_index, s_index))
        o = op.options
        if o["ellipsis_mask"] or o["new_axis_mask"] or o.get("offset"):
            raise self._unsupported(op, "with ellipsis, new-axis or offset masks")
        if begin[0] != 0 or not (o["end_mask"] & 1 or end[0] in (0, 1, -1)) or strides[0] != 1:
            raise self._unsupported(op, "slicing the batch axis")
        nchw_in = self._nchw[x_index]
        index: list[Any] = [slice(None)]
        keep: list[int] = [0]
        for axis in range(1, len(begin)):
            b = None if o["begin_mask"] >> axis & 1 else begin[axis]
            e = None if o["end_mask"] >> axis & 1 else end[axis]
            if o["shrink_axis_mask"] >> axis & 1:
                index.append(begin[axis])
            else:
                index.append(slice(b, e, strides[axis]))
                keep.append(axis)
        nchw_out = len(self._shape(op.outputs[0])) == 4
        idx = tuple(index)

        def strided_slice(x: torch.Tensor) -> torch.Tensor:
            if nchw_in:
                x = x.permute(0, 2, 3, 1)
            y = x[idx]
            return y.permute(0, 3, 1, 2) if nchw_out else y

        self._add(op, strided_slice, [x_index], nchw_out)

    # -- MediaPipe's custom operators (face_landmark_with_attention), version 2 -----------------
    def _require_version(self, op: OpInfo, version: int) -> None:
        if op.options.get("version") != version:
            raise self._unsupported(op, f"version {op.options.get('version')}, expected {version}")

    def _build_landmarks2transformmatrix(self, op: OpInfo) -> None:
        """The affine map from an ``output_width x output_height`` patch to the landmarks' frame
        that covers the subset's box after turning the left-right line to the target angle."""
        self._require_version(op, 2)
        o = op.options
        subset = torch.tensor(np.asarray(o["subset_idxs"], np.int64).reshape(-1))
        left, right = int(o["left_rotation_idx"]), int(o["right_rotation_idx"])
        out_w, out_h = float(o["output_width"]), float(o["output_height"])
        scale_x, scale_y = float(o["scale_x"]), float(o["scale_y"])
        target = float(o.get("target_rotation_radians", 0.0))

        def landmarks_to_matrix(x: torch.Tensor) -> torch.Tensor:
            xy = x[..., :2]
            d = xy[:, right] - xy[:, left]
            rot = target - torch.atan2(d[:, 1], d[:, 0])
            c, s = torch.cos(rot)[:, None], torch.sin(rot)[:, None]
            pts = xy[:, subset.to(x.device)]
            px, py = c * pts[..., 0] - s * pts[..., 1], s * pts[..., 0] + c * pts[..., 1]
            lo_x, hi_x, lo_y, hi_y = px.amin(1), px.amax(1), py.amin(1), py.amax(1)
            mx, my = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
            c, s = c[:, 0], s[:, 0]
            centre_x, centre_y = c * mx + s * my, -s * mx + c * my  # rotated back
            sx, sy = scale_x * (hi_x - lo_x) / out_w, scale_y * (hi_y - lo_y) / out_h
            m00, m01, m10, m11 = c * sx, s * sy, -s * sx, c * sy
            tx = centre_x - (m00 * out_w + m01 * out_h) / 2
            ty = centre_y - (m10 * out_w + m11 * out_h) / 2
            zero, one = torch.zeros_like(c), torch.ones_like(c)
            rows = [[m00, m01, zero, tx], [m10, m11, zero, ty], [zero, zero, one, zero], [zero, zero, zero, one]]
            return torch.stack([torch.stack(r, -1) for r in rows], 1)

        self._add(op, landmarks_to_matrix, [op.inputs[0]], False)

    def _build_transformtensorbilinear(self, op: OpInfo) -> None:
        """Features ``(N, C, H, W)`` sampled at the matrix's map of an output grid; an output pixel
        whose source falls outside the map is zero (not blended with the border)."""
        self._require_version(op, 2)
        x_index, m_index = op.inputs
        if not self._nchw[x_index]:
            raise self._unsupported(op, "on a tensor that is not rank 4")
        out_h, out_w = int(op.options["output_height"]), int(op.options["output_width"])

        def transform_tensor(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            _, _, h, w = x.shape
            oy, ox = torch.meshgrid(torch.arange(out_h, device=x.device, dtype=m.dtype),
                                    torch.arange(out_w, device=x.device, dtype=m.dtype), indexing="ij")
            # version 2's align-corners correction: T -> S(-0.5) T S(+0.5)
            tx = m[:, 0, 3] + (m[:, 0, 0] + m[:, 0, 1]) * 0.5 - 0.5
            ty = m[:, 1, 3] + (m[:, 1, 0] + m[:, 1, 1]) * 0.5 - 0.5
            sx = m[:, 0, 0, None, None] * ox + m[:, 0, 1, None, None] * oy + tx[:, None, None]
            sy = m[:, 1, 0, None, None] * ox + m[:, 1, 1, None, None] * oy + ty[:, None, None]
            inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
            grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], -1).to(x.dtype)
            out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            return out * inside[:, None].to(x.dtype)

        self._add(op, transform_tensor, [x_index, m_index], True)

    def _build_transformlandmarks(self, op: OpInfo) -> None:
        """``(N, K, 2)`` points through the matrix's first two rows (z would pass unchanged)."""
        self._require_version(op, 2)
        x_index, m_index = op.inputs
        if self._nchw[x_index] or self._shape(x_index)[-1] != 2:
            raise self._unsupported(op, f"on landmarks shaped {self._shape(x_index)}, expected (1, K, 2)")

        def transform_landmarks(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return x @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 3]

        self._add(op, transform_landmarks, [x_index, m_index], False)

    def _plan_frees(self) -> None:
        """Drop folded PADs; free each activation after the last step that reads it (memory at
        batch 256); let a step overwrite its first input when that input dies with it."""
        self._steps = [s for s in self._steps if s[3] not in self._folded_pads]
        last: dict[int, int] = {}
        for k, (_, _, inputs, _) in enumerate(self._steps):
            for i in inputs:
                last[i] = k
        keep = set(self.output_indices) | {self.input_index}
        self._free_after = [[] for _ in self._steps]
        for i, k in last.items():
            if i not in keep:
                self._free_after[k].append(i)
        # Only a tensor that owns its memory may be overwritten: RESHAPE, STRIDED_SLICE and the
        # like return views that share memory with a tensor another step may still read.
        producer = {step[3]: step[0] for step in self._steps}
        for k, step in enumerate(self._steps):
            inplace = self._inplace.get(step[3])
            first = step[2][0] if step[2] else None
            if (inplace is not None and first in self._free_after[k] and step[2].count(first) == 1
                    and producer.get(first) in _OWNING_OPS):
                step[1] = inplace

    # -- running --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        expected = tuple(self.input_shape[1:])
        if x.ndim != len(self.input_shape) or tuple(x.shape[1:]) != expected:
            from evalkit.errors import ShapeError

            raise ShapeError(f"{self.path.name} input", f"(N, {', '.join(map(str, expected))})", tuple(x.shape))
        values: dict[int, torch.Tensor] = {}
        values[self.input_index] = x.permute(0, 3, 1, 2) if self._nchw[self.input_index] else x
        for (_, fn, inputs, out), free in zip(self._steps, self._free_after):
            values[out] = fn(*(values[i] for i in inputs))
            for i in free:
                del values[i]
        return [values[i].permute(0, 2, 3, 1) if self._nchw[i] else values[i] for i in self.output_indices]

    def extra_repr(self) -> str:
        return f"{self.path.name}: {len(self._steps)} steps, input {self.input_shape}"


def _legacy_resize(in_h: int, in_w: int, out_h: int, out_w: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """RESIZE_BILINEAR without align_corners or half-pixel centres: source = dest * in / out."""

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).float()

    (y0, y1, fy), (x0, x1, fx) = axis(in_h, out_h), axis(in_w, out_w)

    def resize(x: torch.Tensor) -> torch.Tensor:
        d = x.device
        fyd, fxd = fy.to(d, x.dtype)[:, None], fx.to(d, x.dtype)[None, :]
        top = x[:, :, y0.to(d)][..., x0.to(d)] * (1 - fxd) + x[:, :, y0.to(d)][..., x1.to(d)] * fxd
        bottom = x[:, :, y1.to(d)][..., x0.to(d)] * (1 - fxd) + x[:, :, y1.to(d)][..., x1.to(d)] * fxd
        return top * (1 - fyd) + bottom * fyd

    return resize


def load_tflite(path: str | Path) -> TFLiteModule:
    """The ``.tflite`` file at ``path`` as a :class:`TFLiteModule` (float32, CPU, eval mode)."""
    return TFLiteModule(read_graph(path)).eval()

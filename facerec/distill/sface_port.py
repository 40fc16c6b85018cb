"""SFace's published ONNX graph -> an :class:`~facerec.models.sface.SFaceNet` state dict (training time).

The OpenCV model zoo file (``face_recognition_sface_2021dec_int8bq.onnx``, Apache-2.0) stores every
weight int8, block-quantised (``DequantizeLinear`` with ``block_size``: per output row, one scale and
zero point per block of 64 input channels, 9 for depthwise kernels), and keeps inference-mode batch
norms after each convolution. The conversion:

1. dequantises every ``DequantizeLinear`` exactly as ONNX defines it, ``(q - zero_point) * scale``
   with the scale repeated over its block, and applies the ``Reshape`` that follows;
2. folds each batch norm into the convolution before it (``w * g / sqrt(v + eps)``, bias
   ``b - m * g / sqrt(v + eps)``), and the last two (on the 7x7 map, and on the 128-d output)
   into the final linear;
3. folds SFace's input transform ``(x - 127.5) / 128`` into ``conv_1`` so the network takes
   facerec's RGB in [-1, 1]. The graph's input is RGB: ``cv2.FaceRecognizerSF.feature`` is given a
   BGR crop and swaps it (``blobFromImage(..., swapRB=true)``); fed BGR, the graph agrees with
   OpenCV's own output only to cosine ~0.96 (measured), so no channel is reversed here.

Every structural fact is read from the graph and checked against ``SFaceNet`` (strides, groups,
shapes, epsilons), so a different file fails with a message instead of giving a wrong network.
Needs the ``onnx`` package; facerec never needs the ONNX file at run time: the converted weights
ship inside facerec's own model file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from facerec.core.errors import DataError
from ..models.sface import STAGES, SFaceNet

_WEIGHT = re.compile(r"^conv_(\d+)(_dw)?_conv2d_weight")


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear`` (opset 21): per-tensor, per-axis or blocked along ``axis``."""
    q = q.astype(np.float64)
    zp = np.zeros_like(scale, dtype=np.float64) if zero_point is None else zero_point.astype(np.float64)
    scale = scale.astype(np.float64)
    if scale.ndim == 0 or scale.size == 1:
        return ((q - zp.reshape(())) * scale.reshape(())).astype(np.float32)
    axis = axis % q.ndim
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
    else:
        shape = [1] * q.ndim
        shape[axis] = q.shape[axis]
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_graph(path: str | Path) -> tuple[dict[str, np.ndarray], list]:
    """Initializers (dequantised and reshaped where the graph does it) and the graph's nodes."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise DataError(f"SFace model {path} does not exist")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # onnx raises DecodeError and others for a file that is not a model
        raise DataError(f"{path}: not an ONNX model ({type(err).__name__})") from None
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            values[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        elif node.op_type == "DequantizeLinear" and node.input[0] in values:
            a = _attrs(node)
            zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            values[node.output[0]] = dequantize(values[node.input[0]], values[node.input[1]], zp,
                                                a.get("axis", 1), a.get("block_size", 0))
        elif node.op_type == "Reshape" and node.input[0] in values and node.input[1] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]].astype(np.int64))
    return values, list(graph.node)


def _bn(values: dict, node) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` of an inference batch norm: ``y = x * scale + shift``."""
    gamma, beta, mean, var = (values[name].astype(np.float64) for name in node.input[1:5])
    scale = gamma / np.sqrt(var + _attrs(node).get("epsilon", 1e-5))
    return scale, beta - mean * scale


def convert(path: str | Path, width_div: int = 1) -> dict[str, torch.Tensor]:
    """The state dict of ``SFaceNet(width_div)`` holding the weights of the SFace graph at ``path``."""
    values, nodes = read_graph(path)
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_next(node, op: str):
        nxt = consumers.get(node.output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != op:
            raise DataError(f"SFace graph: {node.name or node.output[0]} is not followed by one {op}")
        return nxt[0]

    state: dict[str, np.ndarray] = {}
    convs = [n for n in nodes if n.op_type == "Conv"]
    if len(convs) != 2 * len(STAGES) - 1:
        raise DataError(f"SFace graph: {len(convs)} convolutions, expected {2 * len(STAGES) - 1}")
    for conv in convs:
        match = _WEIGHT.match(conv.input[1])
        if not match or conv.input[1] not in values:
            raise DataError(f"SFace graph: unexpected convolution weight {conv.input[1]!r}")
        stage, depthwise = int(match.group(1)), bool(match.group(2))
        a = _attrs(conv)
        stride = STAGES[stage - 1][2] if (depthwise or stage == 1) else 1
        if list(a.get("strides", [1, 1])) != [stride, stride] or (a.get("group", 1) > 1) != depthwise:
            raise DataError(f"SFace graph: conv_{stage} has strides {a.get('strides')} / group {a.get('group')}")
        weight = values[conv.input[1]].astype(np.float64)
        bias = values[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        bn = only_next(conv, "BatchNormalization")
        scale, shift = _bn(values, bn)
        prelu = only_next(bn, "PRelu")
        key = f"stages.{stage - 1}.{'dw' if depthwise else 'pw'}"
        state[f"{key}.weight"] = weight * scale[:, None, None, None]
        state[f"{key}.bias"] = bias * scale + shift
        state[f"stages.{stage - 1}.{'dw_act' if depthwise else 'act'}.weight"] = values[prelu.input[1]].reshape(-1)
    _fold_input(values, nodes, state)
    _fold_head(values, nodes, consumers, state)
    model = SFaceNet(width_div=width_div, embedding_dim=len(state["fc.bias"]))
    wanted = model.state_dict()
    if set(state) != set(wanted):
        raise DataError(f"SFace graph: weights {sorted(set(wanted) ^ set(state))[:4]} do not match the network")
    for key, value in state.items():
        if tuple(value.shape) != tuple(wanted[key].shape):
            raise DataError(f"SFace graph: {key} is {tuple(value.shape)}, the network needs {tuple(wanted[key].shape)}")
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


def _fold_input(values: dict, nodes: list, state: dict) -> None:
    """SFace computes ``(rgb - a) * b``; facerec feeds ``rgb / 127.5 - 1``. With ``a = 127.5`` that
    is ``x * 127.5 * b``: scale conv_1's weights (its zero padding stays zero either way)."""
    sub = next((n for n in nodes if n.op_type == "Sub"), None)
    mul = next((n for n in nodes if n.op_type == "Mul"), None)
    if sub is None or mul is None:
        raise DataError("SFace graph: no input normalisation (Sub, Mul) found")
    offset, factor = float(values[sub.input[1]].reshape(())), float(values[mul.input[1]].reshape(()))
    if offset != 127.5:
        raise DataError(f"SFace graph subtracts {offset} from the input; the port folds only 127.5")
    state["stages.0.pw.weight"] = state["stages.0.pw.weight"] * (127.5 * factor)


def _fold_head(values: dict, nodes: list, consumers: dict, state: dict) -> None:
    """bn1 (per channel of the last map) -> flatten -> Gemm -> fc1 (batch norm) as one linear."""
    gemm = next((n for n in nodes if n.op_type == "Gemm"), None)
    norms = [n for n in nodes if n.op_type == "BatchNormalization"]
    if gemm is None or len(norms) != 2 * len(STAGES) - 1 + 2:
        raise DataError("SFace graph: the head (batch norm, flatten, Gemm, batch norm) was not found")
    a = _attrs(gemm)
    weight = values[gemm.input[1]].astype(np.float64) * a.get("alpha", 1.0)
    if not a.get("transB", 0):
        weight = weight.T
    bias = values[gemm.input[2]].astype(np.float64).reshape(-1) * a.get("beta", 1.0)
    out_norm = next((n for n in consumers.get(gemm.output[0], []) if n.op_type == "BatchNormalization"), None)
    map_norm = next((n for n in norms if n is not out_norm and consumers.get(n.output[0]) and
                     all(c.op_type in ("Dropout", "Flatten") for c in consumers[n.output[0]])), None)
    if out_norm is None or map_norm is None:
        raise DataError("SFace graph: the batch norms around the head (before flatten, after Gemm) were not found")
    scale, shift = _bn(values, map_norm)
    per_input = weight.shape[1] // len(scale)
    weight, bias = weight * np.repeat(scale, per_input)[None], bias + weight @ np.repeat(shift, per_input)
    scale, shift = _bn(values, out_norm)
    state["fc.weight"] = weight * scale[:, None]
    state["fc.bias"] = bias * scale + shift


def load(path: str | Path) -> SFaceNet:
    """The full SFace network converted from ``path`` (eval mode)."""
    net = SFaceNet()
    net.load_state_dict(convert(path))
    return net.eval()

"""The SFace port (distill/sface_port.py) against a small reference graph built here with SFace's
exact structure (int8 block-quantised weights, batch norms, PReLU, the head), run by onnxruntime.
The real file is checked on 200 LFW crops by ``tools/check_sface_port.py`` (docs/BENCHMARKS.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from facerec.data.transforms import to_tensor  # noqa: E402
from facerec.distill.sface_port import convert, dequantize  # noqa: E402
from facerec.core.errors import DataError  # noqa: E402
from facerec.models.sface import STAGES, SFaceNet, stage_stride  # noqa: E402

DIV, EMB = 8, 16


def _quantized(name: str, w: np.ndarray, block: int, rng, nodes: list, inits: list) -> str:
    """Add ``w`` to the graph as int8 blocks (per row, per ``block`` inputs) + DequantizeLinear + Reshape."""
    flat = w.reshape(w.shape[0], -1)
    blocks = -(-flat.shape[1] // block)
    zp = rng.integers(-20, 20, size=(flat.shape[0], blocks)).astype(np.int8)
    scale = np.zeros((flat.shape[0], blocks), np.float32)
    q = np.zeros(flat.shape, np.int8)
    for b in range(blocks):
        part = flat[:, b * block:(b + 1) * block]
        scale[:, b] = np.abs(part).max(1) / 100 + 1e-8
        q[:, b * block:(b + 1) * block] = np.clip(np.round(part / scale[:, b:b + 1]) + zp[:, b:b + 1], -128, 127)
    inits += [numpy_helper.from_array(q, f"{name}_quantized"), numpy_helper.from_array(scale, f"{name}_scales"),
              numpy_helper.from_array(zp, f"{name}_zero_point"),
              numpy_helper.from_array(np.array(w.shape, np.int64), f"{name}_shape")]
    nodes += [helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scales", f"{name}_zero_point"],
                               [f"{name}_dequantized"], axis=1, block_size=block),
              helper.make_node("Reshape", [f"{name}_dequantized", f"{name}_shape"], [f"{name}_reshaped"])]
    return f"{name}_reshaped"


def _bn(name: str, x: str, c: int, eps: float, rng, nodes: list, inits: list) -> str:
    params = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 2, c)]
    names = [f"{name}_gamma", f"{name}_beta", f"{name}_moving_mean", f"{name}_moving_var"]
    inits += [numpy_helper.from_array(p.astype(np.float32), n) for p, n in zip(params, names)]
    nodes.append(helper.make_node("BatchNormalization", [x, *names], [name], epsilon=eps))
    return name


def _tiny_sface(path, rng) -> None:
    nodes, inits = [], []
    inits += [numpy_helper.from_array(np.array(127.5, np.float32), "scalar_op1"),
              numpy_helper.from_array(np.array(0.0078125, np.float32), "scalar_op2")]
    nodes += [helper.make_node("Sub", ["data", "scalar_op1"], ["_minus"]),
              helper.make_node("Mul", ["_minus", "scalar_op2"], ["_mul"])]
    x, cin = "_mul", 3
    for stage, cout, stride in STAGES:
        cout //= DIV
        parts = [("conv2d", cout, 3, stride, 1)] if stage == 1 else [("dw", cin, 3, stride, cin), ("", cout, 1, 1, 1)]
        for tag, out, k, s, group in parts:
            prefix = f"conv_{stage}{'_dw' if tag == 'dw' else ''}"
            w = rng.normal(0, 0.3, (out, cin // group, k, k)).astype(np.float32)
            block = 9 if tag == "dw" else (27 if stage == 1 else 64)
            wname = _quantized(f"{prefix}_conv2d_weight", w, block, rng, nodes, inits)
            nodes.append(helper.make_node("Conv", [x, wname], [f"{prefix}_conv2d"], kernel_shape=[k, k], strides=[s, s],
                                          pads=[k // 2] * 4, group=group))
            x = _bn(f"{prefix}_batchnorm", f"{prefix}_conv2d", out, 1e-3, rng, nodes, inits)
            inits.append(numpy_helper.from_array(rng.uniform(-0.3, 0.3, (out, 1, 1)).astype(np.float32),
                                                 f"{prefix}_relu_gamma"))
            nodes.append(helper.make_node("PRelu", [x, f"{prefix}_relu_gamma"], [f"{prefix}_relu"]))
            x = f"{prefix}_relu"
        cin = cout
    x = _bn("bn1", x, cin, 2e-5, rng, nodes, inits)
    nodes.append(helper.make_node("Flatten", [x], ["flat"]))
    side = 112 // stage_stride(len(STAGES))
    w = _quantized("pre_fc1_weight", rng.normal(0, 0.05, (EMB, cin * side * side)).astype(np.float32), 64, rng,
                   nodes, inits)
    inits.append(numpy_helper.from_array(rng.normal(0, 0.1, EMB).astype(np.float32), "pre_fc1_bias"))
    nodes.append(helper.make_node("Gemm", ["flat", w, "pre_fc1_bias"], ["pre_fc1"], transB=1))
    _bn("fc1", "pre_fc1", EMB, 2e-5, rng, nodes, inits)
    graph = helper.make_graph(nodes, "tiny_sface", [helper.make_tensor_value_info("data", TensorProto.FLOAT,
                                                                                  ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", EMB])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("sface") / "tiny.onnx"
    _tiny_sface(path, np.random.default_rng(0))
    return path


def test_the_port_gives_the_reference_graphs_embeddings(tiny):
    images = np.random.default_rng(1).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(tiny), providers=["CPUExecutionProvider"])
    want = session.run(None, {"data": images.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    net = SFaceNet(width_div=DIV, embedding_dim=EMB)
    net.load_state_dict(convert(tiny, width_div=DIV))
    with torch.no_grad():
        got = net(to_tensor(images)).numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.9999, cos
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


def test_the_tail_after_any_stage_is_the_rest_of_the_network(tiny):
    net = SFaceNet(width_div=DIV, embedding_dim=EMB)
    net.load_state_dict(convert(tiny, width_div=DIV))
    x = to_tensor(np.random.default_rng(2).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8))
    with torch.no_grad():
        whole = net(x)
        for k in (1, 6, 12, 14):
            assert torch.allclose(net.tail(net.stem(k)(x), k), whole, atol=1e-5)


def test_blocked_dequantisation_follows_onnx():
    q = np.array([[0, 10, 20, 30, 40]], np.int8)
    scale = np.array([[0.5, 2.0]], np.float32)
    zp = np.array([[10, -5]], np.int8)
    out = dequantize(q, scale, zp, axis=1, block_size=3)  # blocks [0..2] and [3..4]; the last is short
    assert np.allclose(out, [[-5.0, 0.0, 5.0, 70.0, 90.0]])


def test_a_file_that_is_not_sface_is_refused(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError):
        convert(bad)
    with pytest.raises(DataError):
        convert(tmp_path / "missing.onnx")

"""scripts/openvino_ir.py (the IR -> TensorFlow rebuilder of the conversion scripts) on small OpenVINO graphs built
here with the ops the ReID networks use: the rebuilt NHWC TensorFlow graph gives what the OpenVINO runtime gives
(f32) on the same random input, at a batch other than the one it was traced for, and what it cannot rebuild is
refused, not rebuilt differently. The real networks are checked by the scripts themselves (MODELS.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import openvino_ir

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset13")


def _i64(values: list[int]) -> Any:
    return ops.constant(np.array(values, np.int64))


def _f32(values: Any) -> Any:
    return ops.constant(np.asarray(values, np.float32))


def _compare(model: Any, x_nchw: np.ndarray, nhwc_output: bool = False) -> None:
    """The model's single output: TensorFlow (rebuilt, traced for any batch) against OpenVINO f32."""
    import tensorflow as tf

    (result,) = model.get_results()
    output = openvino_ir.node_name(result)
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    want = np.asarray(compiled(x_nchw)[0])
    spec = tf.TensorSpec([None, *np.transpose(x_nchw, (0, 2, 3, 1)).shape[1:]], tf.float32)
    run = tf.function(lambda image: openvino_ir.rebuild(tf, model, [output], image)[0], input_signature=[spec])
    got = run(tf.constant(np.transpose(x_nchw, (0, 2, 3, 1)))).numpy()
    if nhwc_output:
        got = np.transpose(got, (0, 3, 1, 2))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _input(shape: list[int]) -> tuple[Any, np.ndarray]:
    param = ops.parameter([-1, *shape[1:]], np.float32, name="data")
    return param, np.random.default_rng(0).normal(size=shape).astype(np.float32)


def test_a_reid_like_head_matches_openvino_at_another_batch() -> None:
    """Channel Gather (BGR -> RGB), MaxPool with pads (opset 8: two outputs), AvgPool, channel-attention
    ReduceMean / Reshape [0, 4, -1] / MVN / Reshape back by ShapeOf, the embedding's Reshape [-1, C], MatMul,
    Reshape by a Concat of a Gather of ShapeOf, PRelu, Reshape [0, -1]."""
    param, x = _input([3, 8, 12, 8])
    rgb = ops.gather(param, _i64([2, 1, 0, 3, 4, 5, 6, 7]), _i64([1]))
    pooled = ops.max_pool(rgb, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3]).output(0)
    pooled = ops.avg_pool(pooled, [2, 2], [0, 0], [0, 0], [2, 2], exclude_pad=True)
    squeezed = ops.reduce_mean(pooled, _i64([2, 3]), keep_dims=True)
    grouped = ops.reshape(squeezed, _i64([0, 4, -1]), special_zero=True)
    normed = ops.mvn(grouped, _i64([2]), True, 1e-5, "inside_sqrt")
    attention = ops.reshape(normed, ops.shape_of(squeezed), special_zero=True)
    weighted = ops.multiply(pooled, ops.sigmoid(attention))
    flat = ops.reshape(ops.reduce_mean(weighted, _i64([2, 3]), keep_dims=True), _i64([-1, 8]), special_zero=True)
    weights = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    dense = ops.matmul(flat, _f32(weights), transpose_a=False, transpose_b=True)
    batch = ops.gather(ops.shape_of(flat), _i64([0]), _i64([0]))
    column = ops.reshape(dense, ops.concat([batch, _i64([-1]), _i64([1])], 0), special_zero=True)
    out = ops.reshape(ops.prelu(column, _f32([[0.25]])), _i64([0, -1]), special_zero=True)
    _compare(ov.Model([ops.result(out)], [param]), x)


def test_reduce_mean_without_keep_dims_keeps_the_ir_axis_order() -> None:
    """Over H only, without keep_dims: the result is [N, C, W] as in the IR, not NHWC's [N, W, C]."""
    param, x = _input([2, 5, 6, 4])
    out = ops.reduce_mean(param, _i64([2]), keep_dims=False)
    _compare(ov.Model([ops.result(out)], [param]), x)


def test_per_channel_prelu_and_a_4d_reshape_stay_nhwc() -> None:
    """PRelu with one slope a channel, then a 4-D -> 4-D Reshape (NCHW element order), answered NHWC."""
    param, x = _input([2, 3, 4, 6])
    act = ops.prelu(param, _f32([0.1, 0.5, 2.0]))
    out = ops.reshape(act, _i64([0, 6, 2, 6]), special_zero=True)
    _compare(ov.Model([ops.result(out)], [param]), x, nhwc_output=True)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: ops.max_pool(p, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(1), "output 1 of"),
        (lambda p: ops.avg_pool(p, [1, 1], [1, 1], [1, 1], [3, 3], exclude_pad=True), "AvgPool .*: padding"),
        (lambda p: ops.max_pool(p, [2, 2], [1, 1], [0, 0], [0, 0], [3, 3], "ceil").output(0), "unsupported attrib"),
        (lambda p: ops.floor_mod(p, p), "unsupported IR op types before the cut: FloorMod"),
    ],
)
def test_what_it_cannot_rebuild_is_refused(build: Any, message: str) -> None:
    import tensorflow as tf

    param = ops.parameter([1, 3, 8, 8], np.float32, name="data")
    node = build(param)
    model = ov.Model([ops.result(node)], [param])
    (result,) = model.get_results()
    with pytest.raises(openvino_ir.UnsupportedOp, match=message):
        openvino_ir.rebuild(tf, model, [openvino_ir.node_name(result)], tf.zeros([1, 8, 8, 3]))

"""Rebuild (part of) an OpenVINO IR network with TensorFlow ops, for the conversion scripts in ``scripts/``
(``convert_person_detection.py``, ``convert_reid.py``).

No converter package is used (``openvino2tensorflow`` is unmaintained): the IR is read with the ``openvino``
wheel (``ov.Core().read_model``), which gives every op's type, attributes, inputs and constant values, and each op
is rebuilt with a TensorFlow op. Every 4-D feature map is kept NHWC (TensorFlow's CPU layout); the IR's NCHW
semantics are kept by mapping axes (``ShapeOf`` of a 4-D tensor answers in NCHW order, 4-D constants are
transposed, ``MVN`` / ``Interpolate`` / ``ReduceMean`` / ``Gather`` axes are mapped, ``Reshape`` reshapes in NCHW
order). Constants stay numpy, in the IR's layout, until they meet a TensorFlow tensor. Shape sub-graphs
(``ShapeOf``, ``Gather``, ``Range``...) are evaluated with numpy when their inputs are known and otherwise with
TensorFlow ops on the tensors' dynamic shapes, so the rebuilt network takes any input size (or batch) the IR's own
shape logic allows.

``rebuild(tf, model, outputs, image)`` returns the TensorFlow tensors of the named IR ops (``outputs``), computing
only what they need: a network can be cut before its post-processing (TopK, NonMaxSuppression...), or its
``Result`` named to take the whole network. An op type outside :data:`SUPPORTED`, or an attribute an op's rebuild
does not implement, raises :class:`UnsupportedOp` (never a silently different network).

    import openvino as ov, tensorflow as tf
    model = ov.Core().read_model("net.xml")
    maps = rebuild(tf, model, ["622", "626"], image_nhwc_float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: NCHW axis -> NHWC axis.
NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
#: Op types :func:`rebuild` knows.
SUPPORTED = frozenset(
    [
        "Parameter",
        "Constant",
        "Convert",
        "Convolution",
        "GroupConvolution",
        "Add",
        "Subtract",
        "Multiply",
        "Divide",
        "Relu",
        "Clamp",
        "Sigmoid",
        "MVN",
        "Interpolate",
        "ShapeOf",
        "StridedSlice",
        "Squeeze",
        "Unsqueeze",
        "Range",
        "Gather",
        "Concat",
        "Floor",
        "MaxPool",
        "AvgPool",
        "ReduceMean",
        "Reshape",
        "MatMul",
        "PRelu",
        "Result",
    ]
)


class UnsupportedOp(RuntimeError):
    """An op type or attribute this module cannot rebuild."""


def node_name(op: Any) -> str:
    return str(op.get_friendly_name())


def ancestors(model: Any, names: Sequence[str]) -> list[Any]:
    """The ops ``names`` depend on (themselves included), in the model's topological order."""
    by_name = {node_name(op): op for op in model.get_ordered_ops()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"no op named {', '.join(missing)} in the IR")
    seen: set[str] = set()
    stack = [by_name[n] for n in names]
    while stack:
        op = stack.pop()
        name = node_name(op)
        if name in seen:
            continue
        seen.add(name)
        stack.extend(i.get_source_output().get_node() for i in op.inputs())
    return [op for op in model.get_ordered_ops() if node_name(op) in seen]


def _const(op: Any) -> np.ndarray:
    value = np.array(op.get_data())
    return value.astype(np.float32) if value.dtype == np.float16 else value


def _is_tf(x: Any) -> bool:
    return not isinstance(x, np.ndarray)


def _rank(x: Any) -> int:
    return x.ndim if isinstance(x, np.ndarray) else int(x.shape.rank)


def _np_dtype(element_type: Any) -> Any:
    name = str(element_type.get_type_name())
    return {"f16": np.float32, "f32": np.float32, "bf16": np.float32, "i32": np.int32, "i64": np.int64}[name]


def rebuild(tf: Any, model: Any, outputs: Sequence[str], image: Any, half_weights: bool = False) -> list[Any]:
    """TensorFlow tensors of the IR ops ``outputs`` for ``image`` (NHWC float32; the IR's single Parameter).

    ``half_weights``: convolution weights that are exactly float16 values (an FP16 IR's) are stored as float16
    constants followed by a cast (lossless; the SavedModel is half the size).

    Raises :class:`UnsupportedOp` for an op type or attribute outside :data:`SUPPORTED`."""
    ops = ancestors(model, outputs)
    unknown = sorted({op.get_type_name() for op in ops} - SUPPORTED)
    if unknown:
        raise UnsupportedOp(f"unsupported IR op types before the cut: {', '.join(unknown)}")
    values: dict[tuple[str, int], Any] = {}

    def tensor4(x: Any) -> Any:
        """A value used beside a 4-D NHWC tensor: 4-D constants transposed NCHW -> NHWC."""
        if isinstance(x, np.ndarray):
            if x.ndim == 4:
                x = x.transpose(0, 2, 3, 1)
            return tf.constant(x.astype(np.float32) if x.dtype.kind == "f" else x)
        return x

    def axes(value: Any, of_rank: int) -> list[int]:
        got = [int(a) % of_rank for a in np.asarray(value).reshape(-1)]
        return sorted(NCHW_TO_NHWC_AXIS[a] for a in got) if of_rank == 4 else got

    def weight(w: np.ndarray) -> Any:
        w = np.ascontiguousarray(w, np.float32)
        if half_weights and np.array_equal(w.astype(np.float16).astype(np.float32), w):
            return tf.cast(tf.constant(w.astype(np.float16)), tf.float32)
        return tf.constant(w)

    def pads(attrs: dict[str, Any]) -> list[list[int]]:
        if attrs.get("auto_pad", "explicit") not in ("explicit", "notset"):
            raise UnsupportedOp(f"auto_pad {attrs['auto_pad']}")
        top, left = attrs["pads_begin"]
        bottom, right = attrs["pads_end"]
        return [[0, 0], [int(top), int(bottom)], [int(left), int(right)], [0, 0]]

    def reshape(x: Any, shape: Any, special_zero: bool, name: str) -> Any:
        """``Reshape`` in the IR's (NCHW) element order: a 4-D tensor goes NCHW first, a 4-D result NHWC after."""
        source = tf.transpose(x, [0, 3, 1, 2]) if _is_tf(x) and _rank(x) == 4 else tf.convert_to_tensor(x)
        if isinstance(shape, np.ndarray):
            dims = [int(d) for d in shape.reshape(-1)]
            if 0 in dims and not special_zero:
                raise UnsupportedOp(f"Reshape {name}: a zero dimension without special_zero")
            out_rank = len(dims)
            if 0 in dims:  # a 0 copies the input's dimension
                dynamic = tf.shape(source, out_type=tf.int64)
                dims = tf.stack([dynamic[i] if d == 0 else tf.constant(d, tf.int64) for i, d in enumerate(dims)])
            out = tf.reshape(source, dims)
        else:
            if shape.shape.rank != 1 or shape.shape[0] is None:
                raise UnsupportedOp(f"Reshape {name}: target shape of unknown length")
            out_rank = int(shape.shape[0])
            computed = tf.cast(shape, tf.int64)
            if special_zero and out_rank <= _rank(source):  # a 0 copies the input's dimension
                computed = tf.where(tf.equal(computed, 0), tf.shape(source, out_type=tf.int64)[:out_rank], computed)
            out = tf.reshape(source, computed)
        out.set_shape([None] * out_rank)
        return tf.transpose(out, [0, 2, 3, 1]) if out_rank == 4 else out

    def binary(kind: str, a: Any, b: Any) -> Any:
        if not _is_tf(a) and not _is_tf(b):
            if kind == "Divide" and a.dtype.kind in "iu" and b.dtype.kind in "iu":
                return np.floor_divide(a, b)
            result = {"Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply, "Divide": np.divide}[kind](a, b)
            return result.astype(np.float32) if result.dtype.kind == "f" else result
        if max(_rank(a), _rank(b)) == 4:
            a, b = tensor4(a), tensor4(b)
            if _rank(a) != _rank(b) and min(_rank(a), _rank(b)) > 1:
                raise UnsupportedOp(f"{kind}: broadcast between ranks {_rank(a)} and {_rank(b)}")
        else:
            a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
            if a.dtype != b.dtype:
                b = tf.cast(b, a.dtype)
        fn = {"Add": tf.add, "Subtract": tf.subtract, "Multiply": tf.multiply, "Divide": tf.math.truediv}[kind]
        if kind == "Divide" and a.dtype.is_integer:
            fn = tf.math.floordiv
        return fn(a, b)

    for op in ops:
        kind = op.get_type_name()
        name = node_name(op)
        attrs = op.get_attributes()
        args = []
        for i in op.inputs():
            source = (node_name(i.get_source_output().get_node()), i.get_source_output().get_index())
            if source not in values:
                raise UnsupportedOp(f"{kind} {name}: its input is output {source[1]} of {source[0]}, not rebuilt")
            args.append(values[source])
        out: Any
        if kind == "Constant":
            out = _const(op)
        elif kind == "Parameter":
            out = image
        elif kind == "Convert":
            x = args[0]
            dtype = _np_dtype(op.get_output_element_type(0))
            out = x.astype(dtype) if isinstance(x, np.ndarray) else tf.cast(x, tf.as_dtype(dtype))
        elif kind == "Convolution":
            x, w = args
            if list(attrs["dilations"]) != [1, 1]:
                raise UnsupportedOp(f"Convolution {name}: dilations {attrs['dilations']}")
            out = tf.nn.conv2d(
                x,
                weight(w.transpose(2, 3, 1, 0)),
                strides=[1, *[int(s) for s in attrs["strides"]], 1],
                padding=pads(attrs),
            )
        elif kind == "GroupConvolution":
            x, w = args
            groups, per_out, per_in, kh, kw = w.shape
            if per_out != 1 or per_in != 1:
                raise UnsupportedOp(f"GroupConvolution {name}: not depthwise ({w.shape})")
            stride = [int(s) for s in attrs["strides"]]
            if stride[0] != stride[1] or list(attrs["dilations"]) != [1, 1]:
                raise UnsupportedOp(f"GroupConvolution {name}: strides {stride}, dilations {attrs['dilations']}")
            padding = pads(attrs)
            if any(p for pair in padding for p in pair):
                x = tf.pad(x, padding)
            out = tf.nn.depthwise_conv2d(
                x, weight(w.reshape(groups, kh, kw).transpose(1, 2, 0)[..., None]), [1, *stride, 1], "VALID"
            )
        elif kind in ("Add", "Subtract", "Multiply", "Divide"):
            if attrs.get("auto_broadcast", "numpy") != "numpy":
                raise UnsupportedOp(f"{kind} {name}: auto_broadcast {attrs['auto_broadcast']}")
            out = binary(kind, *args)
        elif kind == "Relu":
            out = tf.nn.relu(args[0])
        elif kind == "Clamp":
            low, high = float(attrs["min"]), float(attrs["max"])
            out = tf.nn.relu6(args[0]) if (low, high) == (0.0, 6.0) else tf.clip_by_value(args[0], low, high)
        elif kind == "Sigmoid":
            out = tf.sigmoid(args[0])
        elif kind == "MVN":
            x, ax = args
            if not attrs.get("normalize_variance") or attrs.get("eps_mode", "").upper() != "INSIDE_SQRT":
                raise UnsupportedOp(f"MVN {name}: unsupported attributes {attrs}")
            if _is_tf(ax):
                raise UnsupportedOp(f"MVN {name}: axes not constant")
            mean, var = tf.nn.moments(x, axes(ax, _rank(x)), keepdims=True)
            out = (x - mean) * tf.math.rsqrt(var + float(attrs["eps"]))
        elif kind == "Interpolate":
            x, sizes, _scales, ax = args
            if (attrs["mode"], attrs["coordinate_transformation_mode"]) != ("nearest", "asymmetric") or attrs.get(
                "nearest_mode"
            ) not in ("simple", "floor"):
                raise UnsupportedOp(f"Interpolate {name}: unsupported attributes {attrs}")
            if _is_tf(ax) or axes(ax, 4) != [1, 2]:
                raise UnsupportedOp(f"Interpolate {name}: axes {ax} are not the spatial ones")
            # floor(out * in / out) for upscaling by an integer factor: what 'simple' nearest does for scale >= 1
            out = tf.compat.v1.image.resize_nearest_neighbor(
                x, tf.cast(sizes, tf.int32), align_corners=False, half_pixel_centers=False
            )
        elif kind == "ShapeOf":
            x = args[0]
            if isinstance(x, np.ndarray):
                out = np.array(x.shape, np.int64)
            elif x.shape.is_fully_defined() and _rank(x) != 4:
                out = np.array(x.shape.as_list(), np.int64)
            else:
                shape = tf.shape(x, out_type=tf.int64)
                out = tf.gather(shape, [0, 3, 1, 2]) if _rank(x) == 4 else shape
        elif kind == "StridedSlice":
            x, begin, end, stride = args
            if _rank(x) != 1 or any(_is_tf(v) for v in (begin, end, stride)):
                raise UnsupportedOp(f"StridedSlice {name}: only constant slices of 1-D tensors")
            if any(any(attrs[k]) for k in ("new_axis_mask", "shrink_axis_mask", "ellipsis_mask")):
                raise UnsupportedOp(f"StridedSlice {name}: unsupported masks {attrs}")
            b = None if attrs["begin_mask"][0] else int(begin[0])
            e = None if attrs["end_mask"][0] else int(end[0])
            e = None if e is not None and e >= 2**31 - 1 else e
            out = x[b : e : int(stride[0])]
        elif kind in ("Squeeze", "Unsqueeze"):
            x = args[0]
            ax = [int(a) for a in np.asarray(args[1]).reshape(-1)] if len(args) > 1 else None
            if _rank(x) == 4:
                raise UnsupportedOp(f"{kind} {name} of a 4-D tensor")
            if isinstance(x, np.ndarray):
                out = np.squeeze(x, tuple(ax) if ax is not None else None) if kind == "Squeeze" else x
                if kind == "Unsqueeze":
                    for a in sorted(ax or []):
                        out = np.expand_dims(out, a)
            elif kind == "Squeeze":
                out = tf.squeeze(x, ax)
            else:
                out = x
                for a in sorted(ax or []):
                    out = tf.expand_dims(out, a)
        elif kind == "Range":
            start, stop, step = args
            if any(_is_tf(v) for v in args):
                out = tf.range(start, stop, step)
            else:
                out = np.arange(start, stop, step).astype(_np_dtype(op.get_output_element_type(0)))
        elif kind == "Gather":
            data, index, axis = args
            axis = int(np.asarray(axis).reshape(-1)[0])
            if int(attrs.get("batch_dims", 0)) != 0:
                raise UnsupportedOp(f"Gather {name}: batch_dims {attrs['batch_dims']}")
            if isinstance(data, np.ndarray) and isinstance(index, np.ndarray):
                out = np.take(data, index, axis=axis)
            elif _rank(data) == 4:
                # e.g. BGR -> RGB on the channels: a 1-D constant index keeps the rank, the axis is mapped
                if not _is_tf(data) or _is_tf(index) or np.ndim(index) != 1:
                    raise UnsupportedOp(f"Gather {name}: on a 4-D tensor only a 1-D constant index of a feature map")
                out = tf.gather(data, tf.constant(index), axis=NCHW_TO_NHWC_AXIS[axis % 4])
            else:
                out = tf.gather(data, index, axis=axis)
        elif kind == "Concat":
            axis = int(attrs["axis"])
            if any(_rank(a) == 4 for a in args):
                raise UnsupportedOp(f"Concat {name} of 4-D tensors")
            if all(isinstance(a, np.ndarray) for a in args):
                out = np.concatenate(args, axis=axis)
            else:
                dtype = next(a.dtype for a in args if _is_tf(a))
                out = tf.concat([tf.cast(a, dtype) for a in args], axis=axis)
        elif kind == "Floor":
            out = np.floor(args[0]) if isinstance(args[0], np.ndarray) else tf.floor(args[0])
        elif kind in ("MaxPool", "AvgPool"):
            x = args[0]
            if not _is_tf(x) or _rank(x) != 4:
                raise UnsupportedOp(f"{kind} {name}: input is not a 4-D feature map")
            if attrs.get("rounding_type", "floor") != "floor" or list(attrs.get("dilations", [1, 1])) != [1, 1]:
                raise UnsupportedOp(f"{kind} {name}: unsupported attributes {attrs}")
            padding = pads(attrs)
            if any(p for pair in padding for p in pair):
                if kind == "AvgPool":
                    raise UnsupportedOp(f"AvgPool {name}: padding {attrs['pads_begin']} {attrs['pads_end']}")
                x = tf.pad(x, padding, constant_values=-np.inf)
            pool = tf.nn.max_pool2d if kind == "MaxPool" else tf.nn.avg_pool2d
            out = pool(x, [int(k) for k in attrs["kernel"]], [int(s) for s in attrs["strides"]], "VALID")
        elif kind == "ReduceMean":
            x, ax = args
            if _is_tf(ax):
                raise UnsupportedOp(f"ReduceMean {name}: axes not constant")
            keep = bool(attrs.get("keep_dims", False))
            reduced = sorted({int(a) % _rank(x) for a in np.asarray(ax).reshape(-1)})
            if isinstance(x, np.ndarray):
                out = np.mean(x, axis=tuple(reduced), keepdims=keep).astype(x.dtype)
            elif not reduced:
                out = x
            elif _rank(x) == 4 and not keep and 1 not in reduced and not {2, 3} <= set(reduced):
                # channels and a spatial axis remain: the result's order is the IR's (NCHW) one
                out = tf.reduce_mean(tf.transpose(x, [0, 3, 1, 2]), reduced)
            else:
                out = tf.reduce_mean(x, axes(reduced, _rank(x)), keepdims=keep)
        elif kind == "Reshape":
            x, shape = args
            special_zero = bool(attrs.get("special_zero", False))
            if isinstance(x, np.ndarray) and isinstance(shape, np.ndarray):
                dims = [x.shape[i] if special_zero and d == 0 else int(d) for i, d in enumerate(shape.reshape(-1))]
                out = x.reshape(dims)
            else:
                out = reshape(x, shape, special_zero, name)
        elif kind == "MatMul":
            a, b = args
            if min(_rank(a), _rank(b)) < 2 or 4 in (_rank(a), _rank(b)):
                raise UnsupportedOp(f"MatMul {name}: operands of ranks {_rank(a)}, {_rank(b)}")
            flip_a, flip_b = bool(attrs.get("transpose_a", False)), bool(attrs.get("transpose_b", False))
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                out = np.matmul(np.swapaxes(a, -1, -2) if flip_a else a, np.swapaxes(b, -1, -2) if flip_b else b)
            else:
                a, b = (weight(v) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for v in (a, b))
                out = tf.linalg.matmul(a, b, transpose_a=flip_a, transpose_b=flip_b)
        elif kind == "PRelu":
            x, slope = args
            if _is_tf(slope) or not _is_tf(x):
                raise UnsupportedOp(f"PRelu {name}: slope not constant or input constant")
            slope = np.asarray(slope, np.float32)
            channels = x.shape[3 if _rank(x) == 4 else 1] if _rank(x) >= 2 else None
            if slope.size == 1:
                factor = tf.constant(slope.reshape(-1)[0])
            elif slope.ndim == 1 and slope.shape[0] == channels:  # one slope a channel (the IR's axis 1)
                factor = tf.constant(slope if _rank(x) == 4 else slope.reshape([-1] + [1] * (_rank(x) - 2)))
            elif _rank(x) != 4 or slope.ndim == 4:
                factor = tensor4(slope) if _rank(x) == 4 else tf.constant(slope)
            else:
                raise UnsupportedOp(f"PRelu {name}: slope of shape {slope.shape} for a 4-D input")
            out = tf.where(x >= 0, x, x * factor)
        elif kind == "Result":
            out = args[0]
        else:  # pragma: no cover - SUPPORTED is checked above
            raise UnsupportedOp(kind)
        # MaxPool's second output (the indices) is not rebuilt: an op reading it is refused above
        for index in range(1 if kind == "MaxPool" else op.get_output_size()):
            values[(name, index)] = out
    by_name = {node_name(op): op for op in ops}
    return [values[(n, 0)] for n in outputs if n in by_name]

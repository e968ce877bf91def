"""A trained model out to other tools: ``safetensors`` weights for PyTorch, an ONNX graph.

    path, notes = export_checkpoint("runs/mnist/best.npz", "onnx")

- ``safetensors``: the model's state dict under PyTorch's names and shapes
  (floats as float32, ``num_batches_tracked`` as int64), so that
  ``torch.nn.Sequential`` of the same layers loads it with ``strict=True``.
- ``onnx``: the model's graph at opset 17 with a dynamic batch axis, the
  input preprocessing folded in where it is linear (``notes`` says what was
  and what was not).

Both read the checkpoint alone (:func:`micrograd.run.restore`). The extra
packages (safetensors, onnx) are imported only here, when an export runs; a
missing one is an :class:`ExportError` naming ``pip install
'micrograd-trainer[export]'``. An output file is written atomically and never
replaces a file unless ``force`` is given.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from micrograd.checkpoint import write_new_file
from micrograd.config.loader import ConfigError

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx"}
OPSET = 17
INSTALL = "pip install 'micrograd-trainer[export]'"


class ExportError(ConfigError):
    """An export that cannot be made as asked (format, output path, layer, missing extra)."""


def export_checkpoint(checkpoint, fmt: str, output=None, *, force: bool = False):
    """Write the checkpoint's model as ``fmt``; returns (the path written, notes).

    ``output`` defaults to ``model.safetensors`` / ``model.onnx`` beside the
    checkpoint. An existing file there is refused unless ``force``.
    """
    from micrograd.run import restore

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _require(fmt)  # before reading the checkpoint: a missing extra is the first thing to say
    checkpoint = Path(checkpoint)
    out = Path(output) if output is not None else checkpoint.parent / f"model{FORMATS[fmt]}"
    if out.is_dir():
        raise ExportError(f"--output {out} is a folder; give a file path")
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; choose another --output, or --force to "
                          f"replace it")
    restored = restore(checkpoint)
    if fmt == "safetensors":
        data, notes = safetensors_bytes(restored), []
    else:
        model, notes = onnx_model(restored)
        data = model.SerializeToString()
    _write(out, data, force)
    return out, notes


def _require(fmt: str) -> None:
    modules = {"safetensors": ["safetensors"], "onnx": ["onnx"]}[fmt]
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            raise ExportError(f"--format {fmt} needs the {name} package: "
                              f"{INSTALL}") from None


def _write(out: Path, data: bytes, force: bool) -> None:
    try:
        write_new_file(out, data, force)
    except FileExistsError as exc:
        raise ExportError(str(exc)) from None


# ------------------------------------------------------------------ safetensors


def torch_state_dict(model) -> dict:
    """The model's state dict as PyTorch keeps it: floats as float32, integer
    buffers (``num_batches_tracked``) as int64."""
    out = {}
    for name, value in model.state_dict().items():
        value = np.asarray(value)
        dtype = np.int64 if value.dtype.kind in "iub" else np.float32
        out[name] = np.array(value, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
    return out


def safetensors_bytes(restored) -> bytes:
    from safetensors.numpy import save

    meta = {"format": "pt", "producer": "micrograd",
            "layers": json.dumps([row.type for row in restored.rows]),
            "input_shape": json.dumps(list(restored.pipeline.input_shape))}
    return save(torch_state_dict(restored.model), metadata=meta)


# ------------------------------------------------------------------ onnx


class _Graph:
    """Nodes and initializers in the making, with fresh value names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._n = [], [], 0

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.initializers.append(self.numpy_helper.from_array(
            np.array(value, dtype=dtype, order="C"), name))
        return name

    def add(self, op: str, inputs: list, name: str, **attrs) -> str:
        self._n += 1
        out = f"{name}_out" if name else f"v{self._n}"
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=name or out, **attrs))
        return out


def onnx_model(restored):
    """The checkpoint's model as an ``onnx.ModelProto`` (checked), and notes in words on
    the preprocessing folded into it and what was left to the caller."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    state = torch_state_dict(restored.model)
    x, in_shape, notes = _fold_preprocessing(g, restored.pipeline)
    shape = tuple(in_shape)
    for row in restored.rows:
        x = _layer(g, row, x, state, shape)
        shape = tuple(row.output_shape)
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    out_shape = ["batch", *map(int, restored.rows[-1].output_shape)]
    ids = _token_ids(restored.pipeline)
    graph = helper.make_graph(
        g.nodes, "micrograd",
        [helper.make_tensor_value_info("input", TensorProto.INT64 if ids else TensorProto.FLOAT,
                                       ["batch", *in_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        g.initializers)
    from micrograd import __version__

    model = helper.make_model(graph, producer_name="micrograd", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # opset 17's; runtimes from 2022 on read it
    meta = {"preprocessing": " ".join(notes), "task": restored.pipeline.task}
    if restored.pipeline.class_names:
        meta["class_names"] = json.dumps(list(restored.pipeline.class_names))
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model, notes


def _fold_preprocessing(g: _Graph, pipeline):
    """Graph input -> the model's input, for the linear part of the pipeline.
    Returns (value name, raw input shape, notes)."""
    kind = pipeline.kind
    shape = [int(n) for n in pipeline.input_shape]
    if kind == "array":
        if pipeline.mean is None:
            return "input", shape, ["input: the features as the model takes them (no scaling "
                                    "was fitted)."]
        x = g.add("Sub", ["input", g.const("input_mean", pipeline.mean)], "standardize_sub")
        x = g.add("Div", [x, g.const("input_std", pipeline.std)], "standardize_div")
        return x, shape, ["input: raw features; (x - mean) / std is in the graph."]
    if kind == "image":
        x = g.add("Sub", ["input", g.const("input_mean", pipeline.mean)], "normalize_sub")
        x = g.add("Div", [x, g.const("input_std", pipeline.std)], "normalize_div")
        return x, shape, [f"input: float pixels in [0, 1], shape (N, {', '.join(map(str, shape))});"
                          f" (x - {pipeline.mean:g}) / {pipeline.std:g} is in the graph. Not "
                          f"folded: scaling 0..255 pixels to [0, 1] (divide by 255 first)."]
    if kind == "tabular" and "categorical" not in pipeline.kinds:
        n = len(pipeline.columns)
        x = g.add("Max", ["input", g.const("clip_low", pipeline.clip_low)], "clip_low")
        x = g.add("Min", [x, g.const("clip_high", pipeline.clip_high)], "clip_high")
        missing = g.add("IsNaN", ["input"], "is_missing")
        x = g.add("Where", [missing, g.const("numeric_fill", pipeline.numeric_fill), x], "impute")
        x = g.add("Sub", [x, g.const("center", pipeline.center)], "scale_sub")
        x = g.add("Div", [x, g.const("scale", pipeline.scale)], "scale_div")
        selected = getattr(pipeline, "_selected", None)
        if selected is not None:
            x = g.add("Gather", [x, g.const("selected", selected, np.int64)], "select", axis=1)
        notes = [f"input: the {n} raw numeric columns in order ({', '.join(pipeline.columns)}),"
                 f" NaN for a missing value; clipping, imputation and scaling are in the graph."]
        if pipeline.task == "regression":
            notes.append("Not folded: the output is in scaled target units "
                         "(inverse_target: * target_std + target_mean"
                         + (", then expm1" if pipeline.log_target else "") + ").")
        return x, [n], notes
    if _token_ids(pipeline):
        return "input", shape, [f"input: int64 token ids, shape (N, {shape[0]}), padded with 0 "
                                f"(1 for a word outside the vocabulary). Not folded: "
                                f"tokenising a sentence into ids (micrograd predict does)."]
    what = {"tabular": "one-hot encoding of categorical columns",
            "text": "text vectorisation"}.get(kind, f"{kind} preprocessing")
    return "input", shape, [f"input: the encoded features the model takes (shape "
                            f"(N, {', '.join(map(str, shape))})). Not folded: {what}; apply "
                            f"the pipeline (micrograd predict does) before the graph."]


def _token_ids(pipeline) -> bool:
    return pipeline.kind == "text" and getattr(pipeline, "vectorizer", None) == "ids"


def _layer(g: _Graph, row, x: str, state: dict, in_shape: tuple) -> str:
    """One layer's nodes; ``in_shape`` is the sample shape arriving at it."""
    i, layer, kind = row.index, row.layer, row.type
    name = f"{i}_{kind}"
    param = lambda key: f"{i}.{key}"  # noqa: E731

    def weight(key):
        return g.const(param(key), state[param(key)])

    if kind == "linear":
        inputs = [x, weight("weight")] + ([weight("bias")] if param("bias") in state else [])
        return g.add("Gemm", inputs, name, transB=1)
    if kind == "conv2d":
        inputs = [x, weight("weight")] + ([weight("bias")] if param("bias") in state else [])
        top, bottom, left, right = layer._pads
        if layer.padding_mode != "zeros":
            # Opset 17's Pad has 'reflect' and 'edge'; 'wrap' (circular) came in opset 19.
            mode = {"reflect": "reflect", "replicate": "edge"}.get(layer.padding_mode)
            if mode is None:
                raise ExportError(f"model.layers.{i} (conv2d): padding_mode "
                                  f"{layer.padding_mode!r} has no ONNX opset {OPSET} Pad mode")
            pads = g.const(f"{i}.pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
            x = g.add("Pad", [x, pads], f"{name}_pad", mode=mode)
            top = bottom = left = right = 0
        return g.add("Conv", [x, *inputs[1:]], name,
                     kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                     pads=[top, left, bottom, right], dilations=list(layer.dilation),
                     group=layer.groups)
    if kind in ("maxpool2d", "avgpool2d"):
        kernel = _pair(layer.kernel_size)
        stride = kernel if layer.stride is None else _pair(layer.stride)
        ph, pw = _pair(layer.padding)
        attrs = dict(kernel_shape=list(kernel), strides=list(stride), pads=[ph, pw, ph, pw])
        dilation = _pair(getattr(layer, "dilation", 1))
        if layer.ceil_mode:
            # Opset 17 rounds up without PyTorch's rule that the last window start
            # inside the input or its left padding: refuse where the two differ.
            for axis, n in enumerate(in_shape[1:]):
                span = n + 2 * (ph, pw)[axis] - dilation[axis] * (kernel[axis] - 1) - 1
                if -(-span // stride[axis]) + 1 != row.output_shape[1 + axis]:
                    raise ExportError(
                        f"model.layers.{i} ({kind}): with ceil_mode, the last window of this "
                        f"{n}-cell input would start in the padding; PyTorch drops it, ONNX "
                        f"opset {OPSET} keeps it; change kernel_size, stride or padding")
            attrs["ceil_mode"] = 1
        if kind == "maxpool2d":
            if dilation != (1, 1):
                attrs["dilations"] = list(dilation)
            return g.add("MaxPool", [x], name, **attrs)
        attrs["count_include_pad"] = int(layer.count_include_pad)
        if layer.divisor_override is None:
            return g.add("AveragePool", [x], name, **attrs)
        if layer.ceil_mode:
            raise ExportError(f"model.layers.{i} (avgpool2d): divisor_override with ceil_mode "
                              f"has no ONNX form (its windows hold different counts)")
        # Without ceil_mode every window holds kh*kw cells, padding counted: the
        # mean times kh*kw / divisor is the window's sum over the divisor.
        attrs["count_include_pad"] = 1
        mean = g.add("AveragePool", [x], f"{name}_mean", **attrs)
        factor = g.const(f"{i}.divisor_factor", kernel[0] * kernel[1] / layer.divisor_override)
        return g.add("Mul", [mean, factor], name)
    if kind == "flatten":
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise ExportError(f"model.layers.{i} (flatten): only start_dim 1, end_dim -1 "
                              f"export to ONNX, got {layer.start_dim}, {layer.end_dim}")
        return g.add("Flatten", [x], name, axis=1)
    if kind in ("relu", "sigmoid", "tanh"):
        return g.add({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[kind], [x], name)
    if kind in ("softmax", "log_softmax"):
        op = "Softmax" if kind == "softmax" else "LogSoftmax"
        return g.add(op, [x], name, axis=int(layer.dim))
    if kind == "dropout":
        return g.add("Identity", [x], name)  # evaluation: dropout passes its input on
    if kind in ("batchnorm1d", "batchnorm2d"):
        c = layer.num_features
        scale = state.get(param("weight"), np.ones(c, np.float32))
        bias = state.get(param("bias"), np.zeros(c, np.float32))
        if param("running_mean") not in state:
            raise ExportError(f"model.layers.{i} ({kind}): without running statistics "
                              f"(track_running_stats=False) it has no evaluation form to export")
        inputs = [x, g.const(param("weight"), scale), g.const(param("bias"), bias),
                  weight("running_mean"), weight("running_var")]
        return g.add("BatchNormalization", inputs, name, epsilon=float(layer.eps))
    if kind in ("embedding", "embedding_bag"):
        if layer.max_norm is not None:
            raise ExportError(f"model.layers.{i} ({kind}): max_norm renormalises rows as it "
                              f"reads them, which has no ONNX form here; --format safetensors "
                              f"exports its weights")
        rows = g.add("Gather", [weight("weight"), x], f"{name}_rows", axis=0)
        if kind == "embedding":
            return rows
        return _bag(g, layer, x, rows, name, i)
    raise ExportError(f"model.layers.{i} ({kind}): ONNX export does not support this layer "
                      f"yet; --format safetensors exports its weights")


def _bag(g: _Graph, layer, ids: str, rows: str, name: str, i: int) -> str:
    """EmbeddingBag over (N, L) ids: the sum, mean or max of the L rows of each sample,
    padding left out (a sample of padding only gives zeros, as in micrograd)."""
    axis = g.const(f"{name}_axis", np.array([1]), np.int64)
    if layer.padding_idx is None:
        if layer.mode == "sum":
            return g.add("ReduceSum", [rows, axis], name, keepdims=0)
        op = "ReduceMean" if layer.mode == "mean" else "ReduceMax"
        return g.add(op, [rows], name, axes=[1], keepdims=0)
    if layer.mode == "max":
        raise ExportError(f"model.layers.{i} (embedding_bag): mode max with padding_idx has "
                          f"no ONNX form here; --format safetensors exports its weights")
    pad = g.const(f"{name}_pad", np.array(layer.padding_idx), np.int64)
    keep = g.add("Not", [g.add("Equal", [ids, pad], f"{name}_is_pad")], f"{name}_keep")
    keep = g.add("Cast", [keep], f"{name}_keep_float", to=1)  # FLOAT
    last = g.const(f"{name}_last", np.array([2]), np.int64)
    total = g.add("ReduceSum", [g.add("Mul", [rows, g.add("Unsqueeze", [keep, last],
                                                          f"{name}_keep3")], f"{name}_kept"),
                                axis], f"{name}_sum", keepdims=0)
    if layer.mode == "sum":
        return g.add("Identity", [total], name)
    count = g.add("ReduceSum", [keep, axis], f"{name}_count", keepdims=1)
    count = g.add("Max", [count, g.const(f"{name}_one", np.array([1.0]))], f"{name}_count1")
    return g.add("Div", [total, count], name)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))

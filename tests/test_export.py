"""micrograd export: safetensors weights that PyTorch loads strictly, ONNX graphs that
onnxruntime runs, both giving micrograd's outputs. Each part is skipped without its
packages (torch and safetensors; onnx and onnxruntime)."""
import importlib.util

import numpy as np
import pytest

from micrograd.build import build_model
from micrograd.checkpoint import save_checkpoint
from micrograd.config.loader import to_plain, validate
from micrograd.data.array import ArrayPipeline
from micrograd.data.images import ImagePipeline
from micrograd.export import ExportError, export_checkpoint
from micrograd.run import restore
from micrograd.tensor import Tensor

from conftest import run

IMAGE = {"type": "mnist", "sample": True}
FEATURES = {"type": "synthetic", "kind": "blobs", "n": 20, "standardize": True}

CNN = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
       {"type": "batchnorm2d"}, {"type": "relu"}, {"type": "maxpool2d"},
       {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 1, "bias": False},
       {"type": "relu"}, {"type": "avgpool2d", "kernel_size": 2},  # fused in micrograd
       {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
       {"type": "flatten"}, {"type": "dropout", "p": 0.3},
       {"type": "linear", "out_features": 5}, {"type": "tanh"},
       {"type": "linear", "out_features": 3, "bias": False}, {"type": "log_softmax"}]
MLP = [{"type": "linear", "out_features": 6}, {"type": "batchnorm1d"}, {"type": "sigmoid"},
       {"type": "dropout"}, {"type": "linear", "out_features": 2}, {"type": "softmax", "dim": 0}]
#: PyTorch's further convolution and pooling arguments, each exported (Pad before Conv,
#: Conv dilations/group/pads, MaxPool dilations/ceil_mode, AveragePool's count and divisor).
CNN_ARGS = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": "same",
             "dilation": 2, "padding_mode": "reflect"}, {"type": "batchnorm2d"}, {"type": "relu"},
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 4,
             "padding_mode": "replicate"},
            {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "dilation": 2,
             "ceil_mode": True},
            {"type": "conv2d", "out_channels": 6, "kernel_size": 2, "padding": "same",
             "groups": 2},
            {"type": "avgpool2d", "kernel_size": 2, "ceil_mode": True,
             "count_include_pad": False},
            {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1,
             "divisor_override": 4},
            {"type": "flatten"}, {"type": "linear", "out_features": 3}]
CASES = {"cnn": (IMAGE, ImagePipeline((1, 12, 12), mean=0.3, std=0.7, class_names=list("abc")),
                 CNN),
         "cnn_args": (IMAGE, ImagePipeline((1, 12, 12), mean=0.3, std=0.7,
                                           class_names=list("abc")), CNN_ARGS),
         "mlp": (FEATURES, ArrayPipeline(4, "classification", ["p", "q"], mean=[1, -2, 0.5, 3],
                                         std=[2, 0.5, 1, 4]), MLP)}


def checkpoint(folder, case):
    """A checkpoint of the case's model with random weights and running statistics."""
    data, pipeline, layers = CASES[case]
    config = validate({"data": data, "model": {"layers": layers}, "loss": "cross_entropy",
                       "optimizer": {"type": "sgd", "lr": 0.1}})
    model, _ = build_model(config, pipeline.input_shape)
    rng = np.random.default_rng(0)
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = np.full_like(value, 7)
        elif name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2, value.shape).astype(value.dtype)
        else:
            state[name] = rng.standard_normal(value.shape).astype(value.dtype) * 0.5
    model.load_state_dict(state)
    pipe_meta, pipe_arrays = pipeline.state()
    arrays = {**{f"model/{k}": v for k, v in state.items()},
              **{f"pipeline/{k}": v for k, v in pipe_arrays.items()}}
    return save_checkpoint(folder / f"{case}.npz", {"config": to_plain(config),
                                                    "pipeline": pipe_meta, "epoch": 1,
                                                    "step": 1}, arrays)


def raw_inputs(case, n=5):
    rng = np.random.default_rng(1)
    if case.startswith("cnn"):
        return rng.uniform(0, 1, (n, 1, 12, 12)).astype(np.float32)
    return rng.normal(0, 3, (n, 4)).astype(np.float32)


def micrograd_outputs(path, raw):
    restored = restore(path)
    return restored.model(Tensor(restored.pipeline.transform(raw))).data


# ------------------------------------------------------------------ safetensors


def torch_module(row):
    """The torch.nn layer of one of our layer rows (its hyper-parameters, not its weights)."""
    import torch.nn as tnn

    layer, kind = row.layer, row.type
    if kind == "linear":
        return tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if kind == "conv2d":
        return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          layer.stride, layer.padding, layer.dilation, layer.groups,
                          bias=layer.bias is not None, padding_mode=layer.padding_mode)
    if kind == "maxpool2d":
        return tnn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                             ceil_mode=layer.ceil_mode)
    if kind == "avgpool2d":
        return tnn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                             layer.count_include_pad, layer.divisor_override)
    if kind == "flatten":
        return tnn.Flatten(layer.start_dim, layer.end_dim)
    if kind == "dropout":
        return tnn.Dropout(layer.p)
    if kind in ("batchnorm1d", "batchnorm2d"):
        cls = tnn.BatchNorm1d if kind == "batchnorm1d" else tnn.BatchNorm2d
        return cls(layer.num_features, layer.eps, layer.momentum)
    if kind in ("softmax", "log_softmax"):
        return (tnn.Softmax if kind == "softmax" else tnn.LogSoftmax)(dim=layer.dim)
    return {"relu": tnn.ReLU, "sigmoid": tnn.Sigmoid, "tanh": tnn.Tanh}[kind]()


@pytest.mark.parametrize("case", sorted(CASES))
def test_pytorch_loads_the_safetensors_file_strictly_and_agrees(tmp_path, case):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    path = checkpoint(tmp_path, case)
    out, _ = export_checkpoint(path, "safetensors")
    assert out == tmp_path / "model.safetensors"
    state = st_torch.load_file(out)
    assert [k for k in state if "num_batches_tracked" in k] and all(
        v.dtype == (torch.int64 if "num_batches_tracked" in k else torch.float32)
        for k, v in state.items())
    reference = torch.nn.Sequential(*[torch_module(row) for row in restore(path).rows])
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in reference.state_dict().items()}  # 0-d num_batches_tracked too
    net = torch.nn.Sequential(*[torch_module(row) for row in restore(path).rows])
    net.load_state_dict(state, strict=True)
    net.eval()
    raw = raw_inputs(case)
    x = restore(path).pipeline.transform(raw)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(micrograd_outputs(path, raw), expected, rtol=1e-5, atol=1e-6)


def test_an_existing_file_is_kept_without_force(tmp_path):
    pytest.importorskip("safetensors")
    path = checkpoint(tmp_path, "mlp")
    mine = tmp_path / "model.safetensors"
    mine.write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_checkpoint(path, "safetensors")
    assert mine.read_text() == "mine"
    export_checkpoint(path, "safetensors", force=True)
    assert mine.read_bytes() != b"mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ------------------------------------------------------------------ onnx


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnxruntime_runs_the_graph_with_preprocessing_folded_in(tmp_path, case):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = checkpoint(tmp_path, case)
    out, notes = export_checkpoint(path, "onnx", tmp_path / "m.onnx")
    assert notes
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # the batch axis is dynamic
        raw = raw_inputs(case, n)
        (got,) = session.run(None, {"input": raw})
        np.testing.assert_allclose(got, micrograd_outputs(path, raw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer, message", [
    ({"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1,
      "padding_mode": "circular"}, "padding_mode 'circular' has no ONNX opset 17 Pad mode"),
    ({"type": "maxpool2d", "kernel_size": 2, "padding": 1, "ceil_mode": True},
     "would start in the padding"),
    ({"type": "avgpool2d", "kernel_size": 2, "ceil_mode": True, "divisor_override": 3},
     "divisor_override with ceil_mode has no ONNX form"),
], ids=["circular", "ceil-window-in-padding", "divisor-and-ceil"])
def test_arguments_onnx_cannot_express_are_refused(tmp_path, monkeypatch, layer, message):
    pytest.importorskip("onnx")
    pipeline = ImagePipeline((1, 11, 11), mean=0.3, std=0.7, class_names=list("abc"))
    monkeypatch.setitem(CASES, "odd", (IMAGE, pipeline, [
        layer, {"type": "flatten"}, {"type": "linear", "out_features": 3}]))
    with pytest.raises(ExportError, match=message):
        export_checkpoint(checkpoint(tmp_path, "odd"), "onnx", tmp_path / "m.onnx")


def test_every_layer_type_exports_to_onnx():
    from micrograd.nn import LAYERS

    covered = {layer["type"] for _, _, layers in CASES.values() for layer in layers}
    assert set(LAYERS) - covered == {"embedding", "embedding_bag"}  # tested just below


@pytest.mark.parametrize("layers", [
    [{"type": "embedding_bag", "embedding_dim": 6, "padding_idx": 0},
     {"type": "linear", "out_features": 2}],
    [{"type": "embedding_bag", "embedding_dim": 6, "mode": "sum", "padding_idx": 0},
     {"type": "linear", "out_features": 2}],
    [{"type": "embedding_bag", "embedding_dim": 6, "mode": "max"},
     {"type": "linear", "out_features": 2}],
    [{"type": "embedding", "embedding_dim": 3, "padding_idx": 0}, {"type": "flatten"},
     {"type": "linear", "out_features": 2}],
], ids=["bag-mean", "bag-sum", "bag-max", "embedding"])
def test_token_id_models_export_to_onnx(tmp_path, layers):
    """Text as token ids: the graph takes int64 ids and agrees with micrograd on
    sentences of every length (short ones padded, a sentence of unknown words)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import yaml

    words = ["good", "great", "fine", "bad", "awful", "poor", "the", "phone", "it", "was"]
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 7))) + f"\t{i % 2}"
             for i in range(80)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    cfg = {"data": {"type": "text", "path": "t.txt", "vectorizer": "ids"},
           "model": {"layers": layers}, "loss": "cross_entropy",
           "optimizer": {"type": "adam", "lr": 0.05}, "train": {"epochs": 2, "batch_size": 16}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert run(["train", "c.yaml", "-q", "--set", "output.dir=r"], tmp_path).exit_code == 0
    result = run(["export", "r/best.npz", "--format", "onnx"], tmp_path)
    assert result.exit_code == 0, result.output
    restored = restore(tmp_path / "r" / "best.npz")
    ids = restored.pipeline.transform(["good phone", "zzz unknown words", "the phone was great"])
    session = ort.InferenceSession(str(tmp_path / "r" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": ids})
    from micrograd.inference import predict_outputs

    np.testing.assert_allclose(got, predict_outputs(restored.model, ids), rtol=1e-5, atol=1e-6)


def test_cli_export_and_a_missing_extra(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    path = checkpoint(tmp_path, "mlp")
    result = run(["export", str(path), "--format", "safetensors"], tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.safetensors").is_file()
    result = run(["export", str(path), "--format", "safetensors"], tmp_path)
    assert result.exit_code == 2 and "--force" in result.output
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    result = run(["export", str(path), "--format", "onnx"], tmp_path)
    assert result.exit_code == 2
    assert "pip install 'micrograd-trainer[export]'" in result.output


def test_skips_are_clean_without_the_extra():
    # The module imports with neither package: the extras are imported on use.
    assert importlib.util.find_spec("micrograd.export") is not None


def test_numeric_tables_fold_clipping_imputation_and_scaling():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from micrograd.data.tabular import TabularPipeline
    from micrograd.export import _fold_preprocessing, _Graph

    pipe = TabularPipeline(["a", "b", "c"], ["numeric"] * 3, numeric_fill=[1, 2, 3],
                           center=[0.5, -1, 2], scale=[2, 3, 0.5], categorical_fill=[],
                           categories=[], clip_low=[-1, -5, -np.inf], clip_high=[4, 5, np.inf])
    g = _Graph()
    x, shape, notes = _fold_preprocessing(g, pipe)
    g.nodes.append(helper.make_node("Identity", [x], ["output"]))
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 3])  # noqa: E731
    model = helper.make_model(helper.make_graph(g.nodes, "t", [value("input")], [value("output")],
                                                g.initializers),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    raw = np.array([[0, 9, 1], [np.nan, -9, 5], [3, np.nan, np.nan]], np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": raw})
    np.testing.assert_allclose(got, pipe.transform(raw.astype(np.float64)), rtol=1e-6)
    assert shape == [3] and "imputation" in notes[0]

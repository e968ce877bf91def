"""Data kinds (issue 11, STYLE.md point 14): one class per kind owns its data's
whole life, and ``build_data``, ``eval`` and ``predict`` ask it, never branch on it.

- every config ``data.type`` maps to a kind through one table, and every kind's
  name is the pipeline kind that checkpoints store;
- every kind's pipeline round-trips ``get_state`` / ``from_state``;
- a fake kind registered here is used by ``build_data``, ``Predictor`` and
  ``eval --data`` without any change to them;
- ``build_data``, ``evaluate.py`` and ``predict.py`` hold no kind names.
"""
import ast
import json
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import micrograd.data.kinds as kinds
from micrograd.build import build_data
from micrograd.config import schema
from micrograd.config.loader import validate
from micrograd.data.kinds import (CONFIG_TYPES, MODULES, DataKind, kind_for, kind_named, kind_of,
                                  register_kind)
from micrograd.data.pipeline import Pipeline, PipelineError, Splits, pipeline_from_state
from micrograd.evaluate import read_labelled
from micrograd.predict import Predictor

ROOT = Path(__file__).resolve().parents[1] / "micrograd"
KIND_NAMES = {"array", "tabular", "text", "image"}
CONFIG_NAMES = {"synthetic", "csv", "text", "mnist", "fashion_mnist"}


def config_types():
    """Every ``data.type`` the config schema accepts."""
    members = typing.get_args(typing.get_args(schema.DataConfig)[0])
    return sorted(t for m in members for t in typing.get_args(m.model_fields["type"].annotation))


# --------------------------------------------------------- one vocabulary


def test_every_config_type_the_schema_accepts_maps_to_a_kind():
    assert config_types() == sorted(CONFIG_TYPES) == sorted(CONFIG_NAMES)
    for data_type in config_types():
        kind = kind_for(data_type)
        assert issubclass(kind, DataKind) and kind.name == CONFIG_TYPES[data_type]


@pytest.mark.parametrize("data, name", [
    ({"type": "synthetic"}, "array"),
    ({"type": "csv", "path": "x.csv", "target": "y"}, "tabular"),
    ({"type": "text", "path": "x.txt"}, "text"),
    ({"type": "mnist", "root": "data"}, "image"),
    ({"type": "fashion_mnist", "root": "data"}, "image"),
])
def test_config_type_to_kind(data, name):
    kind = kind_for(validate(_config(data)).data)
    assert kind.name == name
    assert kind.pipeline_class.kind == name  # the name checkpoints store


def test_each_kind_lives_with_its_pipeline_and_is_known_by_its_checkpoint_name():
    for name, module in MODULES.items():
        kind = kind_named(name)
        assert kind.__module__ == module == kind.pipeline_class.__module__


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(PipelineError, match="unknown preprocessing kind 'audio'.*tabular"):
        pipeline_from_state({"kind": "audio"}, {})
    with pytest.raises(PipelineError, match="unknown data type 'parquet'.*csv"):
        kind_for("parquet")


# --------------------------------------------------------- state round trip


def fitted_pipelines(tmp_path):
    from micrograd.data.array import ArrayPipeline
    from micrograd.data.images import ImagePipeline
    from micrograd.data.tabular import load_tabular
    from micrograd.data.text import TextPipeline

    csv_path = tmp_path / "t.csv"
    csv_path.write_text("a,zone,y\n" + "".join(f"{i},{'RL' if i % 2 else 'RM'},{3 * i}\n"
                                               for i in range(20)))
    return {
        "array": (ArrayPipeline.fit(np.array([[1.0, 2.0], [3.0, 5.0]]), standardize=True),
                  [[2.0, 3.0]]),
        "tabular": (load_tabular(csv_path, "y").pipeline, [{"a": "4", "zone": "RM"}]),
        "text": (TextPipeline.fit([["good", "film"], ["bad", "film"]],
                                  class_names=["0", "1"]), ["a good film"]),
        "image": (ImagePipeline((1, 4, 4), 0.5, 0.5, ["0", "1"]),
                  np.arange(16, dtype=np.uint8).reshape(1, 4, 4)),
    }


def test_every_kind_round_trips_its_state(tmp_path):
    pipelines = fitted_pipelines(tmp_path)
    assert set(pipelines) == set(MODULES)
    for name, (pipeline, raw) in pipelines.items():
        meta, arrays = pipeline.state()
        assert meta["kind"] == name
        meta = json.loads(json.dumps(meta))  # what a checkpoint stores
        rebuilt = pipeline_from_state(meta, {k: np.array(v) for k, v in arrays.items()})
        assert type(rebuilt) is type(pipeline)
        np.testing.assert_array_equal(rebuilt.transform(raw), pipeline.transform(raw))
        assert rebuilt.get_state()[0] == json.loads(json.dumps(pipeline.get_state()[0]))
        assert type(kind_of(rebuilt)) is kind_named(name)


def test_loading_a_checkpoint_imports_only_its_own_kind():
    code = ("import sys; from micrograd.data.pipeline import pipeline_from_state; "
            "pipeline_from_state({'kind': 'array', 'n_features': 1, 'task': 'regression'}, {}); "
            "print(sorted(m for m in sys.modules if m.startswith('micrograd.data.')))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    for reader in ("tabular", "text", "images", "idx", "synthetic"):
        assert f"micrograd.data.{reader}'" not in out


# ------------------------------------------- a fake kind: nothing else changes


class FakePipeline(Pipeline):
    """Token-id-like inputs: int64, which nothing between the kind and the model casts."""

    kind = "fake"

    def __init__(self, offset=0):
        self.offset, self.task, self.input_shape = int(offset), "regression", (2,)

    def transform(self, raw):
        return np.asarray(raw, dtype=np.int64).reshape(-1, 2) + self.offset

    def get_state(self):
        return {"offset": self.offset}, {}

    @classmethod
    def from_state(cls, meta, arrays):
        return cls(meta["offset"])


class FakeKind(DataKind):
    name = "fake"
    pipeline_class = FakePipeline
    calls = []

    @classmethod
    def from_config(cls, section):
        cls.calls.append(("from_config", section.type))
        p = FakePipeline(offset=section.n)
        x = p.transform([[1, 2], [3, 4]])
        y = np.array([1.0, 2.0], np.float32)
        return Splits(x, y, x[:0], y[:0], x[:0], y[:0], p)

    def expects(self):
        return "two integers a:b"

    def parse(self, text):
        try:
            return [int(v) for v in text.split(":")]
        except ValueError:
            raise PipelineError(f"expected {self.expects()}, got {text!r}") from None

    def read_labelled(self, path):
        self.calls.append(("read_labelled", getattr(self.section, "type", None)))
        return self.model_input([[1, 1]]), np.array([2.0], np.float32)


class SumModel:
    """Stands in for a model: the sum of each input row, as float32."""

    seen = []

    def eval(self):
        return self

    def __call__(self, x):
        import micrograd.tensor as mt

        self.seen.append(x.data.dtype)
        return mt.from_numpy(x.data.sum(axis=1, keepdims=True).astype(np.float32))


@pytest.fixture
def fake_kind(monkeypatch):
    """FakeKind registered, and config type 'synthetic' read by it (for this test only)."""
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    monkeypatch.setitem(CONFIG_TYPES, "synthetic", "fake")
    register_kind(FakeKind)
    FakeKind.calls.clear()
    SumModel.seen.clear()
    return FakeKind


def _config(data):
    return {"data": data, "model": {"layers": [{"type": "linear", "out_features": 1}]},
            "loss": "mse", "optimizer": {"type": "sgd", "lr": 0.01}}


def test_build_data_uses_a_registered_kind(fake_kind):
    config = validate(_config({"type": "synthetic", "n": 5}))
    splits = build_data(config)
    assert fake_kind.calls == [("from_config", "synthetic")]
    assert isinstance(splits.pipeline, FakePipeline)
    # the kind chooses its dtype: int64 inputs (token ids) reach Splits uncast
    assert splits.x_train.dtype == np.int64
    np.testing.assert_array_equal(splits.x_train, [[6, 7], [8, 9]])


def test_predictor_and_eval_use_a_registered_kind(fake_kind, tmp_path):
    config = validate(_config({"type": "synthetic", "n": 10}))
    pipeline = pipeline_from_state(*FakePipeline(10).state())  # as a checkpoint rebuilds it
    predictor = object.__new__(Predictor)
    predictor.pipeline, predictor.model, predictor.config = pipeline, SumModel(), config
    assert predictor.kind == "fake"
    assert predictor.expects() == "two integers a:b"
    assert predictor.parse("1:2") == [1, 2]
    with pytest.raises(PipelineError, match="two integers"):
        predictor.parse("1.5")
    assert predictor.predict_text("1:2") == {"value": 23.0}
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("1:2\n\n3:4\n")
    assert predictor.read_file(inputs) == [[1, 2], [3, 4]]
    assert [r["value"] for r in predictor.predict(predictor.read_file(inputs))] == [23.0, 27.0]
    assert SumModel.seen and all(d == np.int64 for d in SumModel.seen)  # nothing cast them

    labelled = tmp_path / "labelled.txt"
    labelled.write_text("anything")
    x, y = read_labelled(labelled, config, pipeline)
    assert fake_kind.calls == [("read_labelled", "synthetic")]
    np.testing.assert_array_equal(x, [[11, 11]])


def test_a_bad_line_in_a_file_of_inputs_names_the_line(fake_kind, tmp_path):
    from micrograd.data.pipeline import DataError

    predictor = object.__new__(Predictor)
    predictor.pipeline, predictor.model, predictor.config = FakePipeline(), None, None
    path = tmp_path / "in.txt"
    path.write_text("1:2\n1:x\n")
    with pytest.raises(DataError, match=r"in\.txt, line 2: expected two integers"):
        predictor.read_file(path)


def test_generated_data_has_no_labelled_file_to_read(tmp_path):
    from micrograd.data.array import ArrayPipeline

    config = validate(_config({"type": "synthetic"}))
    path = tmp_path / "x.csv"
    path.write_text("1\n")
    with pytest.raises(PipelineError, match="--data is not available for synthetic datasets"):
        read_labelled(path, config, ArrayPipeline(1))


def test_text_eval_reads_with_the_training_delimiter(tmp_path):
    from micrograd.data.text import load_text

    train = tmp_path / "train.csv"
    train.write_text("text;label\n" + "".join(f"good film {i};1\nbad film {i};0\n"
                                               for i in range(10)))
    config = validate(_config({"type": "text", "path": str(train), "delimiter": ";",
                               "has_header": True}))
    pipeline = load_text(train, delimiter=";", has_header=True).pipeline
    other = tmp_path / "other.csv"
    other.write_text("text;label\ngood;1\nbad;0\n")
    x, y = read_labelled(other, config, pipeline)
    assert x.shape == (2, len(pipeline.vocabulary)) and y.tolist() == [1, 0]


# ------------------------------------------------------ nobody else branches


def _strings(tree):
    """String constants of a syntax tree, docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def _build_data_tree():
    tree = ast.parse((ROOT / "build.py").read_text())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_data"]
    return fn


@pytest.mark.parametrize("where", ["build.py:build_data", "evaluate.py", "predict.py"])
def test_no_kind_names_outside_the_kinds(where):
    tree = (_build_data_tree() if where.startswith("build.py")
            else ast.parse((ROOT / where).read_text()))
    names = KIND_NAMES | CONFIG_NAMES
    found = [(line, value) for line, value in _strings(tree) if value in names]
    assert not found, f"{where} names data kinds {found}: ask the kind (micrograd.data.kinds)"
    compared = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and any(isinstance(n, ast.Attribute) and n.attr in ("kind", "type")
                        for n in ast.walk(node))]
    assert not compared, f"{where} compares a kind at line(s) {compared}"


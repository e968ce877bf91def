"""Bad input everywhere - configs, data files, checkpoints, predict inputs - is a
short message saying what was expected and a non-zero exit, never a traceback
(unless --debug); property tests feed random configs and inputs."""
import copy
import gzip
import json
import string
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micrograd.data.idx import write_idx
from conftest import CNN, LINEAR, make_idx_folder, run

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])



def fails(result, code, *fragments):
    """A clean failure: the exit code, one short message, no traceback."""
    out = " ".join(result.output.split())
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and out.startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in out, out
    return out


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------ data files


@pytest.fixture
def digits(tmp_path):
    (tmp_path / "digits").mkdir()
    make_idx_folder(tmp_path / "digits", n=60)
    cfg = copy.deepcopy(CNN)
    cfg["model"]["layers"] = [{"type": "flatten"}, {"type": "linear", "out_features": 10}]
    return write_yaml(tmp_path / "cnn.yaml", cfg)


def test_truncated_gzip_idx(tmp_path, digits):
    images = tmp_path / "digits" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:300])
    fails(run(["train", digits], tmp_path), 1, "t10k-images-idx3-ubyte.gz: cannot be read as an "
                                               "IDX file")


def test_idx_with_a_bad_magic_number_or_size(tmp_path, digits):
    images = tmp_path / "digits" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(b"\x01\x02\x03\x04" + bytes(64)))
    fails(run(["train", digits], tmp_path), 1, "bad magic number 01020304", "expected 0000")
    images.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + (60).to_bytes(4, "big")
                                     + (28).to_bytes(4, "big") * 2 + bytes(100)))
    fails(run(["train", digits], tmp_path), 1, "truncated", "header declares shape (60, 28, 28)")


def test_idx_labels_that_do_not_match_the_images(tmp_path, digits):
    write_idx(tmp_path / "digits" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    fails(run(["train", digits], tmp_path), 1, "5 labels for 60 images")


def test_missing_data_folder(tmp_path, digits):
    for f in (tmp_path / "digits").iterdir():
        f.unlink()
    fails(run(["summary", digits], tmp_path), 1, "t10k-images-idx3-ubyte")


CSV = {"data": {"type": "csv", "path": "table.csv", "target": "y"},
       "model": {"layers": [{"type": "linear", "out_features": 1}]},
       "loss": "mse", "optimizer": {"type": "sgd", "lr": 0.01}, "train": {"epochs": 2}}


@pytest.mark.parametrize("content,code,fragments", [
    (b"\xff\xfe\x00\x81garbage", 1, ["table.csv is not UTF-8 text"]),
    (b"", 1, ["table.csv is empty", "expected a header row"]),
    (b"x,y\n1,2\n3\n", 1, ["table.csv, line 3: expected 2 fields", "found 1"]),
    # the config names a column the file lacks: a config error
    (b"x,z\n1,2\n3,4\n", 2, ["target column 'y' not found", "Available columns: x, z"]),
    (b"x,y\n", 1, ["has a header row but no data rows"]),
    (b"x,x,y\n1,2,3\n", 1, ["duplicate column names"]),
])
def test_corrupt_csv(tmp_path, content, code, fragments):
    """A data file that cannot be used exits 1 whatever its kind."""
    (tmp_path / "table.csv").write_bytes(content)
    config = write_yaml(tmp_path / "csv.yaml", CSV)
    fails(run(["train", config], tmp_path), code, *fragments)


def test_missing_csv(tmp_path):
    config = write_yaml(tmp_path / "csv.yaml", CSV)
    fails(run(["train", config], tmp_path), 1, "tabular data file not found", "table.csv")


TEXT = {"data": {"type": "text", "path": "reviews.txt"},
        "model": {"layers": [{"type": "linear", "out_features": 2}]},
        "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"epochs": 2}}


@pytest.mark.parametrize("content,fragments", [
    (b"good one\t1\nno label here\nbad one\t0\n", ["reviews.txt, line 2", "sentence<TAB>label"]),
    (b"\xff\xfe broken\t1\n", ["reviews.txt, line 1: not UTF-8 text"]),
])
def test_corrupt_text_files(tmp_path, content, fragments):
    (tmp_path / "reviews.txt").write_bytes(content)
    config = write_yaml(tmp_path / "text.yaml", TEXT)
    fails(run(["train", config], tmp_path), 1, *fragments)


def test_data_of_the_wrong_shape_for_the_model(tmp_path):
    cfg = copy.deepcopy(LINEAR)
    cfg["model"]["layers"] = [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}]
    fails(run(["train", write_yaml(tmp_path / "c.yaml", cfg)], tmp_path), 2,
          "model.layers.0 (conv2d): expects images", "has shape 1")
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 3}]
    fails(run(["train", write_yaml(tmp_path / "c.yaml", cfg)], tmp_path), 2,
          "the model outputs 3 values per sample; a regression target needs 1")


def test_config_of_the_wrong_types(tmp_path):
    (tmp_path / "t.yaml").write_text("data: 5\nmodel: []\nloss: 3\noptimizer: sgd\n")
    fails(run(["train", tmp_path / "t.yaml"], tmp_path), 2, "data [", "line 1",
          "valid dictionary")
    (tmp_path / "e.yaml").write_text("")
    fails(run(["train", tmp_path / "e.yaml"], tmp_path), 2, "got an empty file")
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    fails(run(["train", tmp_path / "l.yaml"], tmp_path), 2, "expected a mapping", "got list")


def test_debug_gives_the_traceback_for_bad_data(tmp_path, digits):
    write_idx(tmp_path / "digits" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    result = run(["--debug", "train", digits], tmp_path)
    assert result.exit_code != 0 and result.exception is not None
    assert not isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------ checkpoints


def test_unusable_checkpoints_for_eval_and_predict(tmp_path):
    fails(run(["eval", "nope.npz"], tmp_path), 1, "checkpoint nope.npz does not exist")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04junk")
    fails(run(["eval", "junk.npz"], tmp_path), 1, "junk.npz: not a readable micrograd checkpoint")
    fails(run(["predict", "-i", "1", "-c", "junk.npz"], tmp_path), 1, "not a readable")
    (tmp_path / "folder").mkdir()
    fails(run(["eval", "folder"], tmp_path), 1, "folder without best.npz or checkpoint.npz")


# ------------------------------------------------------------------ predict inputs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A trained regression model on 2 numbers, and one on a CSV table."""
    folder = tmp_path_factory.mktemp("models")
    cfg = copy.deepcopy(LINEAR)
    cfg["data"] = {"type": "synthetic", "kind": "blobs", "n": 40}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 2}]
    cfg["loss"] = "cross_entropy"
    cfg["train"]["epochs"] = 3
    assert run(["train", write_yaml(folder / "blobs.yaml", cfg), "-q", "--set",
                "output.dir=blobs"], folder).exit_code == 0
    (folder / "table.csv").write_text("area,kind,y\n" + "".join(
        f"{10 + i},{'ab'[i % 2]},{3 * i}\n" for i in range(30)))
    assert run(["train", write_yaml(folder / "csv.yaml", CSV), "-q", "--set",
                "output.dir=table"], folder).exit_code == 0
    return folder


def test_predict_inputs_of_the_wrong_form(models):
    blobs = ["predict", "-c", "blobs"]
    fails(run(blobs + ["-i", "1"], models), 2, "got 1 number(s), the model expects 2 numbers")
    fails(run(blobs + ["-i", "one,two"], models), 2, "expected 2 numbers separated by commas")
    fails(run(blobs + ["-i", "1", "-f", "x.txt"], models), 2, "exactly one of --input")
    fails(run(["predict", "-c", "blobs"], models), 2, "exactly one of --input")
    fails(run(blobs + ["-f", "missing.txt"], models), 1, "input file missing.txt does not exist")
    (models / "lines.txt").write_text("1,2\n3\n")
    fails(run(blobs + ["-f", "lines.txt"], models), 1, "lines.txt, line 2: got 1 number(s)")
    table = ["predict", "-c", "table"]
    fails(run(table + ["-i", "size=3"], models), 2, "unknown column(s) size", "columns: area, kind")
    fails(run(table + ["-i", "1,2,3,4"], models), 2, "got 4 value(s), the model expects 2")
    fails(run(table + ["-i", "area=big,kind=a"], models), 2, "'big'")
    fails(run(table + ["-i", "\r0"], models), 2, "expected one line of comma-separated values")
    (models / "bad.csv").write_bytes(b"area,kind\n\xff\xfe\n")
    fails(run(table + ["-f", "bad.csv"], models), 1, "bad.csv is not UTF-8 text")


def test_predict_image_inputs_of_the_wrong_form(tmp_path, digits):
    assert run(["train", digits, "-q"], tmp_path).exit_code == 0
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fails(run(["predict", "-i", "obj.npy"], tmp_path), 2, "not a plain numeric .npy array")
    np.save(tmp_path / "flat.npy", np.zeros(784))
    fails(run(["predict", "-i", "flat.npy"], tmp_path), 2, "expected an image of 28x28 pixels")
    fails(run(["predict", "-i", "nothere.npy"], tmp_path), 2, "does not exist")


@FUZZ
@given(text=st.text(max_size=30) | st.lists(
    st.sampled_from(["1", "-2.5", "nan", "inf", "1e999", "", " ", "x", "area=3", "kind=a",
                     "kind=", "=", "y=2", '"', "1,2"]), max_size=4).map(",".join))
def test_any_predict_input_is_an_answer_or_a_clean_error(models, text):
    if text.startswith("-"):
        text = " " + text  # not an option
    for model in ("blobs", "table"):
        result = run(["predict", "-c", model, "-i", text], models)
        if result.exit_code != 0:
            fails(result, 2)


# ------------------------------------------------------------------ random configs


LEAVES = st.sampled_from([None, True, False, 0, 1, 2, -1, 0.5, 1e-3, "", "x", "relu", "mse",
                          "sgd", "linear", [], {}, [1, 2], {"type": "relu"}, "nan", 1e30])
WORDS = ["relu", "linear", "flatten", "dropout", "sigmoid", "tanh", "softmax", "log_softmax",
         "batchnorm1d", "conv2d", "mse", "l1", "cross_entropy", "bce", "bce_with_logits", "sgd",
         "adam", "adamw", "rmsprop", "blobs", "moons", "loss", "accuracy", "r2", "sum", "x"]
LAYERS = st.sampled_from([{"type": t} for t in ("relu", "sigmoid", "tanh", "softmax",
                                                 "log_softmax", "dropout", "batchnorm1d",
                                                 "flatten", "maxpool2d")]
                         + [{"type": "linear", "out_features": n} for n in (1, 2, 3)])


def like(value):
    """A value of the same kind as ``value``: mostly valid, often at the edge."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-1, 4)
    if isinstance(value, float):
        return st.sampled_from([-1.0, 0.0, 1e-3, 0.2, 0.5, 0.9, 1.0, 10.0])
    if isinstance(value, str):
        return st.sampled_from(WORDS)
    return LEAVES


def paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths(v, prefix + (i,))


@st.composite
def mutated_configs(draw):
    cfg = copy.deepcopy(LINEAR)
    cfg["data"].update(kind=draw(st.sampled_from(["linear", "blobs", "moons"])), noise=0.1)
    cfg["train"].update(epochs=2, val_every=1, monitor="loss", early_stopping_patience=1,
                        clip_grad_norm=1.0)
    cfg["optimizer"].update(momentum=0.0)
    cfg["scheduler"] = {"type": "step", "step_size": 1, "gamma": 0.5}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 4}, {"type": "relu"},
                              {"type": "linear", "out_features": 1}]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([p for p in paths(cfg) if p]))
        node = cfg
        for part in where[:-1]:
            node = node[part]
        action = draw(st.sampled_from(["like", "like", "layer", "set", "delete", "add"]))
        layers = cfg.get("model", {}).get("layers") if isinstance(cfg.get("model"), dict) else None
        if action == "layer" and isinstance(layers, list):
            layers.insert(draw(st.integers(0, len(layers))), copy.deepcopy(draw(LAYERS)))
        elif action == "delete" and isinstance(node, dict):
            node.pop(where[-1])
        elif action == "add" and isinstance(node, dict):
            key = draw(st.text(string.ascii_lowercase, min_size=1, max_size=8))
            node[key] = copy.deepcopy(draw(LEAVES))
        elif action == "like":
            node[where[-1]] = copy.deepcopy(draw(like(node[where[-1]])))
        else:
            node[where[-1]] = copy.deepcopy(draw(LEAVES))
    return cfg


@FUZZ
@given(cfg=mutated_configs(),
       overrides=st.lists(st.sampled_from(["train.epochs=1", "train.epochs=x", "optimizer.lr",
                                           "model.layers.5.type=relu", "loss=l1", "=3",
                                           "data.kind=moons", "train.seed=1e3"]), max_size=2))
def test_any_config_trains_or_fails_cleanly(tmp_path, cfg, overrides):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = ["train", path, "-q", "--set", "output.dir=out"]
    for item in overrides:
        args += ["--set", item]
    with np.errstate(all="ignore"):
        result = run(args, tmp_path)
    if result.exit_code != 0:
        fails(result, result.exit_code)
        assert result.exit_code in (1, 2, 3)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_yaml_text_is_a_config_or_a_clean_error(tmp_path, text):
    (tmp_path / "any.yaml").write_text(text, encoding="utf-8")
    result = run(["summary", tmp_path / "any.yaml"], tmp_path)
    fails(result, 2)


def test_the_messages_stay_short(tmp_path):
    """One paragraph: even ten problems in a config are a few lines, not a dump."""
    cfg = {"data": {"type": "synthetic", "n": "x", "seed": "y", "noise": "z"},
           "model": {"layers": [{"type": "linear", "out_features": "a", "bias": "b"}]},
           "loss": 5, "optimizer": {"type": "sgd", "lr": "c"}, "train": {"epochs": "d"}}
    out = fails(run(["train", write_yaml(tmp_path / "c.yaml", cfg)], tmp_path), 2)
    assert len(out) < 2000 and json.dumps(cfg) not in out

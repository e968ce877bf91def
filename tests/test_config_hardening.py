"""Config input that used to be misread, accepted silently, crash with NumPy text
or exhaust the machine: numbers in scientific notation, duplicate keys, alias
bombs, huge or non-UTF-8 files, and values that only fail once training starts.
Each is now read exactly or refused as a short config error (exit 2)."""
import copy
import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from micrograd.config.loader import ConfigError, load_config
from conftest import LINEAR, run, write_config

SHORT = 600  # characters: an error is one paragraph, never a dump of the input


def linear(**sections):
    cfg = copy.deepcopy(LINEAR)
    for key, value in sections.items():
        cfg[key] = value
    return cfg


def config_text(tmp_path, text, name="c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path, path, *fragments, args=()):
    """Through the CLI: exit 2, a short message holding each fragment, no traceback."""
    result = run(["train", str(path), *args, "-q"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output) < SHORT, result.output[:2000]
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


# ------------------------------------------------ numbers: YAML 1.2 floats


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("1E5", 1e5), ("-2.5e+3", -2.5e3), (".5e-2", 0.005),
    ("2.", 2.0), ("+1.5", 1.5), ("3", 3.0),
])
def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path, text, value):
    path = write_config(tmp_path, linear())
    base = path.read_text()
    assert load_config(path, [f"data.slope={text}"]).data.slope == value
    path.write_text(base.replace("kind: linear", f"kind: linear\n  slope: {text}"))
    assert load_config(path).data.slope == value


def test_learning_rate_in_scientific_notation_trains(tmp_path):
    path = write_config(tmp_path, linear(train={"epochs": 2, "batch_size": 8}))
    assert load_config(path, ["optimizer.lr=1e-3"]).optimizer.lr == 0.001
    result = run(["train", path, "--set", "optimizer.lr=1e-3", "-q"], tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("quoted", ['"0.01"', '"1e-3"', "'1e-3'"])
def test_quoted_numbers_stay_strings(tmp_path, quoted):
    text = yaml.safe_dump(linear(), sort_keys=False).replace("lr: 0.01", f"lr: {quoted}")
    refused(tmp_path, config_text(tmp_path, text), "optimizer.lr", "valid number")


@pytest.mark.parametrize("text, value", [("010", 10), ("0o17", 15), ("0x1F", 31)])
def test_integers_read_as_yaml_1_2(tmp_path, text, value):
    # YAML 1.1 read 010 as octal 8: a silently different number.
    path = write_config(tmp_path, linear())
    assert load_config(path, [f"train.epochs={text}"]).train.epochs == value


@pytest.mark.parametrize("text", ["1_000", "1:30", "0b11", ".inf", "1e999", ".nan"])
def test_yaml_1_1_and_non_finite_numbers_are_refused(tmp_path, text):
    path = write_config(tmp_path, linear())
    with pytest.raises(ConfigError, match="optimizer.lr"):
        load_config(path, [f"optimizer.lr={text}"])


# ------------------------------------------------------------ duplicate keys


def test_duplicate_nested_key_names_path_and_both_lines(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False)
    text = text.replace("  lr: 0.01\n", "  lr: 0.01\n  momentum: 0.9\n  lr: 0.5\n")
    lines = text.splitlines()
    first = lines.index("  lr: 0.01") + 1
    second = lines.index("  lr: 0.5") + 1
    out = refused(tmp_path, config_text(tmp_path, text), "optimizer.lr",
                  f"lines {first} and {second}", "c.yaml")
    assert "duplicate" in out


def test_duplicate_key_in_a_list_item_and_at_top_level(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False).replace(
        "out_features: 1", "out_features: 1\n    out_features: 2")
    refused(tmp_path, config_text(tmp_path, text), "model.layers.0.out_features")
    text = yaml.safe_dump(linear(), sort_keys=False) + "loss: l1\n"
    refused(tmp_path, config_text(tmp_path, text, "top.yaml"), "'loss'", "duplicate")


def test_duplicate_key_in_a_set_value(tmp_path):
    path = write_config(tmp_path, linear())
    with pytest.raises(ConfigError, match=r"--set.*duplicate key 'optimizer.lr'"):
        load_config(path, ["optimizer={type: sgd, lr: 0.1, lr: 0.2}"])


def test_merge_keys_are_not_duplicates_and_lines_point_at_the_override(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False)
    text = text.replace("optimizer:\n  type: sgd\n  lr: 0.01\n",
                        "optimizer:\n  <<: {type: sgd, lr: 0.01}\n  lr: -1.0\n")
    line = text.splitlines().index("  lr: -1.0") + 1
    refused(tmp_path, config_text(tmp_path, text), "optimizer.lr", f"line {line}")


# ----------------------------------------------------- alias bombs and size


def alias_bomb(levels: int) -> str:
    """'Billion laughs': each level lists the previous one nine times."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused_with_a_short_message(tmp_path, levels):
    # The layer list is validated item by item: 9**levels items.
    cfg = linear()
    cfg["model"]["layers"] = "LAYERS"
    text = alias_bomb(levels) + yaml.safe_dump(cfg, sort_keys=False).replace(
        "LAYERS", f"*a{levels}")
    path = config_text(tmp_path, text)
    with pytest.raises(ConfigError, match="alias") as exc:
        load_config(path)
    assert str(path) in str(exc.value) and len(str(exc.value)) < SHORT
    refused(tmp_path, path, "alias", "c.yaml")


def test_alias_bomb_in_a_set_value_is_refused(tmp_path):
    path = write_config(tmp_path, linear())
    bomb = "{" + alias_bomb(7).strip().replace("\n", ", ") + "}"
    with pytest.raises(ConfigError, match="--set.*alias"):
        load_config(path, [f"output={bomb}"])


def test_recursive_alias_is_refused(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False) + "output: &loop {dir: *loop}\n"
    with pytest.raises(ConfigError, match="alias"):
        load_config(config_text(tmp_path, text))


def test_plain_aliases_still_work(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False)
    text = text.replace("lr: 0.01", "lr: &lr 0.05\n  momentum: *lr")
    cfg = load_config(config_text(tmp_path, text))
    assert cfg.optimizer.lr == cfg.optimizer.momentum == 0.05


def test_huge_config_file_is_refused_before_parsing(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False) + ("# padding\n" * 120_000)
    path = config_text(tmp_path, text)
    refused(tmp_path, path, "c.yaml", "MB")


def test_deep_nesting_is_a_config_error(tmp_path):
    path = config_text(tmp_path, "data: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(tmp_path, path, "c.yaml", "nested")


def test_echoed_values_are_truncated(tmp_path):
    cfg = linear()
    cfg["optimizer"]["lr"] = "x" * 100_000
    out = refused(tmp_path, write_config(tmp_path, cfg), "optimizer.lr", "…")
    assert "x" * 81 not in out


def test_many_problems_are_capped(tmp_path):
    cfg = linear()
    cfg["model"]["layers"] = [{"type": "linear", "out_features": -1}] * 200
    result = run(["train", write_config(tmp_path, cfg)], tmp_path)
    assert result.exit_code == 2
    assert "model.layers.0.out_features" in result.output
    assert "and 180 more" in result.output and "model.layers.199" not in result.output


# ------------------------------------------------------ encoding and paths


def test_latin_1_config_names_file_line_and_utf_8(tmp_path):
    text = yaml.safe_dump(linear(), sort_keys=False) + "# caf\xe9 au lait\n"
    path = tmp_path / "latin.yaml"
    path.write_bytes(text.encode("latin-1"))
    line = len(text.splitlines())
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert str(path) in message and "UTF-8" in message and f"line {line}" in message
    refused(tmp_path, path, "latin.yaml", "UTF-8")


def test_config_path_that_is_a_folder(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    refused(tmp_path, folder, "configs", "folder")


def test_utf_8_with_bom_is_read(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(linear(), sort_keys=False).encode())
    assert load_config(path).optimizer.lr == 0.01


# ------------------------------- values that only failed once training began


@pytest.mark.parametrize("key", ["train.seed", "data.seed"])
@pytest.mark.parametrize("value", ["-1", str(2**32)])
def test_seeds_must_fit_the_generator(tmp_path, key, value):
    path = write_config(tmp_path, linear())
    refused(tmp_path, path, key, args=["--set", f"{key}={value}"])


def test_seed_limits_are_accepted(tmp_path):
    path = write_config(tmp_path, linear())
    assert load_config(path, [f"train.seed={2**32 - 1}", "data.seed=0"]).train.seed == 2**32 - 1


@pytest.mark.parametrize("dim", [5, 1, -2])
def test_softmax_dim_outside_the_arriving_shape_names_the_layer(tmp_path, dim):
    cfg = linear(loss="cross_entropy")
    cfg["data"] = {"type": "synthetic", "kind": "blobs", "n": 40, "centers": 3}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 3},
                              {"type": "log_softmax", "dim": dim}]
    refused(tmp_path, write_config(tmp_path, cfg), "model.layers.1 (log_softmax)", f"dim {dim}")


@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_dim_inside_the_shape_trains(tmp_path, dim):
    cfg = linear(loss="cross_entropy", train={"epochs": 1})
    cfg["data"] = {"type": "synthetic", "kind": "blobs", "n": 40, "centers": 3}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 3},
                              {"type": "log_softmax", "dim": dim}]
    result = run(["train", write_config(tmp_path, cfg), "-q"], tmp_path)
    assert result.exit_code == 0, result.output


def test_input_shape_that_differs_from_the_data(tmp_path):
    cfg = linear()
    cfg["model"]["input_shape"] = [3]
    refused(tmp_path, write_config(tmp_path, cfg), "model.input_shape", "3", "1")


def test_input_shape_that_matches_the_data_is_fine(tmp_path):
    cfg = linear(train={"epochs": 1})
    cfg["model"]["input_shape"] = [1]
    result = run(["train", write_config(tmp_path, cfg), "-q"], tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "bce_with_logits"])
def test_classification_loss_on_a_regression_target(tmp_path, loss):
    refused(tmp_path, write_config(tmp_path, linear(loss=loss)), "loss", loss, "regression")


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_regression_loss_on_a_classification_target(tmp_path, loss):
    cfg = linear(loss=loss)
    cfg["data"] = {"type": "synthetic", "kind": "blobs", "n": 40, "centers": 3}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": 3}]
    refused(tmp_path, write_config(tmp_path, cfg), "loss", loss, "classification")


@pytest.mark.parametrize("width", [1, 2])
def test_one_class_target_says_what_is_wrong_with_the_labels(tmp_path, width):
    rows = "\n".join(f"{i},{i % 3},x" for i in range(20))
    (tmp_path / "one.csv").write_text("a,b,label\n" + rows + "\n")
    cfg = linear(loss="cross_entropy")
    cfg["data"] = {"type": "csv", "path": "one.csv", "target": "label",
                   "task": "classification"}
    cfg["model"]["layers"] = [{"type": "linear", "out_features": width}]
    refused(tmp_path, write_config(tmp_path, cfg), "only 1 class", "'x'", "label",
            "at least 2", "data.task: regression")


# --------------------------------------- property: numbers read exactly or refused

# The YAML 1.2 core schema, written out independently of the loader.
INT_12 = re.compile(r"[-+]?[0-9]+")
OCT_12 = re.compile(r"0o[0-7]+")
HEX_12 = re.compile(r"0x[0-9a-fA-F]+")
FLOAT_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
SPECIAL_12 = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def yaml_12_number(text: str):
    """The number a plain YAML 1.2 scalar denotes, or None when it is no number."""
    if INT_12.fullmatch(text):
        return int(text)
    if OCT_12.fullmatch(text):
        return int(text[2:], 8)
    if HEX_12.fullmatch(text):
        return int(text[2:], 16)
    if FLOAT_12.fullmatch(text):
        return float(text)
    if SPECIAL_12.fullmatch(text):
        return float(text.lower().replace(".", ""))
    return None


def expected_lr(text: str):
    """The learning rate a scalar must validate to, or None if it must be refused."""
    number = yaml_12_number(text)
    if number is None or isinstance(number, bool):
        return None
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if math.isfinite(value) and value > 0 else None


SCALARS = st.one_of(
    st.from_regex(FLOAT_12, fullmatch=True),
    st.from_regex(INT_12, fullmatch=True),
    st.from_regex(r"0[ox][0-9a-fA-F]{1,4}", fullmatch=True),
    st.text(alphabet="0123456789.eE+-_xo:", min_size=1, max_size=10),
    st.sampled_from([".inf", "-.inf", ".NaN", "1_0", "0b1", "1:30", "1e400", "0.0"]),
)
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(scalar=SCALARS)
@example(scalar="1e-3")
@example(scalar="010")
def test_numeric_keys_read_exactly_what_yaml_1_2_says_or_refuse(tmp_path, scalar):
    expected = expected_lr(scalar)
    body = yaml.safe_dump(linear(), sort_keys=False)
    path = config_text(tmp_path, body.replace("lr: 0.01", f"lr: {scalar}"))
    assert f"lr: {scalar}\n" in path.read_text()
    override_path = config_text(tmp_path, body, "base.yaml")
    for load in (lambda: load_config(path),
                 lambda: load_config(override_path, [f"optimizer.lr={scalar}"])):
        if expected is None:
            with pytest.raises(ConfigError):
                load()
        else:
            assert load().optimizer.lr == expected

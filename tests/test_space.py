"""Search space files (micrograd/model_selection/space.py): validated like configs, with
the line and a did-you-mean, and checked against the config they vary."""
import pytest

from conftest import runner
from micrograd.config.loader import ConfigError
from micrograd.model_selection.space import (CategoricalParam, IntParam, load_space,
                                             overrides)
from micrograd_cli.main import app

CONFIG = """\
data:
  type: synthetic
  kind: blobs
  n: 120
  splits: {train: 0.6, val: 0.2, test: 0.2}
model:
  layers:
    - {type: linear, out_features: 8}
    - {type: relu}
    - {type: linear, out_features: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 16, monitor: accuracy}
"""


def write(tmp_path, space: str):
    (tmp_path / "c.yaml").write_text(CONFIG)
    (tmp_path / "s.yaml").write_text(space)
    return tmp_path / "c.yaml", tmp_path / "s.yaml"


def test_a_good_space_loads_with_every_kind_of_parameter(tmp_path):
    config, space = write(tmp_path, """\
optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
model.layers.0.out_features: {type: int, low: 4, high: 32, step: 4}
train.batch_size: [8, 16]
optimizer.type: {type: categorical, choices: [adam, adamw]}
""")
    loaded = load_space(space, config)
    assert list(loaded.params) == ["optimizer.lr", "model.layers.0.out_features",
                                   "train.batch_size", "optimizer.type"]
    assert isinstance(loaded.params["train.batch_size"], CategoricalParam)
    assert isinstance(loaded.params["model.layers.0.out_features"], IntParam)
    assert loaded.grid() is None  # a log-uniform float has no grid
    assert overrides({"optimizer.lr": 0.001, "optimizer.type": "adam"}) == [
        "optimizer.lr=0.001", 'optimizer.type="adam"']


def test_the_grid_of_a_finite_space(tmp_path):
    config, space = write(tmp_path, "model.layers.0.out_features: {type: int, low: 4, high: 12, "
                                    "step: 4}\noptimizer.lr: [0.01, 0.1]\n")
    assert load_space(space, config).grid() == {"model.layers.0.out_features": [4, 8, 12],
                                                "optimizer.lr": [0.01, 0.1]}


@pytest.mark.parametrize("text, expected", [
    ("optimizer.lr: {type: float, low: 0.001, hihg: 0.1}\n",
     ["line 1", "unknown key 'hihg'", "did you mean 'high'"]),
    ("train.epochs: {type: int, low: 1, high: 9}\noptimizer.lr: {type: flaot, low: 0.1, high: 1}\n",
     ["line 2", "unknown type 'flaot'", "did you mean 'float'"]),
    ("optimizer.lr: {type: float, low: 0.1, high: 0.01}\n", ["line 1", "above high"]),
    ("optimizer.lr: {type: float, low: 0, high: 1, log: true}\n", ["line 1", "low > 0"]),
    ("optimizer.lr: {type: int, low: 1.5, high: 3}\n", ["line 1", "optimizer.lr.low"]),
])
def test_a_bad_space_names_the_line(tmp_path, text, expected):
    config, space = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(space, config)
    for part in expected:
        assert part in str(err.value)


@pytest.mark.parametrize("text, expected", [
    ("train.epochs: {type: int, low: 1, high: 3}\noptimizer.lrr: {type: float, low: 0.1, high: 1}\n",
     ["line 2", "'lrr' is not a key of optimizer", "did you mean 'optimizer.lr'"]),
    ("model.layers.7.out_features: {type: int, low: 1, high: 3}\n",
     ["line 1", "list of 3"]),
    ("optimizer: {type: float, low: 0.1, high: 1}\n", ["line 1", "a section"]),
    ("optimizer.lr: {type: float, low: -1.0, high: 1}\n",
     ["line 1", "the config refuses optimizer.lr=-1.0"]),
    ("train.batch_size: [16, 0]\n", ["line 1", "train.batch_size=0"]),
])
def test_a_space_the_config_cannot_take_is_refused(tmp_path, text, expected):
    config, space = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(space, config)
    for part in expected:
        assert part in str(err.value)


def test_the_command_exits_2_on_a_typo_with_the_line_and_a_suggestion(tmp_path):
    config, space = write(tmp_path, "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
                                    "train.batch_sise: [8, 16]\n")
    result = runner.invoke(app, ["tune", str(config), "--space", str(space), "--trials", "2"])
    assert result.exit_code == 2
    assert "line 2" in result.output and "did you mean 'train.batch_size'" in result.output

"""Where data is found without a path: the data folder ($MICROGRAD_DATA or the
user's cache, and the development layout with only mnist-t10k/), ${VAR} in
config paths, the digits shipped inside the package, and configs that name no
path outside the repository."""
import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from micrograd.config.loader import ConfigError, load_config
from micrograd.data import download
from micrograd.data.idx import write_idx
from micrograd.data.images import image_folder, load_idx_images, read_split
from micrograd.datasets import DIGITS
from micrograd.datasets.make_digits_sample import select
from conftest import run, write_config

ROOT = Path(__file__).resolve().parents[1]


def digits_config(folder, data):
    return write_config(folder, {
        "data": {**data, "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
        "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"epochs": 1, "batch_size": 64}})


def t10k_pair(folder, n=50):
    folder.mkdir(parents=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return folder


# ------------------------------------------------------------------ the data folder


def test_cache_dir_prefers_microgradd_data_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROGRAD_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MICROGRAD_DATA")
    assert download.cache_dir() == tmp_path / "xdg" / "micrograd"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(download.sys, "platform", "linux")
    assert download.cache_dir() == tmp_path / "home" / ".cache" / "micrograd"


def test_a_t10k_only_folder_is_found_without_the_network(tmp_path, monkeypatch):
    """The development layout (MICROGRAD_DATA=../shared/data holds mnist-t10k/)."""
    monkeypatch.setenv("MICROGRAD_DATA", str(tmp_path))
    monkeypatch.setenv("MICROGRAD_MIRRORS", "http://127.0.0.1:9/unused/")
    folder = t10k_pair(tmp_path / "mnist-t10k")
    assert download.dataset_folder("mnist") == folder
    config = digits_config(tmp_path, {"type": "mnist"})
    s = load_idx_images(image_folder(load_config(config).data), splits=(0.6, 0.2, 0.2))
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 50


def test_a_full_set_is_preferred_to_the_t10k_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROGRAD_DATA", str(tmp_path))
    t10k_pair(tmp_path / "mnist-t10k")
    full = t10k_pair(tmp_path / "mnist")
    write_idx(full / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
    write_idx(full / "train-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8))
    assert download.dataset_folder("mnist", download=False) == full


def test_checksums_match_the_development_copy():
    """The recorded MNIST t10k checksums are those of the real files, when present."""
    folder = ROOT.parent / "shared" / "data" / "mnist-t10k"
    if not folder.is_dir():
        pytest.skip("no ../shared/data/mnist-t10k here")
    for stem in download.STEMS[2:]:
        raw = gzip.decompress((folder / (stem + ".gz")).read_bytes())
        assert (hashlib.sha256(raw).hexdigest(), len(raw)) == download.CHECKSUMS["mnist"][stem]


# ------------------------------------------------------------------ ${VAR} in paths


def test_microgradd_data_in_a_path_expands_against_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    config = write_config(tmp_path / "configs", {
        "data": {"type": "csv", "path": "${MICROGRAD_DATA}/house-prices/train.csv",
                 "target": "y"},
        "model": {"layers": [{"type": "linear", "out_features": 1}]},
        "loss": "mse", "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"epochs": 1, "batch_size": 4}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROGRAD_DATA", "data")
    assert load_config(config).data.path == str(tmp_path / "data/house-prices/train.csv")
    monkeypatch.delenv("MICROGRAD_DATA")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    assert "MICROGRAD_DATA is not set" in message and "data.path" in message
    assert "export MICROGRAD_DATA=" in message


def test_an_unset_variable_in_the_command_line_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROGRAD_DATA", raising=False)
    config = digits_config(tmp_path, {"type": "mnist", "sample": True})
    result = run(["train", config, "-q", "--set", "data.root=${MICROGRAD_DATA}/mnist",
                  "--set", "data.sample=false"], tmp_path)
    assert result.exit_code == 2 and "MICROGRAD_DATA is not set" in result.output


def test_shipped_configs_name_no_path_outside_the_repository():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        values = []
        for key in ("path", "root"):
            value = data["data"].get(key)
            values += value if isinstance(value, list) else [value] if value else []
        for value in values:
            rest = re.sub(r"^\$\{MICROGRAD_DATA\}/", "", value)
            assert rest != value or not Path(value).is_absolute(), (path.name, value)
            assert ".." not in Path(rest).parts and not Path(rest).is_absolute(), (path, value)
        assert "shared" not in path.read_text(), path.name


# ------------------------------------------------------------------ the shipped digits


def test_the_digits_sample_ships_300_of_each_digit():
    images, labels = read_split(DIGITS, "test", "mnist")
    assert images.shape == (3000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [300] * 10
    assert images.mean() > 20  # real digits, not blank
    assert (DIGITS / "README.md").read_text().count("CC BY-SA 3.0") == 1
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"micrograd.datasets" = ["digits/*.gz", "digits/README.md"]' in pyproject


def test_the_sample_is_chosen_by_file_order():
    labels = np.array([3, 1, 3, 3, 0, 1])
    assert select(labels, 2).tolist() == [0, 1, 2, 4, 5]


def test_sample_true_trains_with_no_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROGRAD_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("MICROGRAD_MIRRORS", "http://127.0.0.1:9/unused/")
    config = digits_config(tmp_path, {"type": "mnist", "sample": True})
    result = run(["train", config, "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("data, fragment", [
    ({"type": "mnist", "sample": True, "root": "x"}, "takes no root"),
    ({"type": "fashion_mnist", "sample": True}, "no fashion_mnist sample"),
])
def test_sample_with_a_folder_is_a_config_error(tmp_path, data, fragment):
    result = run(["train", digits_config(tmp_path, data), "-q"], tmp_path)
    assert result.exit_code == 2 and fragment in result.output

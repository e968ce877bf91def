"""train.init_from: start from given weights (a checkpoint .npz or .safetensors)."""
import copy

import numpy as np
import pytest

from conftest import BLOBS, config, run, write_config
from micrograd.checkpoint import CheckpointError, load_checkpoint
from micrograd.config.loader import ConfigError, validate
from micrograd.train import prepare, train


def model_arrays(path):
    _, arrays = load_checkpoint(path)
    return {k: v for k, v in arrays.items() if k.startswith("model/")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(config(tmp_path_factory.mktemp("base") / "run", epochs=3))


def test_starts_from_the_checkpoints_weights(trained, tmp_path):
    cfg = config(tmp_path / "ft", epochs=1, init_from=str(trained.run_dir / "best.npz"))
    run_ = prepare(cfg)
    from micrograd.train import init_weights

    init_weights(run_.model, cfg.train.init_from)
    best = model_arrays(trained.run_dir / "best.npz")
    for name, value in run_.model.state_dict().items():
        assert np.array_equal(np.asarray(value), best[f"model/{name}"]), name
    # and a run from them: the optimiser starts fresh (step 0 -> 1 epoch of steps)
    result = train(cfg)
    meta, _ = load_checkpoint(result.run_dir / "checkpoint.npz")
    assert meta["epoch"] == 1
    assert result.history[0]["train_loss"] < trained.history[0]["train_loss"]


def test_a_mismatching_shape_names_the_parameter(trained, tmp_path):
    data = copy.deepcopy(BLOBS)
    data["model"]["layers"][0]["out_features"] = 16
    data["train"]["init_from"] = str(trained.run_dir / "best.npz")
    data["output"] = {"dir": str(tmp_path / "ft")}
    with pytest.raises(CheckpointError, match=r"parameter '0\.weight' has shape"):
        train(validate(data))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="init_from"):
        train(config(tmp_path / "ft", init_from=str(tmp_path / "nope.npz")))


def test_cli_exit_codes(trained, tmp_path):
    data = copy.deepcopy(BLOBS)
    data["train"].update(epochs=1, init_from=str(trained.run_dir / "best.npz"))
    data["output"] = {"dir": str(tmp_path / "ok")}
    ok = run(["train", write_config(tmp_path, data)], tmp_path)
    assert ok.exit_code == 0, ok.output
    data["model"]["layers"][0]["out_features"] = 16
    data["output"] = {"dir": str(tmp_path / "bad")}
    bad = run(["train", write_config(tmp_path, data)], tmp_path)
    assert bad.exit_code == 1 and "0.weight" in bad.output
    data["train"]["init_from"] = str(tmp_path / "nope.npz")
    data["output"] = {"dir": str(tmp_path / "m")}
    missing = run(["train", write_config(tmp_path, data)], tmp_path)
    assert missing.exit_code == 2 and "init_from" in missing.output


def test_from_safetensors(trained, tmp_path):
    pytest.importorskip("safetensors")
    from micrograd.export import export_checkpoint

    path, _ = export_checkpoint(trained.run_dir / "best.npz", "safetensors",
                                tmp_path / "model.safetensors")
    cfg = config(tmp_path / "ft", epochs=1, init_from=str(path))
    run_ = prepare(cfg)
    from micrograd.train import init_weights

    init_weights(run_.model, path)
    best = model_arrays(trained.run_dir / "best.npz")
    for name, value in run_.model.state_dict().items():
        value = np.asarray(value)
        assert value.dtype == best[f"model/{name}"].dtype, name
        assert np.allclose(value, best[f"model/{name}"], rtol=1e-6), name

"""A NaN or infinite loss or gradient stops training: where (epoch, step, the
parameter), exit 3, and the last good checkpoints kept; gradient clipping from the
config bounds every update."""
import copy
import os

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import micrograd.train as T
from micrograd.checkpoint import load_checkpoint
from micrograd.config.loader import validate
from micrograd.train import TrainingDiverged, prepare, train
from micrograd_cli.main import app
from conftest import BLOBS, config

LINEAR = {
    "data": {"type": "synthetic", "kind": "linear", "n": 40,
             "splits": {"train": 0.8, "val": 0.2, "test": 0.0}},
    "model": {"layers": [{"type": "linear", "out_features": 1}]},
    "loss": "mse",
    "optimizer": {"type": "sgd", "lr": 0.01},
    "train": {"epochs": 30, "batch_size": 8, "seed": 0},
}


def poison_gradient(monkeypatch, parameter, at_step):
    """From training step ``at_step`` on, add sqrt(w - w) for one parameter w: zero in
    the forward pass, an infinite gradient in the backward pass (as a saturated
    sigmoid under BCE gives), so the loss stays finite and only that gradient is bad."""
    built, calls = {}, [0]
    real_model, real_loss = T.build_model, T.build_loss

    def build_model(*args, **kwargs):
        built["model"], rows = real_model(*args, **kwargs)
        return built["model"], rows

    def build_loss(cfg):
        loss_fn = real_loss(cfg)

        def poisoned(output, target):
            calls[0] += output.requires_grad  # not validation
            loss = loss_fn(output, target)
            if calls[0] >= at_step and output.requires_grad:
                w = dict(built["model"].named_parameters())[parameter]
                loss = loss + ((w - w.detach()) ** 0.5).sum()
            return loss
        return poisoned

    monkeypatch.setattr(T, "build_model", build_model)
    monkeypatch.setattr(T, "build_loss", build_loss)


def test_nan_gradient_names_the_parameter_and_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    poison_gradient(monkeypatch, "4.weight", at_step=15)  # epoch 3 of 6 batches each
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        train(config(tmp_path / "run"))
    exc = info.value
    assert (exc.epoch, exc.step, exc.parameter) == (3, 15, "4.weight")
    assert "at epoch 3, step 15: the gradient of parameter '4.weight' holds NaN or infinite" \
        in str(exc)
    # The best state so far was only in memory (saves go on a clock): now it is on disk.
    assert exc.run_dir == tmp_path / "run" and exc.kept == {"best.npz": 2}
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    meta, arrays = load_checkpoint(tmp_path / "run" / "best.npz")
    assert meta["epoch"] == 2
    assert all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")


def test_the_last_good_checkpoint_is_not_overwritten(tmp_path, monkeypatch):
    poison_gradient(monkeypatch, "0.bias", at_step=20)  # epoch 4
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        train(config(tmp_path / "run", checkpoint_every=1))
    assert info.value.kept["checkpoint.npz"] == 3
    meta, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["epoch"] == 3 and meta["step"] == 18


def test_cli_exits_3_naming_epoch_step_and_parameter(tmp_path, monkeypatch):
    poison_gradient(monkeypatch, "0.weight", at_step=8)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BLOBS))
    monkeypatch.chdir(tmp_path)
    with np.errstate(all="ignore"):
        result = CliRunner().invoke(app, ["train", "c.yaml", "--set", "output.dir=run"])
    assert result.exit_code == 3, result.output
    out = " ".join(result.output.split())
    assert "training diverged at epoch 2, step 8: the gradient of parameter '0.weight'" in out
    assert "The run folder" in out and "keeps the last good checkpoints: best.npz (epoch 1)" \
        in out
    assert "Traceback" not in out


def test_an_exploding_loss_exits_3(tmp_path):
    cfg = copy.deepcopy(LINEAR)
    cfg["optimizer"]["lr"] = 100.0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        with np.errstate(all="ignore"):
            result = CliRunner().invoke(app, ["train", "c.yaml"])
    finally:
        os.chdir(old)
    assert result.exit_code == 3, result.output
    out = " ".join(result.output.split())
    assert "training diverged at epoch" in out and "the loss is" in out
    assert "No checkpoint had been saved yet" in out or "keeps the last good" in out


@pytest.mark.parametrize("option,bound", [("clip_grad_norm", "norm"), ("clip_grad_value", "max")])
def test_gradient_clipping_from_the_config_bounds_each_update(tmp_path, option, bound):
    cfg = copy.deepcopy(LINEAR)
    cfg["optimizer"]["lr"] = 1.0
    cfg["train"].update({"epochs": 2, option: 1e-3})
    cfg["output"] = {"dir": str(tmp_path / "run")}
    config_ = validate(cfg)
    start = {k: v.copy() for k, v in prepare(config_).model.state_dict().items()}
    result = train(config_)
    steps = 2 * 4  # 32 training samples in batches of 8
    _, arrays = load_checkpoint(result.run_dir / "checkpoint.npz")
    moved = np.concatenate([(arrays[f"model/{k}"] - v).ravel() for k, v in start.items()])
    limit = steps * 1.0 * 1e-3 * (1 + 1e-5)
    size = np.linalg.norm(moved) if bound == "norm" else np.abs(moved).max()
    assert 0 < size <= limit
    # without clipping the same run moves much further (lr 1 on y = 2x)
    cfg["train"].pop(option)
    cfg["output"] = {"dir": str(tmp_path / "free")}
    with np.errstate(all="ignore"):
        try:
            free = train(validate(cfg)).run_dir
            _, loose = load_checkpoint(free / "checkpoint.npz")
            assert np.abs(loose["model/0.weight"] - start["0.weight"]).max() > limit
        except TrainingDiverged:
            pass  # diverging is moving further too

"""Resuming a run: N epochs straight and N/2 then --resume give bit-identical
weights and the same metrics.csv rows (times excepted), whatever the optimiser,
scheduler, dropout, batch norm and shuffling; a resume that cannot be exact is
refused with a message saying why."""
import copy
import json

import numpy as np
import pytest
import yaml

from conftest import BLOBS, SignalAt, assert_same_run, config, rows
from micrograd.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from micrograd.config.loader import ConfigError, validate
from micrograd.train import Reporter, train


OPTIMISERS = {
    "adam+step": ({"type": "adam", "lr": 0.01}, {"type": "step", "step_size": 2, "gamma": 0.5}),
    "sgd+plateau": ({"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
                    {"type": "plateau", "patience": 0, "factor": 0.5}),
    "rmsprop+cosine": ({"type": "rmsprop", "lr": 0.01, "centered": True, "momentum": 0.5},
                       {"type": "cosine", "t_max": 6}),
    "adamw+exponential": ({"type": "adamw", "lr": 0.01, "amsgrad": True},
                          {"type": "exponential", "gamma": 0.9}),
}


def with_optimiser(cfg, name):
    optimizer, scheduler = OPTIMISERS[name]
    data = cfg.model_dump(mode="json")
    data["optimizer"], data["scheduler"] = optimizer, scheduler
    return validate(data)


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("optimiser", sorted(OPTIMISERS))
def test_half_then_resume_equals_straight(tmp_path, optimiser):
    straight = train(with_optimiser(config(tmp_path / "straight"), optimiser))
    half = train(with_optimiser(config(tmp_path / "split", epochs=3), optimiser))
    assert len(rows(half.run_dir)) == 4
    resumed = train(with_optimiser(config(tmp_path / "elsewhere"), optimiser),
                    resume=half.run_dir)
    assert resumed.run_dir == half.run_dir  # the same run folder, not output.dir
    assert not (tmp_path / "elsewhere").exists()
    assert_same_run(straight.run_dir, resumed.run_dir)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    assert straight.best == {**resumed.best, "seconds": straight.best["seconds"]}


@pytest.mark.parametrize("at", [(2, 3), (1, 1), (3, 6)])
def test_interrupt_mid_epoch_then_resume_equals_straight(tmp_path, at):
    import signal

    from micrograd.train import TrainingInterrupted

    straight = train(config(tmp_path / "straight"))
    with pytest.raises(TrainingInterrupted) as info:
        train(config(tmp_path / "cut"), reporter=SignalAt([at], signal.SIGINT))
    exc = info.value
    assert exc.saved and exc.checkpoint == tmp_path / "cut" / "checkpoint.npz"
    meta, _ = load_checkpoint(exc.checkpoint)
    batches = 6  # 84 training samples in batches of 16
    if at[1] < batches:  # stopped after that very step
        assert (meta["epoch"], meta["train_state"]["batch"]) == (at[0] - 1, at[1])
    else:  # after an epoch's last batch the epoch is finished first
        assert (meta["epoch"], meta["train_state"]["batch"]) == (at[0], 0)
    assert len(rows(exc.run_dir)) == 1 + meta["epoch"]
    train(config(tmp_path / "cut"), resume=exc.checkpoint)
    assert_same_run(straight.run_dir, tmp_path / "cut")


def test_resume_after_a_crash_drops_rows_past_the_checkpoint(tmp_path):
    """A run killed after epoch 5 whose last save was epoch 4: metrics.csv is
    rewritten from the checkpoint's history, so no epoch appears twice."""
    straight = train(config(tmp_path / "straight", checkpoint_every=2))

    class Crash(Reporter):
        def epoch(self, row):
            if row["epoch"] == 5:
                raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(config(tmp_path / "crashed", checkpoint_every=2), reporter=Crash())
    assert len(rows(tmp_path / "crashed")) == 1 + 5
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.npz")[0]["epoch"] == 4
    train(config(tmp_path / "crashed", checkpoint_every=2), resume=tmp_path / "crashed")
    assert_same_run(straight.run_dir, tmp_path / "crashed")


def test_early_stopping_bookkeeping_survives_a_resume(tmp_path):
    # accuracy reaches 1.0 at once on well separated blobs, then cannot improve
    straight = train(config(tmp_path / "straight", epochs=20, monitor="accuracy",
                            early_stopping_patience=3))
    assert straight.stopped_early and len(straight.history) < 20
    train(config(tmp_path / "split", epochs=2, monitor="accuracy", early_stopping_patience=3))
    resumed = train(config(tmp_path / "split", epochs=20, monitor="accuracy",
                           early_stopping_patience=3), resume=tmp_path / "split")
    assert resumed.stopped_early
    assert_same_run(straight.run_dir, resumed.run_dir)
    with pytest.raises(ConfigError, match="stopped early"):
        train(config(tmp_path / "split", epochs=30, monitor="accuracy",
                     early_stopping_patience=3), resume=tmp_path / "split")


# ------------------------------------------------------------------ refusals


@pytest.fixture
def finished(tmp_path):
    return train(config(tmp_path / "run")).run_dir


def test_resuming_a_finished_run_asks_for_more_epochs(tmp_path, finished):
    with pytest.raises(ConfigError, match=r"trained all 6 epochs.*--set train.epochs=N"):
        train(config(tmp_path / "run"), resume=finished)


def test_a_different_config_is_refused_naming_the_keys(tmp_path, finished):
    data = config(tmp_path / "run", epochs=8).model_dump(mode="json")
    data["optimizer"]["lr"] = 0.1
    data["model"]["layers"][0]["out_features"] = 9
    with pytest.raises(ConfigError) as info:
        train(validate(data), resume=finished)
    message = str(info.value)
    assert "optimizer.lr is 0.1 here, 0.01 in the checkpoint" in message
    assert "model.layers.0.out_features is 9 here, 8 in the checkpoint" in message


def test_changed_data_is_refused(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x,y\n" + "".join(f"{i},{2 * i}\n" for i in range(20)))
    data = {"data": {"type": "csv", "path": str(table), "target": "y",
                     "splits": {"train": 0.8, "val": 0.2, "test": 0.0}},
            "model": {"layers": [{"type": "linear", "out_features": 1}]},
            "loss": "mse", "optimizer": {"type": "sgd", "lr": 0.01},
            "train": {"epochs": 2}, "output": {"dir": str(tmp_path / "run")}}
    train(validate(data))
    table.write_text("x,y\n" + "".join(f"{i},{3 * i}\n" for i in range(20)))
    data["train"]["epochs"] = 4
    with pytest.raises(CheckpointError, match="the data differs from the data it was trained on"):
        train(validate(data), resume=tmp_path / "run")


def test_checkpoints_that_cannot_be_resumed(tmp_path, finished):
    cfg = config(tmp_path / "run", epochs=8)
    with pytest.raises(CheckpointError, match="does not exist"):
        train(cfg, resume=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint.npz"):
        train(cfg, resume=tmp_path / "empty")

    def edit(name, change):
        meta, arrays = load_checkpoint(finished / "checkpoint.npz")
        for key in ("format_version", "micrograd_version"):
            meta.pop(key)
        change(meta, arrays)
        return save_checkpoint(tmp_path / name, meta, arrays)

    no_state = edit("a.npz", lambda m, a: m.pop("train_state"))
    with pytest.raises(CheckpointError, match="not the training state needed to resume"):
        train(cfg, resume=no_state)

    def bad_moment(meta, arrays):
        ref = meta["optimizer"]["state"]["0"]["exp_avg"]["__array__"]
        arrays[ref] = np.zeros(5, np.float32)
    with pytest.raises(CheckpointError, match="optimiser state 'exp_avg' of parameter '0.weight'"):
        train(cfg, resume=edit("b.npz", bad_moment))

    def bad_loader(meta, arrays):
        meta["loader"]["batch"] = 99
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(cfg, resume=edit("c.npz", bad_loader))

    def bad_rng(meta, arrays):
        meta["rng_state"] = {"bit_generator": "nope"}
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(cfg, resume=edit("d.npz", bad_rng))

    def short_history(meta, arrays):
        meta["history"] = meta["history"][:2]
    with pytest.raises(CheckpointError, match="history holds 2 epochs"):
        train(cfg, resume=edit("e.npz", short_history))


# ------------------------------------------------------------------ the command line

from conftest import run as invoke  # noqa: E402


def test_cli_resume_continues_the_same_run_folder(tmp_path):
    data = copy.deepcopy(BLOBS)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    result = invoke(["train", "c.yaml", "-q", "--set", "output.dir=straight"], tmp_path)
    assert result.exit_code == 0, result.output
    result = invoke(["train", "c.yaml", "-q", "--set", "output.dir=run",
                     "--set", "train.epochs=3"], tmp_path)
    assert result.exit_code == 0, result.output
    result = invoke(["train", "c.yaml", "--resume", "run"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "resuming from run/checkpoint.npz at epoch 4 (step 18)" in result.output
    assert "epoch 4/6" in result.output and "epoch 3/6" not in result.output
    assert_same_run(tmp_path / "straight", tmp_path / "run")
    assert json.loads(json.dumps(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())))[
        "train"]["epochs"] == 6

    result = invoke(["train", "c.yaml", "--resume", "run"], tmp_path)
    assert result.exit_code == 2 and "trained all 6 epochs" in result.output
    result = invoke(["train", "c.yaml", "--resume", "run", "--set", "optimizer.lr=0.5",
                     "--set", "train.epochs=9"], tmp_path)
    assert result.exit_code == 2 and "optimizer.lr is 0.5 here" in result.output
    result = invoke(["train", "c.yaml", "--resume", "missing"], tmp_path)
    assert result.exit_code == 1 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_a_checkpoint_from_before_a_config_key_was_added_still_resumes(tmp_path):
    """data.splits.folds/fold/repeat came with cross-validation: a stored config
    without them (an older run's) is the same config, not a different one."""
    cfg = config(tmp_path / "old", epochs=3)
    train(cfg)
    meta, arrays = load_checkpoint(tmp_path / "old" / "checkpoint.npz")
    for key in ("folds", "fold", "repeat"):
        meta["config"]["data"]["splits"].pop(key)
    for key in ("format_version", "micrograd_version"):
        meta.pop(key)
    save_checkpoint(tmp_path / "old" / "checkpoint.npz", meta, arrays)
    resumed = train(config(tmp_path / "old", epochs=5), resume=tmp_path / "old")
    assert len(resumed.history) == 5

"""A run folder belongs to one run, runs/latest is never followed, every write is named,
and train.monitor knows which way each metric improves (issue: silent wrong answers
and overwritten files)."""
import builtins
import copy
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import LINEAR, run, write_config
from micrograd.checkpoint import CheckpointSaveError, load_checkpoint
from micrograd.config.loader import ConfigError, validate
from micrograd.run import LATEST, RunFolder
from micrograd.train import train


def linear(**train_options):
    cfg = copy.deepcopy(LINEAR)
    cfg["train"].update(train_options)
    return cfg


# ------------------------------------------------------------------ monitor


def test_monitor_mae_keeps_the_lowest_mae(tmp_path):
    """mae goes down: best.npz is the epoch with the lowest validation MAE, not epoch 1."""
    write_config(tmp_path, linear(monitor="mae"))
    assert run(["train", "config.yaml", "-q"], tmp_path).exit_code == 0
    run_dir = Path((tmp_path / LATEST).read_text().strip())
    best = load_checkpoint(run_dir / "best.npz")[0]
    maes = [row["val_mae"] for row in best["history"]]
    assert best["epoch"] == 1 + int(np.argmin(maes)) > 250
    result = run(["predict", "--input", "11"], tmp_path)
    assert abs(float(result.output) - 22) < 0.1, result.output


def test_early_stopping_waits_while_mae_falls(tmp_path):
    """With patience 5, a falling MAE never stops the run early (it stopped at epoch 6)."""
    cfg = linear(monitor="mae", early_stopping_patience=5, epochs=60)
    cfg["optimizer"]["lr"] = 0.001  # a small step: the MAE falls every epoch
    result = train(validate({**cfg, "output": {"dir": str(tmp_path / "r")}}))
    maes = [row["val_mae"] for row in result.history]
    assert all(b < a for a, b in zip(maes, maes[1:]))
    assert not result.stopped_early and len(result.history) == 60


@pytest.mark.parametrize("monitor, goal", [("accuracy", "max"), ("val_f1_macro", "max"),
                                           ("loss", "min"), ("rmse", "min"), ("r2", "max")])
def test_each_metric_knows_its_direction(monitor, goal):
    from micrograd.metrics import GOAL, improved

    name = validate(linear(monitor=monitor)).train.monitor
    assert GOAL[name] == goal
    assert improved(name, 2.0, 1.0) == (goal == "max")


def test_misspelt_monitor_is_an_error_with_a_suggestion(tmp_path):
    text = yaml.safe_dump(linear(monitor="acuracy"), sort_keys=False)
    (tmp_path / "c.yaml").write_text(text)
    result = run(["train", "c.yaml"], tmp_path)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "monitor" in l)
    assert result.exit_code == 2, result.output
    assert "train.monitor" in result.output and f"line {line}" in result.output
    assert "did you mean 'accuracy'" in result.output


def test_monitor_must_be_computed_for_the_task(tmp_path):
    write_config(tmp_path, linear(monitor="accuracy"))
    result = run(["train", "config.yaml"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "'accuracy' is not computed for a regression target" in result.output
    assert "mae" in result.output


# ------------------------------------------------------------- run folders


def files_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_reused_output_dir_is_refused_and_left_intact(tmp_path):
    write_config(tmp_path, {**linear(epochs=50), "output": {"dir": "out"}})
    assert run(["train", "config.yaml", "-q"], tmp_path).exit_code == 0
    before = files_of(tmp_path / "out")
    write_config(tmp_path, {**linear(epochs=3), "output": {"dir": "out"}})
    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "holds an earlier run" in result.output and "--force" in result.output
    assert files_of(tmp_path / "out") == before


def test_force_replaces_the_earlier_run_and_no_stale_best_survives(tmp_path):
    """The first run validates well for 300 epochs; the replacement trains 2 epochs at
    a tiny learning rate: predict must serve the replacement, not the old best.npz."""
    write_config(tmp_path, {**linear(), "output": {"dir": "out"}})
    assert run(["train", "config.yaml", "-q"], tmp_path).exit_code == 0
    good = float(run(["predict", "--input", "11"], tmp_path).output)
    write_config(tmp_path, {**linear(epochs=2), "optimizer": {"type": "sgd", "lr": 1e-6},
                            "output": {"dir": "out"}})
    result = run(["train", "config.yaml", "-q", "--force"], tmp_path)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "out" / "best.npz")[0]["epoch"] <= 2
    fresh = float(run(["predict", "--input", "11"], tmp_path).output)
    assert abs(good - 22) < 0.1 and abs(fresh - 22) > 1
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "finished"


def test_a_folder_of_user_files_is_refused_even_with_force(tmp_path):
    """output.dir: '' means the config's own folder: its config.yaml must survive."""
    folder = tmp_path / "project"
    folder.mkdir()
    config = write_config(folder, {**linear(), "output": {"dir": ""}})
    before = files_of(folder)
    for args in ([], ["--force"]):
        result = run(["train", str(config), "-q", *args], tmp_path)
        assert result.exit_code == 2, result.output
        assert "files that micrograd did not write" in result.output
        assert "config.yaml" in result.output
    assert files_of(folder) == before


def test_a_folder_in_use_by_another_run_is_refused(tmp_path):
    with RunFolder.create(tmp_path / "out") as holder:
        holder.start("other")
        write_config(tmp_path, {**linear(epochs=3), "output": {"dir": "out"}})
        result = run(["train", "config.yaml", "-q", "--force"], tmp_path)
        assert result.exit_code == 2, result.output
        assert "in use by another training run" in result.output
        assert f"pid {os.getpid()}" in result.output
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.json"]
    # released: now it holds a (crashed) earlier run, replaceable with --force
    assert run(["train", "config.yaml", "-q", "--force"], tmp_path).exit_code == 0


def test_automatic_folders_never_collide(tmp_path):
    a = RunFolder.auto("same", parent=tmp_path)
    b = RunFolder.auto("same", parent=tmp_path)
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()
    a.release()
    b.release()


def test_resume_refuses_an_output_dir_it_would_ignore(tmp_path):
    write_config(tmp_path, {**linear(epochs=3), "output": {"dir": "first"}})
    assert run(["train", "config.yaml", "-q"], tmp_path).exit_code == 0
    result = run(["train", "config.yaml", "--resume", "first", "--set", "train.epochs=5",
                  "--set", "output.dir=second"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "cannot move" in result.output and not (tmp_path / "second").exists()
    result = run(["train", "config.yaml", "--resume", "first", "--set", "train.epochs=5",
                  "-q"], tmp_path)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------- runs/latest


@pytest.mark.parametrize("kind", ["symlink to a user file", "broken symlink", "folder"])
def test_latest_is_replaced_never_followed(tmp_path, kind):
    (tmp_path / "runs").mkdir()
    user_file = tmp_path / "precious.txt"
    user_file.write_text("keep me\n")
    latest = tmp_path / LATEST
    if kind == "symlink to a user file":
        latest.symlink_to(user_file)
    elif kind == "broken symlink":
        latest.symlink_to(tmp_path / "nowhere" / "target")
    else:
        latest.mkdir()
    write_config(tmp_path, linear(epochs=3))
    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    assert user_file.read_text() == "keep me\n"
    assert not (tmp_path / "nowhere").exists()
    if kind == "folder":
        assert "warning: could not record" in result.output
    else:
        assert latest.is_file() and not latest.is_symlink()
        assert run(["predict", "--input", "1"], tmp_path).exit_code == 0


# ------------------------------------------------------------- named writes


def test_a_failed_metrics_append_names_the_file_and_saves_the_state(tmp_path, monkeypatch):
    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        if str(file).endswith("metrics.csv") and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    cfg = validate({**linear(epochs=10, checkpoint_every=100), "output": {"dir": str(tmp_path / "r")}})
    with pytest.raises(CheckpointSaveError) as info:
        train(cfg)
    message = str(info.value)
    assert "metrics.csv" in message and "No space left on device" in message
    assert "free some space" in message and "--resume" in message
    assert load_checkpoint(tmp_path / "r" / "checkpoint.npz")[0]["epoch"] == 1
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"
    monkeypatch.setattr(builtins, "open", real_open)
    resumed = train(cfg, resume=tmp_path / "r")
    assert len(resumed.history) == 10
    assert len((tmp_path / "r" / "metrics.csv").read_text().splitlines()) == 11


def test_a_long_run_checkpoint_stays_small(tmp_path):
    """The metrics history is one float64 table, not JSON rows: 1,000 epochs of a
    2-parameter model took 250 KB before."""
    cfg = validate({**linear(epochs=1000), "output": {"dir": str(tmp_path / "r")}})
    result = train(cfg)
    path = tmp_path / "r" / "checkpoint.npz"
    assert path.stat().st_size < 100_000
    assert load_checkpoint(path)[0]["history"] == result.history


# ------------------------------------------------------------- small ones


def test_debug_is_accepted_after_the_command(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {type: synthetic}\n")
    result = run(["train", "c.yaml", "--debug"], tmp_path)
    assert isinstance(result.exception, ConfigError)  # raised, so the traceback shows


def test_help_shows_no_bool_placeholders_and_says_set_repeats(tmp_path):
    result = run(["train", "--help"], tmp_path)
    assert "<bool>" not in result.output and "Repeat" in result.output
    assert "KEY=VALUE" in result.output


def test_error_paths_are_shown_relative_to_the_current_folder(tmp_path):
    """The library resolves paths to absolute ones; messages show them as typed."""
    work = tmp_path / "work"
    work.mkdir()
    cfg = {**linear(), "data": {"type": "csv", "path": "../elsewhere/missing.csv", "target": "y"}}
    write_config(work, cfg)
    result = run(["train", "config.yaml"], work)
    assert result.exit_code == 1, result.output
    assert "../elsewhere/missing.csv" in result.output and str(tmp_path) not in result.output

"""micrograd tune (micrograd/model_selection/tune.py): totals, resuming, a killed run's
trial retried, two workers, and best.yaml reproducing the best trial."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import runner
from micrograd_cli.main import app

optuna = pytest.importorskip("optuna")

CONFIG = """\
data:
  type: synthetic
  kind: moons
  n: {n}
  noise: 0.2
  splits: {{train: 0.6, val: 0.2, test: 0.2}}
model:
  layers:
    - {{type: linear, out_features: 8}}
    - {{type: relu}}
    - {{type: linear, out_features: 2}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: {epochs}, batch_size: 16, monitor: accuracy}}
"""
SPACE = """\
optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
model.layers.0.out_features: {type: int, low: 2, high: 16, step: 2}
"""


def setup(tmp_path, n=120, epochs=3):
    (tmp_path / "c.yaml").write_text(CONFIG.format(n=n, epochs=epochs))
    (tmp_path / "s.yaml").write_text(SPACE)
    return tmp_path / "c.yaml", tmp_path / "s.yaml"


def tune(config, space, study, *args):
    result = runner.invoke(app, ["tune", str(config), "--space", str(space), "--out", str(study),
                                 *args])
    assert result.exit_code == 0, result.output
    return result


def rows(study: Path) -> list[dict]:
    with open(study / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def counted(study: Path) -> list[dict]:
    return [r for r in rows(study) if r["state"] in ("COMPLETE", "PRUNED")]


def test_trials_is_the_total_and_a_rerun_runs_only_the_missing(tmp_path):
    config, space = setup(tmp_path)
    study = tmp_path / "study"
    out = tune(config, space, study, "--trials", "6").output
    assert len(counted(study)) == 6 and "6 run now" in out
    out = tune(config, space, study, "--trials", "8").output
    assert len(counted(study)) == 8 and "2 run now" in out
    numbers = [int(r["number"]) for r in rows(study)]
    assert sorted(numbers) == list(range(8))
    assert (study / "study.db").is_file() and (study / "best.yaml").is_file()
    assert all((study / f"trial-{n}" / "config.yaml").is_file() for n in numbers)


def test_a_rerun_with_another_space_is_refused(tmp_path):
    config, space = setup(tmp_path)
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "2")
    space.write_text(SPACE + "train.batch_size: [8, 16]\n")
    result = runner.invoke(app, ["tune", str(config), "--space", str(space), "--out", str(study),
                                 "--trials", "3"])
    assert result.exit_code == 2 and "another space" in result.output


def test_best_yaml_retrains_to_the_best_trials_figure(tmp_path):
    config, space = setup(tmp_path, n=200, epochs=4)
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "5", "--seed", "3")
    best = max((r for r in rows(study) if r["state"] == "COMPLETE"),
               key=lambda r: float(r["value"]))
    again = runner.invoke(app, ["train", str(study / "best.yaml"), "-q",
                                "--set", f"output.dir={tmp_path / 'again'}"])
    assert again.exit_code == 0, again.output
    with open(tmp_path / "again" / "metrics.csv", newline="") as f:
        retrained = max(float(r["val_accuracy"]) for r in csv.DictReader(f))
    assert retrained == float(best["value"])
    # best/ is the best trial's run folder, usable by predict
    predicted = runner.invoke(app, ["predict", "--checkpoint", str(study / "best"),
                                    "--input", "0.5,0.5"])
    assert predicted.exit_code == 0, predicted.output


def test_two_workers_on_sqlite_complete_exactly_n_trials(tmp_path):
    config, space = setup(tmp_path)
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "7", "--workers", "2")
    numbers = [int(r["number"]) for r in counted(study)]
    assert len(numbers) == 7 and len(set(numbers)) == 7
    pids = {optuna.load_study(study_name="c", storage=f"sqlite:///{study / 'study.db'}")
            .trials[n].user_attrs["pid"] for n in numbers}
    assert len(pids) == 2  # both processes ran trials


def _cli(*args):
    return [sys.executable, "-m", "micrograd_cli.main", "tune", *map(str, args)]


def test_a_killed_study_resumes_to_the_exact_count_and_the_same_best(tmp_path):
    config, space = setup(tmp_path, n=600, epochs=15)
    args = ["--trials", "5", "--seed", "1", "--no-prune"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(config, "--space", space, "--out", killed, *args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (killed / "trial-2" / "metrics.csv").is_file():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-trial: trial 2 stays RUNNING in the store
    proc.wait()
    subprocess.run(_cli(config, "--space", space, "--out", killed, *args),
                   check=True, capture_output=True)
    done = counted(killed)
    assert len(done) == 5
    all_rows = rows(killed)
    assert len({r["number"] for r in all_rows}) == len(all_rows)
    failed = [r for r in all_rows if r["state"] == "FAIL"]
    assert [r["number"] for r in failed] == ["2"]
    assert [r["retry_of"] for r in done if r["retry_of"]] == ["2"]

    straight = tmp_path / "straight"
    subprocess.run(_cli(config, "--space", space, "--out", straight, *args),
                   check=True, capture_output=True)
    key = lambda r: float(r["value"])  # noqa: E731
    assert sorted(map(key, done)) == sorted(map(key, counted(straight)))
    assert (killed / "best.yaml").read_text() == (straight / "best.yaml").read_text()


def test_without_optuna_the_command_names_the_extra(tmp_path, monkeypatch):
    config, space = setup(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = runner.invoke(app, ["tune", str(config), "--space", str(space)])
    assert result.exit_code == 2
    assert "pip install 'micrograd-trainer[tune]'" in result.output


def test_cv_scores_each_trial_by_the_mean_over_folds(tmp_path):
    config, space = setup(tmp_path)
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "2", "--cv", "3")
    assert len(counted(study)) == 2
    assert sorted(p.name for p in (study / "trial-0").glob("fold-*")) == [
        "fold-0-0", "fold-0-1", "fold-0-2"]
    assert (study / "best.yaml").is_file()


def test_a_layer_count_is_searched_as_a_choice_of_layer_lists(tmp_path):
    """model.layers names a section: its choices are whole layer lists, so a search can
    vary how many hidden layers there are; best.yaml holds the chosen list."""
    import yaml

    config, _ = setup(tmp_path)
    one = [{"type": "linear", "out_features": 8}, {"type": "relu"},
           {"type": "linear", "out_features": 2}]
    two = one[:2] + [{"type": "linear", "out_features": 8}, {"type": "relu"}] + one[2:]
    space = tmp_path / "layers.yaml"
    space.write_text(yaml.safe_dump({"model.layers": [one, two]}))
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "6", "--sampler", "random", "--seed", "0",
         "--no-prune")
    done = counted(study)
    assert len(done) == 6 and {len(yaml.safe_load(r["model.layers"])) for r in done} <= {3, 5}
    best = yaml.safe_load((study / "best.yaml").read_text())["model"]["layers"]
    assert [layer["type"] for layer in best] in ([layer["type"] for layer in one],
                                                 [layer["type"] for layer in two])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model.layers": [[{"type": "linaer", "out_features": 2}]]}))
    result = runner.invoke(app, ["tune", str(config), "--space", str(bad), "--out",
                                 str(tmp_path / "nope")])
    assert result.exit_code == 2 and "model.layers" in result.output, result.output


def test_a_grid_search_visits_every_point_once(tmp_path):
    config, _ = setup(tmp_path, epochs=2)
    space = tmp_path / "grid.yaml"
    space.write_text("optimizer.lr: [0.001, 0.01, 0.1]\nmodel.layers.0.out_features: [4, 8]\n")
    study = tmp_path / "study"
    tune(config, space, study, "--trials", "10", "--sampler", "grid", "--no-prune")
    points = [(r["optimizer.lr"], r["model.layers.0.out_features"]) for r in counted(study)]
    assert len(points) == 6 and len(set(points)) == 6  # the total capped at the grid

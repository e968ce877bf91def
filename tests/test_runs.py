"""micrograd runs: listing run folders, diffing two, and train --print-config."""
import copy
import json
import subprocess
import sys

import pytest
import yaml
from conftest import LINEAR, run, write_config

from micrograd.runs import find_runs, read_run


def _config(tmp_path, lr=0.01):
    data = copy.deepcopy(LINEAR)
    data["data"]["n"] = 20
    data["data"]["splits"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    data["train"]["epochs"] = 3
    data["optimizer"]["lr"] = lr
    return write_config(tmp_path, data, name=f"lin-{lr}.yaml")


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich's table: room for every cell on one line
    for name, lr in (("a", 0.01), ("b", 0.02)):
        result = run(["train", _config(tmp_path, lr), "-q",
                      "--set", f"output.dir={tmp_path / 'runs' / name}"], tmp_path)
        assert result.exit_code == 0, result.output
    return tmp_path


def test_runs_table_lists_status_and_figures(two_runs):
    result = run(["runs"], two_runs)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "finished" in line]
    assert len(lines) == 2, result.output
    assert all("val_loss" in line and "r2" in line and "rmse" in line for line in lines)
    assert "lin-0.01" in lines[0] and "lin-0.02" in lines[1]  # oldest first


def test_runs_json_parses(two_runs):
    result = run(["runs", "runs", "--json"], two_runs)
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == ["a", "b"]
    for r in records:
        assert r["epoch"] == 3 and r["monitor"] == "val_loss"
        assert r["best_value"] == r["best"]["val_loss"] and "r2" in r["test"]


def test_dead_unreadable_and_old_folders_are_listed(two_runs):
    runs = two_runs / "runs"
    info = json.loads((runs / "a" / "run.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    info.update(status="running", pid=int(dead))
    info.pop("ended")
    (runs / "a" / "run.json").write_text(json.dumps(info))
    (runs / "b" / "run.json").write_text("{not json")
    old = runs / "old"
    old.mkdir()
    (old / "metrics.csv").write_text("epoch,train_loss,val_loss\n1,2.0,1.5\n2,1.0,0.5\n"
                                     "3,0.8,0.7\n")
    result = run(["runs"], two_runs)
    assert result.exit_code == 0, result.output
    assert "died" in result.output and "unreadable" in result.output
    records = {r.path.name: r for r in find_runs(runs)}
    assert records["a"].status == "died"
    assert records["b"].status == "unreadable" and records["b"].epoch == 3  # from metrics.csv
    assert records["old"].epoch == 3 and records["old"].best["val_loss"] == 0.5


def test_a_running_run_of_a_live_process_stays_running(two_runs):
    path = two_runs / "runs" / "a" / "run.json"
    info = json.loads(path.read_text())
    import os
    info.update(status="running", pid=os.getpid())
    path.write_text(json.dumps(info))
    assert read_run(path.parent).status == "running"


def test_runs_diff_shows_the_changed_key_and_both_metrics(two_runs):
    result = run(["runs", "diff", "runs/a", "runs/b"], two_runs)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "optimizer.lr" in line)
    assert "0.01" in line and "0.02" in line
    assert "output.dir" in result.output  # the folders differ too
    assert "val_loss" in result.output and "r2" in result.output
    report = json.loads(run(["runs", "diff", "runs/a", "runs/b", "--json"], two_runs).output)
    keys = {row["key"]: row for row in report["config"]}
    assert keys["optimizer.lr"]["a"] == 0.01 and keys["optimizer.lr"]["b"] == 0.02
    assert {row["key"] for row in report["test"]} >= {"r2", "rmse"}
    assert all(row["a"] is not None and row["b"] is not None for row in report["best"])


def test_runs_diff_refuses_a_folder_that_is_not_a_run(two_runs):
    (two_runs / "empty").mkdir()
    result = run(["runs", "diff", "runs/a", "empty"], two_runs)
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_runs_in_an_empty_or_missing_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    result = run(["runs"], tmp_path)
    assert result.exit_code == 0 and "no run folders" in result.output
    assert run(["runs", "nowhere"], tmp_path).exit_code == 2


def test_print_config_prints_defaults_and_writes_nothing(tmp_path):
    config = _config(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(["train", config, "--print-config", "--set", "train.epochs=7"], tmp_path)
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["train"]["batch_size"] == 8 and printed["train"]["epochs"] == 7
    assert printed["train"]["monitor"] == "loss"  # a default the file does not give
    assert printed["optimizer"]["momentum"] == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/ folder


def test_print_config_reports_a_bad_config(tmp_path):
    config = _config(tmp_path)
    result = run(["train", config, "--print-config", "--set", "train.epochs=0"], tmp_path)
    assert result.exit_code == 2 and not (tmp_path / "runs").exists()

"""micrograd plot, eval --plot and the sparkline of `train` and `runs` (issue 14)."""
import copy
import math
import subprocess
import sys

import pytest
from conftest import BLOBS, LINEAR, run, write_config

from micrograd.sparkline import BARS, sparkline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ sparkline


def test_sparkline_of_a_monotone_series_is_monotone():
    rising = sparkline(range(20))
    assert len(rising) == 20 and rising[0] == BARS[0] and rising[-1] == BARS[-1]
    assert [BARS.index(c) for c in rising] == sorted(BARS.index(c) for c in rising)
    falling = sparkline([1 / (i + 1) for i in range(30)], width=10)
    assert len(falling) == 10
    assert [BARS.index(c) for c in falling] == sorted((BARS.index(c) for c in falling),
                                                      reverse=True)


def test_sparkline_of_a_constant_series_is_flat():
    line = sparkline([0.5] * 7)
    assert len(line) == 7 and len(set(line)) == 1 and line[0] in BARS


def test_sparkline_survives_nan_inf_and_empty():
    line = sparkline([1.0, math.nan, 2.0, math.inf, None, 3.0])
    assert len(line) == 6 and "nan" not in line.lower()
    assert set(line) <= set(BARS) | {" "} and line[1] == " "
    assert sparkline([]) == "" and sparkline([math.nan]) == " "


def test_help_imports_no_matplotlib():
    code = ("import sys, micrograd_cli.main, micrograd.sparkline; "
            "sys.exit(1 if 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    code = ("import sys; from typer.testing import CliRunner; from micrograd_cli.main import app; "
            "r = CliRunner().invoke(app, ['--help']); "
            "sys.exit(1 if r.exit_code or 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------ runs


def _classification(tmp_path, name="blobs"):
    data = copy.deepcopy(BLOBS)
    data["data"]["splits"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    data["train"].update(epochs=4, monitor="accuracy")
    data.pop("scheduler")
    data["output"] = {"dir": str(tmp_path / "runs" / name)}
    result = run(["train", write_config(tmp_path, data, name=f"{name}.yaml"), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / name


def _regression(tmp_path, name="lin", lr=0.01):
    data = copy.deepcopy(LINEAR)
    data["data"].update(n=40, splits={"train": 0.6, "val": 0.2, "test": 0.2})
    data["train"]["epochs"] = 5
    data["optimizer"]["lr"] = lr
    data["output"] = {"dir": str(tmp_path / "runs" / name)}
    result = run(["train", write_config(tmp_path, data, name=f"{name}.yaml"), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / name


def _assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 5_000, (path, path.stat().st_size)


def test_train_prints_a_sparkline_and_runs_shows_one(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    data = copy.deepcopy(LINEAR)
    data["train"]["epochs"] = 6
    data["output"] = {"dir": str(tmp_path / "runs" / "a")}
    result = run(["train", write_config(tmp_path, data)], tmp_path)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("val_loss by epoch: "))
    assert len(line.split(": ", 1)[1]) == 6 and set(line.split(": ", 1)[1]) <= set(BARS)
    listed = run(["runs"], tmp_path)
    assert listed.exit_code == 0, listed.output
    assert "curve" in listed.output
    row = next(x for x in listed.output.splitlines() if "finished" in x)
    assert sum(c in BARS for c in row) == 6


def test_plot_classification_run(tmp_path):
    pytest.importorskip("matplotlib")
    folder = _classification(tmp_path)
    result = run(["plot", folder], tmp_path)
    assert result.exit_code == 0, result.output
    _assert_png(folder / "learning_curves.png")
    _assert_png(folder / "best_confusion.png")
    assert "best_confusion.png" in result.output


def test_plot_regression_run_and_eval_plot(tmp_path):
    pytest.importorskip("matplotlib")
    folder = _regression(tmp_path)
    result = run(["plot", folder, "--output", tmp_path / "figs"], tmp_path)
    assert result.exit_code == 0, result.output
    _assert_png(tmp_path / "figs" / "learning_curves.png")
    _assert_png(tmp_path / "figs" / "best_predicted.png")
    assert not (folder / "learning_curves.png").exists()
    result = run(["eval", folder / "checkpoint.npz", "--plot"], tmp_path)
    assert result.exit_code == 0, result.output
    _assert_png(folder / "checkpoint_predicted.png")


def test_eval_plot_confusion_matrix(tmp_path):
    pytest.importorskip("matplotlib")
    folder = _classification(tmp_path)
    result = run(["eval", folder, "--plot"], tmp_path)
    assert result.exit_code == 0, result.output
    _assert_png(folder / "best_confusion.png")


def test_several_runs_are_overlaid(tmp_path):
    pytest.importorskip("matplotlib")
    a, b = _regression(tmp_path, "a", 0.01), _regression(tmp_path, "b", 0.005)
    result = run(["plot", a, b, "-o", tmp_path / "cmp"], tmp_path)
    assert result.exit_code == 0, result.output
    _assert_png(tmp_path / "cmp" / "learning_curves_compare.png")
    _assert_png(tmp_path / "cmp" / "a-best_predicted.png")
    _assert_png(tmp_path / "cmp" / "b-best_predicted.png")
    from micrograd import plots

    plt = plots._pyplot()
    fig_path = plots.learning_curves([a, b], tmp_path / "x.png")
    assert fig_path.is_file() and not plt.get_fignums()  # figures are closed


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    folder = _regression(tmp_path)
    code = ("import sys; sys.modules['matplotlib'] = None; "
            "from micrograd_cli.main import app; app()")
    result = subprocess.run([sys.executable, "-c", code, "plot", str(folder)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'micrograd-trainer[plot]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""The command line through Typer's CliRunner: config errors, overrides, summary,
and a full train -> eval -> predict cycle on tiny data in a temporary folder."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import CNN, LINEAR, make_idx_folder, run, runner, write_config
from micrograd_cli.main import app


# ------------------------------------------------------------- config errors


def expect_config_error(tmp_path, text, *fragments, args=()):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run(["train", str(path), *args], tmp_path)
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    return result


def test_unknown_key_suggests_the_right_one(tmp_path):
    text = yaml.safe_dump({**{k: v for k, v in LINEAR.items() if k != "optimizer"},
                           "optimzer": LINEAR["optimizer"]}, sort_keys=False)
    expect_config_error(tmp_path, text, "optimzer", "did you mean 'optimizer'", "line ")


def test_wrong_type_names_key_path_and_line(tmp_path):
    cfg = json.loads(json.dumps(LINEAR))
    cfg["model"]["layers"][0]["out_features"] = "three"
    text = yaml.safe_dump(cfg, sort_keys=False)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "out_features" in l)
    expect_config_error(tmp_path, text, "model.layers.0.out_features", f"line {line}")


def test_string_never_becomes_a_number(tmp_path):
    cfg = json.loads(json.dumps(LINEAR))
    cfg["optimizer"]["lr"] = "0.01"
    expect_config_error(tmp_path, yaml.safe_dump(cfg), "optimizer.lr", "valid number")


@pytest.mark.parametrize("key,value,fragment", [
    ("lr", -0.1, "optimizer.lr"),
    ("batch_size", 0, "train.batch_size"),
])
def test_out_of_range_values(tmp_path, key, value, fragment):
    cfg = json.loads(json.dumps(LINEAR))
    section = "optimizer" if key == "lr" else "train"
    cfg[section][key] = value
    expect_config_error(tmp_path, yaml.safe_dump(cfg), fragment, "greater than 0")


def test_malformed_yaml(tmp_path):
    expect_config_error(tmp_path, "data: [unclosed\nmodel: {", "malformed YAML", "line")


def test_unknown_layer_type_suggests(tmp_path):
    cfg = json.loads(json.dumps(LINEAR))
    cfg["model"]["layers"].append({"type": "relux"})
    expect_config_error(tmp_path, yaml.safe_dump(cfg), "model.layers.1", "did you mean 'relu'")


def test_missing_config_file(tmp_path):
    result = run(["train", str(tmp_path / "nope.yaml")], tmp_path)
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_override_is_a_config_error(tmp_path):
    path = write_config(tmp_path, LINEAR)
    expect_config_error(tmp_path, path.read_text(), "train.epochs", "--set",
                        args=["--set", "train.epochs=many"])
    expect_config_error(tmp_path, path.read_text(), "did you mean 'epochs'",
                        args=["--set", "train.epoch=3"])
    expect_config_error(tmp_path, path.read_text(), "KEY=VALUE", args=["--set", "train.epochs"])


def test_wrong_in_features_names_the_layer(tmp_path):
    cfg = json.loads(json.dumps(LINEAR))
    cfg["model"]["layers"] = [{"type": "linear", "in_features": 5, "out_features": 1}]
    expect_config_error(tmp_path, yaml.safe_dump(cfg), "model.layers.0 (linear)",
                        "in_features is 5", "arriving there has 1")


def test_debug_shows_the_traceback(tmp_path):
    path = write_config(tmp_path, {**LINEAR, "optimizer": {"type": "sgd", "lr": -1.0}})
    result = run(["--debug", "train", str(path)], tmp_path)
    assert result.exit_code != 0
    assert result.exception is not None and "ConfigError" in type(result.exception).__name__


# ------------------------------------------------------------- summary


def test_summary_shows_the_cnn_shapes(tmp_path):
    (tmp_path / "digits").mkdir()
    make_idx_folder(tmp_path / "digits")
    path = write_config(tmp_path, CNN)
    result = run(["summary", str(path)], tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "64x5x5" in out and "1600" in out
    assert "in_features=1600" in out
    assert "32x26x26" in out and "64x11x11" in out
    assert "total parameters: 34,826" in out


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "conf" / "digits").mkdir(parents=True)
    make_idx_folder(tmp_path / "conf" / "digits")
    path = write_config(tmp_path / "conf", CNN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(["summary", str(path)], elsewhere)
    assert result.exit_code == 0, result.output


def test_summary_reports_missing_data_files(tmp_path):
    path = write_config(tmp_path, CNN)
    result = run(["summary", str(path)], tmp_path)
    assert result.exit_code == 1
    assert "t10k-images-idx3-ubyte" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------- train, eval, predict


def test_train_eval_predict_cycle(tmp_path):
    path = write_config(tmp_path, LINEAR)
    result = run(["train", str(path), "--set", "train.epochs=400"], tmp_path)
    assert result.exit_code == 0, result.output
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    run_dir = runs[0]
    for name in ("config.yaml", "metrics.csv", "checkpoint.npz", "best.npz"):
        assert (run_dir / name).is_file(), name
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_loss") and len(rows) == 401
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 400

    result = run(["predict", "--input", "11"], tmp_path)
    assert result.exit_code == 0, result.output
    assert float(result.output.strip()) == pytest.approx(22.0, abs=0.5)

    result = run(["eval", "--json", "m.json"], tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"mse", "rmse", "mae", "r2"} and metrics["r2"] > 0.99

    (tmp_path / "inputs.txt").write_text("1\n5\n")
    result = run(["predict", "--file", "inputs.txt", "--checkpoint", str(run_dir)], tmp_path)
    values = [float(v) for v in result.output.split()]
    assert values == pytest.approx([2.0, 10.0], abs=0.5)

    result = run(["predict", "--input", "eleven"], tmp_path)
    assert result.exit_code == 2 and "expected 1 number" in result.output
    result = run(["predict", "--input", "1,2"], tmp_path)
    assert result.exit_code == 2 and "expects 1 number" in result.output


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    path = write_config(tmp_path, {**LINEAR, "train": {**LINEAR["train"], "epochs": 50}})
    outputs = []
    for name in ("a", "b"):
        result = run(["train", str(path), "-q", "--set", f"output.dir={name}"], tmp_path)
        assert result.exit_code == 0, result.output
        text = (tmp_path / name / "metrics.csv").read_text().splitlines()
        outputs.append([",".join(r.split(",")[:-1]) for r in text])  # drop the seconds column
    assert outputs[0] == outputs[1]


def test_classifier_cycle_on_images(tmp_path):
    (tmp_path / "digits").mkdir()
    make_idx_folder(tmp_path / "digits")
    cfg = json.loads(json.dumps(CNN))
    cfg["model"]["layers"] = [{"type": "flatten"}, {"type": "linear", "out_features": 10}]
    cfg["train"] = {"epochs": 5, "batch_size": 16, "monitor": "accuracy"}
    path = write_config(tmp_path, cfg)
    result = run(["train", str(path)], tmp_path)
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output
    result = run(["eval", "--json", "m.json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["accuracy"] >= 0.9 and "f1_macro" in metrics
    image = np.zeros((28, 28), np.uint8)
    image[4 + 8:10 + 8, 4:24] = 255  # class 1's mark
    np.save(tmp_path / "one.npy", image)
    result = run(["predict", "--input", "one.npy", "--top", "2"], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.split()[0] == "1"
    np.save(tmp_path / "big.npy", np.zeros((32, 32)))
    result = run(["predict", "--input", "big.npy"], tmp_path)
    assert result.exit_code == 2 and "28x28" in result.output


def test_eval_without_a_run_says_what_to_do(tmp_path):
    result = run(["eval"], tmp_path)
    assert result.exit_code == 2 and "train first" in result.output


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("micrograd ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "eval", "predict", "summary"):
        assert command in result.output


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from micrograd_cli.main import app; "
            "heavy = [m for m in ('numpy', 'torch', 'torchvision', 'micrograd.engine') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tabular_cycle_with_named_columns(tmp_path):
    rng = np.random.default_rng(0)
    area = rng.uniform(50, 200, 120)
    zone = rng.choice(["A", "B"], 120)
    price = 1000 * area + np.where(zone == "A", 20000, 0) + rng.normal(0, 500, 120)
    lines = ["area,zone,price"] + [f"{a:.1f},{z},{p:.0f}" for a, z, p in zip(area, zone, price)]
    lines[5] = "NA,A," + lines[5].split(",")[2]  # a missing value, imputed
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    cfg = {
        "data": {"type": "csv", "path": "houses.csv", "target": "price"},
        "model": {"layers": [{"type": "linear", "out_features": 1}]},
        "loss": "mse",
        "optimizer": {"type": "adam", "lr": 0.05},
        "train": {"epochs": 60, "batch_size": 16},
    }
    path = write_config(tmp_path, cfg)
    result = run(["train", str(path), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "r2=" in result.output
    result = run(["predict", "--input", "area=100,zone=A"], tmp_path)
    assert result.exit_code == 0, result.output
    assert float(result.output) == pytest.approx(120000, rel=0.05)
    result = run(["predict", "--input", "100,B"], tmp_path)  # a row in column order
    assert float(result.output) == pytest.approx(100000, rel=0.05)
    result = run(["predict", "--input", "size=100"], tmp_path)
    assert result.exit_code == 2 and "unknown column" in result.output
    (tmp_path / "more.csv").write_text("area,zone\n150,A\n80,C\n")
    result = run(["predict", "--file", "more.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    # the unseen zone C is a warning, not a crash
    assert "warning: categories not seen in training" in result.output
    assert len([l for l in result.output.splitlines() if not l.startswith("warning")]) == 2
    result = run(["eval", "--data", "houses.csv", "--json", "m.json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["r2"] > 0.9


def test_text_cycle_predicts_a_sentence(tmp_path):
    good = ["great phone", "love it", "works great", "excellent value", "really love this"]
    bad = ["terrible phone", "hate it", "broke fast", "awful value", "really hate this"]
    rows = [f"{s}\t1" for s in good * 6] + [f"{s}\t0" for s in bad * 6]
    (tmp_path / "reviews.txt").write_text("\n".join(rows) + "\n")
    cfg = {
        "data": {"type": "text", "path": "reviews.txt"},
        "model": {"layers": [{"type": "linear", "out_features": 2}]},
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": 0.1},
        "train": {"epochs": 30, "batch_size": 8, "monitor": "accuracy"},
    }
    path = write_config(tmp_path, cfg)
    result = run(["train", str(path), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    result = run(["predict", "--input", "I love this phone", "--top", "2"], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.split()[0] == "1"
    (tmp_path / "broken.txt").write_text("fine\t1\nno label here\n")
    result = run(["eval", "--data", "broken.txt"], tmp_path)
    assert result.exit_code == 1 and "line 2" in result.output  # a bad data file: exit 1


def test_predict_reads_png_images_when_pillow_is_installed(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "digits").mkdir()
    make_idx_folder(tmp_path / "digits")
    cfg = json.loads(json.dumps(CNN))
    cfg["model"]["layers"] = [{"type": "flatten"}, {"type": "linear", "out_features": 10}]
    cfg["train"] = {"epochs": 5, "batch_size": 16}
    assert run(["train", str(write_config(tmp_path, cfg)), "-q"], tmp_path).exit_code == 0
    image = np.zeros((28, 28), np.uint8)
    image[4 + 16:10 + 16, 4:24] = 255  # class 2's mark
    Image.fromarray(image).save(tmp_path / "two.png")
    result = run(["predict", "--input", "two.png"], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.split()[0] == "2"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "small.png")
    result = run(["predict", "--input", "small.png"], tmp_path)
    assert result.exit_code == 2 and "expects 28x28" in result.output

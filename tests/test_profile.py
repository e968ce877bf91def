"""`micrograd data CONFIG`: the data as a config sees it, without training."""
import copy
import json

import numpy as np
import pytest

from conftest import BLOBS, run, write_config
from micrograd.config.loader import validate
from micrograd.data.profile import profile

MODEL = {"model": {"layers": [{"type": "linear", "out_features": 2}]},
         "loss": "cross_entropy", "optimizer": "adam"}


def csv_config(tmp_path):
    """A 40-row CSV with two missing cells, one repeated row and a class target."""
    rng = np.random.default_rng(0)
    lines = ["size,colour,label"]
    for i in range(40):
        size = "" if i in (3, 7) else f"{rng.normal():.3f}"
        lines.append(f"{size},{'red' if i % 3 else 'blue'},{i % 2}")
    lines.append(lines[1])  # an exact repeat of the first row
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    return write_config(tmp_path, {"data": {"type": "csv", "path": "table.csv",
                                            "target": "label", "duplicates": "drop"}, **MODEL})


def text_config(tmp_path):
    lines = [f"{'good' if i % 2 else 'bad'} thing number{i}\t{i % 2}" for i in range(30)]
    lines += ["Good thing number1\t1", "good thing number1\t0"]  # a duplicate, a conflict
    (tmp_path / "reviews.txt").write_text("\n".join(lines) + "\n")
    return write_config(tmp_path, {"data": {"type": "text", "path": "reviews.txt",
                                            "duplicates": "drop", "ngram_range": [1, 2]},
                                   **MODEL})


def test_csv_table_shows_every_section(tmp_path):
    csv_config(tmp_path)
    result = run(["data", "config.yaml"], tmp_path)
    assert result.exit_code == 0, result.output
    for section in ("csv data, classification task", "rows per split and class balance",
                    "duplicates (before splitting)", "missing values", "size",
                    "features (", "colour="):
        assert section in result.output, section


def test_csv_json_holds_the_contract_keys(tmp_path):
    csv_config(tmp_path)
    result = run(["data", "config.yaml", "--json", "-"], tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == {"train": 32, "val": 4, "test": 4}
    assert report["duplicates"] == {"found": 1, "dropped": 1, "conflicts": 0}
    assert report["missing"]["size"] == 2
    assert sum(report["class_balance"]["train"].values()) == 32
    assert "size" in report["features"] and "selected_out" in report


def test_text_table_and_json_file(tmp_path):
    text_config(tmp_path)
    result = run(["data", "config.yaml", "--json", "profile.json"], tmp_path)
    assert result.exit_code == 0, result.output
    for section in ("text data", "rows per split and class balance", "class 0",
                    "duplicates (before splitting)", "vocabulary of", "n-grams 1..2",
                    "profile written to profile.json"):
        assert section in result.output, section
    report = json.loads((tmp_path / "profile.json").read_text())
    assert report["duplicates"] == {"found": 1, "dropped": 1, "conflicts": 2}
    assert report["samples"] == 31 and sum(report["rows"].values()) == 31
    assert report["features"]["ngram_range"] == [1, 2]
    assert report["features"]["count"] == report["input_shape"][0]
    assert any("another label" in w for w in report["warnings"])
    assert set(report["class_balance"]) == {"train", "val", "test"}


def test_kinds_without_counts_get_rows_and_class_balance_from_the_arrays(tmp_path):
    cfg = copy.deepcopy(BLOBS)
    report = profile(validate(cfg))
    assert report["rows"] == {"train": 84, "val": 36, "test": 0}
    assert {s: sum(c.values()) for s, c in report["class_balance"].items()} == report["rows"]
    assert "duplicates" not in report and "missing" not in report
    json.dumps(report)  # plain JSON values only

    write_config(tmp_path, cfg)
    result = run(["data", "config.yaml"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "rows per split and class balance" in result.output
    assert "duplicates" not in result.output


@pytest.mark.parametrize("problem", [
    {"data": {"type": "text", "path": "reviews.txt", "dedup": True}},   # unknown key
    {"data": {"type": "text", "path": "reviews.txt", "conflicts": "warn"}},
])
def test_a_bad_config_exits_2(tmp_path, problem):
    text_config(tmp_path)
    write_config(tmp_path, {**problem, **MODEL}, name="bad.yaml")
    result = run(["data", "bad.yaml"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output


def test_missing_data_exits_1_like_train(tmp_path):
    write_config(tmp_path, {"data": {"type": "text", "path": "absent.txt"}, **MODEL})
    assert run(["data", "config.yaml"], tmp_path).exit_code == 1
    assert run(["train", "config.yaml"], tmp_path).exit_code == 1


def test_csv_outliers_and_selection_are_shown(tmp_path):
    csv_config(tmp_path)
    result = run(["data", "config.yaml", "--set", "data.outliers={method: iqr}",
                  "--set", "data.select={k: 1}"], tmp_path)
    assert result.exit_code == 0, result.output
    for section in ("outliers (train split)", "size", "clip", "features (1)",
                    "removed by selection (2)"):
        assert section in result.output, section
    report = json.loads(run(["data", "config.yaml", "--set", "data.outliers={method: iqr}",
                             "--json", "-"], tmp_path).stdout)
    assert report["outliers"]["size"]["action"] == "clip"

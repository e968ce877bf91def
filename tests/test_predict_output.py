"""predict --json (one object per input) and --output preds.csv (id column kept)."""
import copy
import csv
import json

import pytest

from conftest import BLOBS, run, write_config
from test_tabular_inputs import CSV, FEATURES, HEADER, training_rows, write_rows

INPUTS = [["150", "RM", "2"], ["NA", "RL", ""], ["300", "", "4"]]


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reg")
    write_rows(folder / "train.csv", HEADER, training_rows())
    result = run(["train", write_config(folder, CSV), "-q"], folder)
    assert result.exit_code == 0, result.output
    write_rows(folder / "with_id.csv", ["Id"] + FEATURES, [[str(10 + i)] + r for i, r in enumerate(INPUTS)])
    write_rows(folder / "plain.csv", FEATURES, INPUTS)
    return folder


def lines(result):
    return [line for line in result.output.splitlines() if not line.startswith("warning")]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_json_lines_match_the_plain_output(regression):
    plain = run(["predict", "--file", "plain.csv"], regression)
    out = run(["predict", "--file", "with_id.csv", "--json"], regression)
    assert out.exit_code == 0, out.output
    objects = [json.loads(line) for line in lines(out)]
    assert [o["Id"] for o in objects] == ["10", "11", "12"]
    assert [f"{o['value']:.6g}" for o in objects] == lines(plain)


def test_output_keeps_the_id_column_and_refuses_to_overwrite(regression):
    out = run(["predict", "--file", "with_id.csv", "--output", "preds.csv"], regression)
    assert out.exit_code == 0, out.output
    assert "wrote preds.csv (3 predictions)" in out.output
    table = read_csv(regression / "preds.csv")
    assert table[0] == ["Id", "Price"]
    assert [r[0] for r in table[1:]] == ["10", "11", "12"]
    plain = lines(run(["predict", "--file", "plain.csv"], regression))
    assert [f"{float(r[1]):.6g}" for r in table[1:]] == plain
    again = run(["predict", "--file", "plain.csv", "--output", "preds.csv"], regression)
    assert again.exit_code == 2 and "already exists" in again.output
    assert read_csv(regression / "preds.csv") == table
    forced = run(["predict", "--file", "plain.csv", "--output", "preds.csv", "--force"],
                 regression)
    assert forced.exit_code == 0, forced.output
    table = read_csv(regression / "preds.csv")
    assert table[0] == ["row", "Price"] and [r[0] for r in table[1:]] == ["1", "2", "3"]


def test_classification_json_and_csv_with_top(tmp_path):
    data = copy.deepcopy(BLOBS)
    data["output"] = {"dir": str(tmp_path / "run")}
    result = run(["train", write_config(tmp_path, data), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    (tmp_path / "inputs.txt").write_text("0,0\n3,3\n")
    args = ["predict", "--file", "inputs.txt", "--checkpoint", tmp_path / "run", "--top", "2"]
    out = run(args + ["--json"], tmp_path)
    assert out.exit_code == 0, out.output
    objects = [json.loads(line) for line in lines(out)]
    assert [o["row"] for o in objects] == [1, 2]
    for o in objects:
        assert o["label"] == o["top"][0]["label"]
        assert o["probability"] == o["top"][0]["probability"]
        assert sum(t["probability"] for t in o["top"]) == pytest.approx(1.0, abs=1e-5)
    csv_out = run(args + ["--output", tmp_path / "p.csv"], tmp_path)
    assert csv_out.exit_code == 0, csv_out.output
    table = read_csv(tmp_path / "p.csv")
    assert table[0] == ["row", "label", "probability", "label_2", "probability_2"]
    assert [r[1] for r in table[1:]] == [o["label"] for o in objects]

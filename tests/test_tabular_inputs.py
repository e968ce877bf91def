"""Issue 10, "wrong answers with exit 0": CSV and array inputs of predict/eval.

The inputs of ``predict --file`` and ``eval --data`` go through the reader and
checks that training uses (``read_csv_columns``), so a BOM, a renamed or
missing column, a ragged row, ``inf`` or an overflowing number is an error
naming the file, line and column - never a silently imputed column and a
wrong answer with exit 0. Most tests run in-process on a tiny pipeline; a few
drive the command line end to end in a tmp folder.
"""
import copy
import csv
import io
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micrograd.data.pipeline import DataError, PipelineError
from micrograd.data.synthetic import ArrayPipeline
from micrograd.data.tabular import ExtraColumnsWarning, load_tabular
from micrograd.evaluate import read_labelled
from micrograd.predict import Predictor, load_image
from conftest import LINEAR, run, write_config

FEATURES = ["LotArea", "Zone", "Rooms"]
HEADER = FEATURES + ["Price"]


def training_rows(n=30):
    rows = []
    for i in range(n):
        area = "NA" if i == 4 else str(100 + 7 * i)
        rows.append([area, "RL" if i % 3 else "RM", str(1 + i % 4),
                     str(1000 + 13 * i + (50 if i % 3 == 0 else 0))])
    return rows


def write_rows(path, header, rows, encoding="utf-8"):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    path = write_rows(tmp_path_factory.mktemp("train") / "train.csv", HEADER, training_rows())
    return load_tabular(path, "Price", splits=(0.8, 0.2, 0.0)).pipeline


def predictor_for(pipeline):
    """A Predictor around a fitted pipeline, without a checkpoint (reading needs no model)."""
    p = object.__new__(Predictor)
    p.pipeline, p.model, p.config, p.checkpoint = pipeline, None, None, None
    return p


def csv_config(target="Price"):
    return types.SimpleNamespace(data=types.SimpleNamespace(type="csv", target=target))


def expected_features(pipeline, header, rows):
    """What a correct reading gives: the rows as dicts keyed by their real column names."""
    return pipeline.transform([dict(zip(header, r)) for r in rows])


INPUT_ROWS = [["150", "RM", "2", "1500"], ["NA", "RL", "", "1600"], ["300", "", "4", "1700"]]


# --------------------------------------------------------------- predict --file


def test_bom_header_is_read_like_training(pipeline, tmp_path):
    path = write_rows(tmp_path / "bom.csv", HEADER, INPUT_ROWS, encoding="utf-8-sig")
    rows = predictor_for(pipeline).read_file(path)
    np.testing.assert_array_equal(pipeline.transform(rows),
                                  expected_features(pipeline, HEADER, INPUT_ROWS))
    # the BOM used to stick to the first name, so LotArea was imputed: not any more
    assert pipeline.transform(rows)[0, 0] != pipeline.transform(rows)[1, 0]


def test_a_renamed_column_is_an_error_with_a_suggestion(pipeline, tmp_path):
    path = write_rows(tmp_path / "lower.csv", ["lotarea", "Zone", "ROOMS"],
                      [r[:3] for r in INPUT_ROWS], encoding="utf-8-sig")
    with pytest.raises(DataError) as info:
        predictor_for(pipeline).read_file(path)
    message = str(info.value)
    assert "lower.csv" in message and "LotArea" in message and "Rooms" in message
    assert "did you mean 'LotArea'" in message.replace("Did", "did")
    assert "'lotarea'" in message and "'ROOMS'" in message


def test_a_missing_column_is_an_error_not_an_imputation(pipeline, tmp_path):
    path = write_rows(tmp_path / "two.csv", ["LotArea", "Rooms"], [["150", "2"]])
    with pytest.raises(DataError, match=r"two\.csv.*missing.*Zone"):
        predictor_for(pipeline).read_file(path)


def test_extra_columns_are_named_in_one_warning(pipeline, tmp_path):
    path = write_rows(tmp_path / "extra.csv", ["Id", *FEATURES, "Notes", "Price"],
                      [["1", *r[:3], "x", r[3]] for r in INPUT_ROWS])
    with pytest.warns(ExtraColumnsWarning) as record:
        rows = predictor_for(pipeline).read_file(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "Id" in message and "Notes" in message and "Price" not in message
    assert "\n" not in message
    np.testing.assert_array_equal(pipeline.transform(rows),
                                  expected_features(pipeline, HEADER, INPUT_ROWS))


def test_column_order_does_not_matter_and_missing_cells_are_imputed(pipeline, tmp_path):
    order = [2, 0, 1]
    path = write_rows(tmp_path / "order.csv", [FEATURES[i] for i in order],
                      [[r[i] for i in order] for r in INPUT_ROWS])
    rows = predictor_for(pipeline).read_file(path)
    np.testing.assert_array_equal(pipeline.transform(rows),
                                  expected_features(pipeline, HEADER, INPUT_ROWS))


def test_a_ragged_row_is_an_error_naming_the_line(pipeline, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("LotArea,Zone,Rooms\n150,RM,2\n200,RL\n")
    with pytest.raises(DataError, match=r"ragged\.csv, line 3: expected 3 fields"):
        predictor_for(pipeline).read_file(path)


def test_duplicate_headers_are_an_error(pipeline, tmp_path):
    path = write_rows(tmp_path / "dup.csv", ["LotArea", "Zone", "Rooms", "Rooms "],
                      [["1", "RL", "2", "3"]])
    with pytest.raises(DataError, match="duplicate column names.*Rooms"):
        predictor_for(pipeline).read_file(path)


def test_latin1_bytes_are_a_clear_error(pipeline, tmp_path):
    path = write_rows(tmp_path / "latin.csv", ["LotArea", "Zone", "Rooms", "Café"],
                      [["1", "RL", "2", "3"]], encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv is not UTF-8 text.*line 1"):
        predictor_for(pipeline).read_file(path)


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e308", "-4e38", "1e999"])
def test_non_finite_cells_of_an_input_file_name_file_line_and_column(pipeline, tmp_path, cell):
    path = write_rows(tmp_path / "inf.csv", FEATURES, [["1", "RL", "2"], ["3", "RM", cell]])
    with pytest.raises(DataError, match=r"inf\.csv, line 3: column 'Rooms'.*not a finite"):
        predictor_for(pipeline).read_file(path)


def test_text_in_a_numeric_column_of_an_input_file_names_the_line(pipeline, tmp_path):
    path = write_rows(tmp_path / "text.csv", FEATURES, [["1", "RL", "2"], ["big", "RM", "1"]])
    with pytest.raises(DataError, match=r"text\.csv, line 3: column 'LotArea' holds 'big'"):
        predictor_for(pipeline).read_file(path)


def test_file_dash_reads_standard_input(pipeline, monkeypatch):
    data = "\ufeffLotArea,Zone,Rooms\n150,RM,2\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode()), "utf-8"))
    rows = predictor_for(pipeline).read_file("-")
    np.testing.assert_array_equal(pipeline.transform(rows),
                                  expected_features(pipeline, FEATURES, [["150", "RM", "2"]]))


# ----------------------------------------------------------------- eval --data


def test_eval_reads_a_bom_and_checks_columns(pipeline, tmp_path):
    path = write_rows(tmp_path / "eval.csv", HEADER, INPUT_ROWS, encoding="utf-8-sig")
    x, y = read_labelled(path, csv_config(), pipeline)
    np.testing.assert_array_equal(x, expected_features(pipeline, HEADER, INPUT_ROWS))
    np.testing.assert_allclose(y, pipeline.transform_target([r[3] for r in INPUT_ROWS]))
    lower = write_rows(tmp_path / "lower.csv", ["LotArea", "Zone", "Rooms", "price"], INPUT_ROWS)
    with pytest.raises(DataError, match=r"lower\.csv.*target.*'Price'.*did you mean 'Price'"):
        read_labelled(lower, csv_config(), pipeline)


def test_eval_ragged_rows_and_bad_targets_are_errors(pipeline, tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("LotArea,Zone,Rooms,Price\n150,RM,2,1500\n160,RM,2\n")
    with pytest.raises(DataError, match=r"ragged\.csv, line 3"):
        read_labelled(ragged, csv_config(), pipeline)
    inf = write_rows(tmp_path / "inf.csv", HEADER, [["150", "RM", "2", "inf"]])
    with pytest.raises(DataError, match=r"inf\.csv, line 2: column 'Price'.*not a finite"):
        read_labelled(inf, csv_config(), pipeline)


def test_eval_drops_rows_without_a_target_as_training_does(pipeline, tmp_path):
    path = write_rows(tmp_path / "gaps.csv", HEADER, [*INPUT_ROWS, ["150", "RM", "2", "NA"]])
    with pytest.warns(UserWarning, match=r"dropped 1 row.*line 5"):
        x, y = read_labelled(path, csv_config(), pipeline)
    assert len(x) == len(y) == 3 and np.isfinite(y).all()


# -------------------------------------------------------------- predict --input


def test_input_pairs_must_name_every_column(pipeline):
    predictor = predictor_for(pipeline)
    with pytest.raises(PipelineError, match="missing column.*Zone, Rooms") as info:
        predictor.parse("LotArea=150")
    assert not isinstance(info.value, DataError)  # typed on the command line: exit 2
    row = predictor.parse("LotArea=150,Zone=,Rooms=")  # explicitly empty: imputed
    np.testing.assert_array_equal(pipeline.transform([row]),
                                  expected_features(pipeline, FEATURES, [["150", "", ""]]))
    with pytest.raises(PipelineError, match="unknown column.*lotarea.*did you mean 'LotArea'"):
        predictor.parse("lotarea=150,Zone=RL,Rooms=2")


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e39", "1e999"])
def test_non_finite_input_values_are_errors(pipeline, value):
    predictor = predictor_for(pipeline)
    with pytest.raises(PipelineError, match="LotArea.*not a finite number"):
        pipeline.transform(predictor.parse(f"LotArea={value},Zone=RL,Rooms=2"))


def test_transform_refuses_infinite_numbers_but_imputes_nan(tmp_path):
    rows = [[str(i), str(10 - i), str(i * 3.0)] for i in range(10)]
    path = write_rows(tmp_path / "t.csv", ["a", "b", "y"], rows)
    p = load_tabular(path, "y", scaling="none", splits=(1.0,)).pipeline
    for bad in ([np.inf, 1.0], [1.0, -np.inf], [1e39, 1.0], {"a": "inf", "b": "1"}):
        with pytest.raises(PipelineError, match="not a finite number"):
            p.transform(bad)
    np.testing.assert_array_equal(p.transform([np.nan, 1.0]), p.transform({"b": "1"}))


# ------------------------------------------------------------ training data


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e308", "-1e39"])
@pytest.mark.parametrize("column", ["LotArea", "Price"])
def test_training_csv_with_non_finite_values_names_file_column_and_line(tmp_path, cell, column):
    rows = training_rows()
    rows[6][HEADER.index(column)] = cell
    path = write_rows(tmp_path / "train.csv", HEADER, rows)
    with pytest.raises(DataError, match=rf"train\.csv, line 8: column '{column}'.*not a finite"):
        load_tabular(path, "Price")


def test_missing_markers_stay_imputed_in_training(tmp_path):
    rows = training_rows()
    for i, marker in enumerate(["NaN", "nan", "NA", "", "N/A", "null", "NAN"]):
        rows[i + 1][0] = marker
    data = load_tabular(write_rows(tmp_path / "train.csv", HEADER, rows), "Price")
    assert np.isfinite(data.x_train).all()
    assert data.pipeline.kinds[0] == "numeric"


def test_inf_in_a_text_column_is_a_category(tmp_path):
    rows = training_rows()
    rows[3][1] = "inf"
    data = load_tabular(write_rows(tmp_path / "train.csv", HEADER, rows), "Price")
    assert "inf" in data.pipeline.categories[0]


def test_values_that_overflow_the_scaler_are_an_error(tmp_path, monkeypatch):
    """Numbers within float32 cannot overflow the float64 statistics, so the second
    check - a non-finite mean, std or range - is reached here by lifting the first."""
    from micrograd.data import tabular

    monkeypatch.setattr(tabular, "FLOAT32_MAX", float(np.finfo(np.float64).max))
    for column, scaling in (("Rooms", "standard"), ("Rooms", "minmax"), ("Price", "standard")):
        rows = training_rows()
        for i, r in enumerate(rows):
            r[HEADER.index(column)] = f"{(-1) ** i * 1.7e308!r}"
        path = write_rows(tmp_path / "train.csv", HEADER, rows)
        with pytest.raises(DataError, match=rf"train\.csv: column '{column}'.*overflow"):
            load_tabular(path, "Price", scaling=scaling, task="regression")


# ------------------------------------------------------------------ array models


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e39", "1e999", "NaN"])
def test_array_inputs_must_be_finite_numbers(text):
    p = ArrayPipeline(1, "regression")
    with pytest.raises(PipelineError, match="not a finite number"):
        predictor_for(p).parse(text)
    with pytest.raises(PipelineError, match="not a finite number"):
        p.transform(float(text))
    ok = predictor_for(ArrayPipeline(2, "regression")).parse("1.5,-2")
    assert ok == [1.5, -2.0]


def test_npy_image_with_nan_or_inf_is_an_error(tmp_path):
    for bad in (np.nan, np.inf):
        image = np.zeros((28, 28), np.float32)
        image[3, 4] = bad
        np.save(tmp_path / "bad.npy", image)
        with pytest.raises(PipelineError, match=r"bad\.npy.*not finite"):
            load_image(str(tmp_path / "bad.npy"), (1, 28, 28))


def test_array_input_file_errors_name_the_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("\ufeff1\n2\nnan\n")
    with pytest.raises(DataError, match=r"x\.txt, line 3:.*not a finite number"):
        predictor_for(ArrayPipeline(1, "regression")).read_file(path)


# ------------------------------------------------------------------ the command line


CSV = {"data": {"type": "csv", "path": "train.csv", "target": "Price"},
       "model": {"layers": [{"type": "linear", "out_features": 1}]},
       "loss": "mse", "optimizer": {"type": "adam", "lr": 0.05},
       "train": {"epochs": 5, "batch_size": 8}}


def output_lines(result):
    return [line for line in result.output.splitlines() if not line.startswith("warning")]


def test_cli_predict_and_eval_inputs(tmp_path):
    write_rows(tmp_path / "train.csv", HEADER, training_rows())
    result = run(["train", write_config(tmp_path, CSV), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    write_rows(tmp_path / "good.csv", FEATURES, [r[:3] for r in INPUT_ROWS])
    good = run(["predict", "--file", "good.csv"], tmp_path)
    assert good.exit_code == 0, good.output
    write_rows(tmp_path / "bom.csv", FEATURES, [r[:3] for r in INPUT_ROWS], encoding="utf-8-sig")
    bom = run(["predict", "--file", "bom.csv"], tmp_path)
    assert bom.exit_code == 0 and output_lines(bom) == output_lines(good), bom.output
    write_rows(tmp_path / "lower.csv", ["lotarea", "Zone", "Rooms"], [r[:3] for r in INPUT_ROWS],
               encoding="utf-8-sig")
    lower = run(["predict", "--file", "lower.csv"], tmp_path)
    assert lower.exit_code == 1, lower.output
    assert "error: " in lower.output and "did you mean 'LotArea'" in lower.output.replace("Did", "did")
    assert "Traceback" not in lower.output
    # standard input
    from typer.testing import CliRunner
    import os
    from micrograd_cli.main import app
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        piped = CliRunner().invoke(app, ["predict", "--file", "-"],
                                   input=(tmp_path / "bom.csv").read_bytes())
    finally:
        os.chdir(old)
    assert piped.exit_code == 0 and output_lines(piped) == output_lines(good), piped.output
    # eval on a ragged file: an error, not nan metrics
    (tmp_path / "ragged.csv").write_text("LotArea,Zone,Rooms,Price\n150,RM,2,1500\n160,RM,2\n")
    ragged = run(["eval", "--data", "ragged.csv"], tmp_path)
    assert ragged.exit_code == 1 and "ragged.csv, line 3" in ragged.output, ragged.output
    partial = run(["predict", "--input", "LotArea=150"], tmp_path)
    assert partial.exit_code == 2 and "missing column" in partial.output, partial.output


def test_cli_training_csv_with_inf_exits_1_not_diverged(tmp_path):
    rows = training_rows()
    rows[6][0] = "inf"
    write_rows(tmp_path / "train.csv", HEADER, rows)
    result = run(["train", write_config(tmp_path, CSV), "-q"], tmp_path)
    assert result.exit_code == 1, result.output
    assert "train.csv, line 8: column 'LotArea'" in result.output
    assert "diverged" not in result.output


def test_cli_array_model_refuses_nan_and_clips_top(tmp_path):
    result = run(["train", write_config(tmp_path, LINEAR), "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    for text in ("nan", "inf"):
        bad = run(["predict", "--input", text], tmp_path)
        assert bad.exit_code == 2 and "not a finite number" in bad.output, bad.output
    blobs = copy.deepcopy(LINEAR)
    blobs["data"].update(kind="blobs", n=40)
    blobs["model"]["layers"] = [{"type": "linear", "out_features": 2}]
    blobs["loss"] = "cross_entropy"
    blobs["train"]["epochs"] = 2
    blobs["output"] = {"dir": "blobs"}
    assert run(["train", write_config(tmp_path, blobs, "b.yaml"), "-q"], tmp_path).exit_code == 0
    top = run(["predict", "-c", "blobs", "--input", "1,2", "--top", "5"], tmp_path)
    assert top.exit_code == 0, top.output
    assert top.output.count("(") == 2  # two classes, not five, no IndexError


# ------------------------------------------------------------------ the property


NAME_EXTRAS = ["Id", "Notes", "price", "PRICE", "lotarea", "zone", "ROOMS", "Lot Area", "Größe",
               "Ã©", "", "x,y", 'q"t']
CELL = st.sampled_from(["1", "2.5", "-3", "150", "NA", "", "nan", "RL", "RM", "C", "1e3"])


@st.composite
def input_files(draw, with_target):
    """A CSV of inputs with a randomly mangled header; returns bytes and the truth."""
    header, truth = [], {}
    wanted = FEATURES + (["Price"] if with_target else [])
    for name in wanted:
        fate = draw(st.sampled_from(["keep", "keep", "pad", "case", "drop"]))
        if fate == "drop":
            continue
        if fate == "case":
            written = draw(st.sampled_from([name.lower(), name.upper(), name.swapcase(),
                                            name[0].lower() + name[1:]]))
        elif fate == "pad":
            written = " " + name + "  "
        else:
            written = name
        header.append(written)
        truth[written] = name if written.strip() == name else None
    for extra in draw(st.lists(st.sampled_from(NAME_EXTRAS), max_size=3)):
        header.append(extra)
        truth[extra] = None
    order = draw(st.permutations(range(len(header))))
    header = [header[i] for i in order]
    n_rows = draw(st.integers(1, 3))
    rows = [[draw(CELL) if truth[h] != "Price" else draw(st.sampled_from(["10", "2.5", "7"]))
             for h in header] for _ in range(n_rows)]
    # numeric columns get numbers (text in them is its own, already tested, error)
    for r in rows:
        for j, h in enumerate(header):
            if truth[h] in ("LotArea", "Rooms") and r[j] in ("RL", "RM", "C"):
                r[j] = "4"
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([header, *rows])
    return buf.getvalue().encode(encoding), header, rows, truth, encoding


def expected_reading(pipeline, header, rows, truth, with_target):
    """Features (and targets) of the correctly-mapped rows, or None when the file must fail."""
    names = [truth[h] for h in header]
    stripped = [h.strip() for h in header]
    if len(set(stripped)) != len(stripped):
        return "either"  # duplicate names after stripping: an error, tested elsewhere
    if not set(FEATURES + (["Price"] if with_target else [])) <= set(names):
        return None
    mapped = [{n: v for n, v in zip(names, r) if n is not None} for r in rows]
    x = pipeline.transform(mapped)
    y = pipeline.transform_target([m["Price"] for m in mapped]) if with_target else None
    return x, y


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), with_target=st.booleans())
def test_random_headers_never_give_a_wrongly_mapped_answer(pipeline, tmp_path, data, with_target):
    raw, header, rows, truth, encoding = data.draw(input_files(with_target))
    path = tmp_path / "inputs.csv"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = expected_reading(pipeline, header, rows, truth, with_target)
        try:
            if with_target:
                x, y = read_labelled(path, csv_config(), pipeline)
            else:
                x, y = pipeline.transform(predictor_for(pipeline).read_file(path)), None
        except PipelineError:  # DataError is one
            ascii_only = all(h.isascii() for h in header)
            assert expected is None or expected == "either" or (
                encoding == "latin-1" and not ascii_only), (header, encoding)
            return
    assert expected is not None, f"{header} read without error but a column is missing"
    if expected == "either":
        raise AssertionError(f"duplicate names {header} were accepted")
    np.testing.assert_array_equal(x, expected[0])
    if with_target:
        np.testing.assert_array_equal(y, expected[1])

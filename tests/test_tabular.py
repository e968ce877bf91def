"""The CSV dataset: column kinds, train-only statistics, encoding, state, errors."""
import csv
import json
import warnings

import numpy as np
import pytest

from conftest import write_csv
from micrograd.data.pipeline import PipelineError, pipeline_from_state
from micrograd.data.splits import split_indices
from micrograd.data.tabular import TabularPipeline, UnseenCategoryWarning, load_tabular


@pytest.fixture
def houses(tmp_path):
    """20 rows: Id, a numeric column with gaps, a categorical column with gaps, a target."""
    rows = []
    for i in range(20):
        area = "NA" if i % 5 == 0 else str(100 + 10 * i)
        zone = "" if i % 7 == 3 else ("RL" if i % 3 else "RM")
        rows.append([str(i + 1), area, zone, str(1000 + 50 * i)])
    return write_csv(tmp_path / "houses.csv", ["Id", "Area", "Zone", "Price"], rows), rows


def train_rows(rows, splits=(0.5, 0.25, 0.25), seed=0):
    train = split_indices(len(rows), splits, seed=seed)[0]
    return [rows[i] for i in train]


def no_scaling(path, **kwargs):
    return load_tabular(path, "Price", drop=["Id"], scaling="none", splits=(0.5, 0.25, 0.25),
                        **kwargs)


# ------------------------------------------------------------------ column kinds


def test_numeric_and_categorical_columns_are_detected(houses):
    path, _ = houses
    data = load_tabular(path, "Price", drop=["Id"])
    p = data.pipeline
    assert p.columns == ["Area", "Zone"]
    assert p.kinds == ["numeric", "categorical"]
    assert data.info["numeric"] == ["Area"] and data.info["categorical"] == ["Zone"]
    assert p.task == "regression"


def test_one_non_number_makes_a_column_categorical(tmp_path):
    rows = [[str(i), "3" if i != 4 else "three", str(i * 1.5)] for i in range(10)]
    path = write_csv(tmp_path / "t.csv", ["a", "b", "y"], rows)
    assert load_tabular(path, "y").pipeline.kinds == ["numeric", "categorical"]


def test_declared_categorical_one_hot_encodes_numeric_codes(tmp_path):
    rows = [[code, str(i * 1.0)] for i, code in enumerate(["20", "60", "20", "90"] * 3)]
    path = write_csv(tmp_path / "t.csv", ["SubClass", "y"], rows)
    data = load_tabular(path, "y", categorical=["SubClass"], splits=(1.0, 0.0, 0.0))
    assert data.pipeline.feature_names == ["SubClass=20", "SubClass=60", "SubClass=90"]
    # a number for a categorical column matches its text form
    np.testing.assert_array_equal(data.pipeline.transform({"SubClass": 60.0}), [[0, 1, 0]])


def test_declared_numeric_with_text_names_file_line_and_value(tmp_path):
    rows = [["1", "2"], ["x1", "3"]]
    path = write_csv(tmp_path / "t.csv", ["a", "y"], rows)
    with pytest.raises(PipelineError, match=r"t\.csv, line 3: column 'a' holds 'x1'.*number"):
        load_tabular(path, "y", numeric=["a"])


def test_features_selects_and_orders_columns(houses):
    path, _ = houses
    p = load_tabular(path, "Price", features=["Zone", "Area"]).pipeline
    assert p.columns == ["Zone", "Area"]
    assert p.feature_names == ["Zone=RL", "Zone=RM", "Area"]


# -------------------------------------------------------------------- imputation


def _train_areas(rows):
    return np.array([float(r[1]) for r in train_rows(rows) if r[1] != "NA"])


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
def test_numeric_imputation_uses_train_statistics(houses, strategy):
    path, rows = houses
    p = no_scaling(path, impute_numeric=strategy).pipeline
    areas = _train_areas(rows)
    expected = {"mean": areas.mean(), "median": np.median(areas),
                # all train values are distinct, so the tie goes to the smallest
                "most_frequent": areas.min()}[strategy]
    assert p.numeric_fill[0] == pytest.approx(expected)
    x = p.transform({"Area": "NA", "Zone": "RL"})
    assert x[0, 0] == pytest.approx(expected)
    # learned from train only: differs from what all rows would give
    every = np.array([float(r[1]) for r in rows if r[1] != "NA"])
    if strategy == "mean":
        assert expected != pytest.approx(every.mean())


def test_most_frequent_picks_the_train_mode(tmp_path):
    values = ["1", "2", "2", "NA", "3", "2", "1", "NA"]
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [[v, str(i)] for i, v in enumerate(values)])
    p = load_tabular(path, "y", impute_numeric="most_frequent", scaling="none",
                     splits=(1.0, 0.0, 0.0), task="regression").pipeline
    assert p.numeric_fill[0] == 2.0


def test_constant_imputation_of_both_kinds(houses):
    path, rows = houses
    p = no_scaling(path, impute_numeric="constant", impute_categorical="constant",
                   fill_value=-1).pipeline
    assert p.numeric_fill[0] == -1.0
    assert p.categorical_fill == ["-1"]
    x = p.transform([{"Area": None}])
    assert x[0, 0] == -1.0
    # a missing cell goes to the fill category; it exists only if train had missing cells
    train_zones = {r[2] for r in train_rows(rows)}
    assert ("-1" in p.categories[0]) == ("" in train_zones)


def test_constant_categorical_default_fill(houses):
    path, _ = houses
    p = no_scaling(path, impute_categorical="constant").pipeline
    assert p.categorical_fill == ["missing"]
    assert p.numeric_fill[0] != 0.0  # numeric keeps its own strategy (mean)


def test_categorical_most_frequent_from_train(houses):
    path, rows = houses
    p = no_scaling(path).pipeline
    zones = [r[2] for r in train_rows(rows) if r[2]]
    expected = max(sorted(set(zones)), key=zones.count)
    assert p.categorical_fill == [expected]
    x = p.transform({"Area": "150"})  # Zone absent: imputed
    assert x[0, p.feature_names.index(f"Zone={expected}")] == 1.0
    assert x[0, 1:].sum() == 1.0


def test_every_missing_marker_is_read_as_missing(tmp_path):
    markers = ["", "NA", "NaN", "nan", "N/A", "null"]
    rows = [[m, str(i)] for i, m in enumerate(markers)] + [["4", "9"], ["8", "10"]]
    path = write_csv(tmp_path / "t.csv", ["a", "y"], rows)
    data = load_tabular(path, "y", scaling="none", splits=(1.0, 0.0, 0.0), task="regression")
    assert data.pipeline.kinds == ["numeric"]
    np.testing.assert_array_equal(data.x_train[:, 0], [6, 6, 6, 6, 6, 6, 4, 8])


# ------------------------------------------------------------- one-hot encoding


def test_one_hot_layout_and_feature_names(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    assert p.feature_names == ["Area", "Zone=RL", "Zone=RM"]
    assert p.input_shape == (3,)
    x = p.transform([{"Area": "100", "Zone": "RM"}, {"Area": 200, "Zone": "RL"}])
    np.testing.assert_array_equal(x, [[100, 0, 1], [200, 1, 0]])
    assert x.dtype == np.float32


def test_unseen_category_gives_zeros_and_one_warning(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    rows = [{"Area": "100", "Zone": "FV"}, {"Area": "120", "Zone": "FV"},
            {"Area": "130", "Zone": "RL"}]
    with pytest.warns(UnseenCategoryWarning) as record:
        x = p.transform(rows)
    assert len(record) == 1
    message = str(record[0].message)
    assert "Zone" in message and "'FV'" in message
    np.testing.assert_array_equal(x[:, 1:], [[0, 0], [0, 0], [1, 0]])


def test_seen_and_missing_values_do_not_warn(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.transform([{"Area": "100", "Zone": "RL"}, {"Area": "", "Zone": "NA"}])


def test_val_test_unseen_categories_are_counted_not_warned(tmp_path):
    val = split_indices(20, (0.5, 0.5), seed=0)[1]
    rows = [["Rare" if i in val[:2] else "A", str(i)] for i in range(20)]
    path = write_csv(tmp_path / "t.csv", ["c", "y"], rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_tabular(path, "y", splits=(0.5, 0.5))
    assert data.pipeline.categories == [["A"]]
    assert data.info["unseen_categories"] == {"c": ["Rare"]}
    assert data.x_val.sum() == len(val) - 2  # the Rare rows are all zeros
    assert data.x_test.shape == (0, 1)


# ------------------------------------------------------------------------ scaling


def test_standard_scaling_uses_train_statistics(houses):
    path, rows = houses
    data = load_tabular(path, "Price", drop=["Id"], splits=(0.5, 0.25, 0.25))
    p = data.pipeline
    areas = _train_areas(rows)
    filled = np.concatenate([areas, np.full(10 - len(areas), areas.mean())])
    assert p.center[0] == pytest.approx(filled.mean())
    assert p.scale[0] == pytest.approx(filled.std())
    assert data.x_train[:, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert data.x_train[:, 0].std() == pytest.approx(1.0, abs=1e-6)
    # one-hot columns are not scaled
    assert set(np.unique(data.x_train[:, 1:])) <= {0.0, 1.0}


def test_minmax_scaling_uses_train_range(houses):
    path, rows = houses
    data = load_tabular(path, "Price", drop=["Id"], scaling="minmax", splits=(0.5, 0.25, 0.25))
    areas = _train_areas(rows)
    assert data.pipeline.center[0] == areas.min()
    assert data.pipeline.scale[0] == areas.max() - areas.min()
    assert data.x_train[:, 0].min() == 0.0 and data.x_train[:, 0].max() == 1.0
    value = data.pipeline.transform({"Area": str(areas.max() + (areas.max() - areas.min()))})
    assert value[0, 0] == pytest.approx(2.0)


def test_constant_column_is_centred_not_divided_by_zero(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [["5", str(i)] for i in range(6)])
    data = load_tabular(path, "y", task="regression")
    assert data.pipeline.scale[0] == 1.0
    assert np.all(data.x_train == 0.0)


# ------------------------------------------------------------------------ target


def test_regression_target_standardised_with_train_statistics(houses):
    path, rows = houses
    data = no_scaling(path)
    prices = np.array([float(r[3]) for r in train_rows(rows)])
    np.testing.assert_allclose(data.y_train, (prices - prices.mean()) / prices.std(), rtol=1e-5)
    assert data.y_train.dtype == np.float32
    np.testing.assert_allclose(data.pipeline.inverse_target(data.y_train), prices, rtol=1e-6)


def test_log_target_round_trip(houses):
    path, rows = houses
    data = no_scaling(path, log_target=True)
    p = data.pipeline
    logs = np.log1p([float(r[3]) for r in train_rows(rows)])
    assert p.target_mean == pytest.approx(logs.mean())
    assert data.y_train.mean() == pytest.approx(0.0, abs=1e-6)
    prices = np.array([1000.0, 1234.5, 1950.0])
    np.testing.assert_allclose(p.inverse_target(p.transform_target(prices)), prices, rtol=1e-6)
    np.testing.assert_allclose(p.inverse_target(data.y_test),
                               [float(rows[i][3]) for i in split_indices(20, (0.5, 0.25, 0.25))[2]],
                               rtol=1e-5)


def test_log_target_rejects_values_at_or_below_minus_one(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [["1", "-1"], ["2", "3.5"], ["3", "4.5"]])
    with pytest.raises(PipelineError, match="above -1"):
        load_tabular(path, "y", task="regression", log_target=True)


def test_rows_with_missing_target_are_dropped(tmp_path):
    rows = [[str(i), str(i * 2.5) if i != 3 else "NA"] for i in range(10)]
    path = write_csv(tmp_path / "t.csv", ["a", "y"], rows)
    with pytest.warns(UserWarning, match=r"dropped 1 row.*line 5"):
        data = load_tabular(path, "y")
    assert data.info["samples"] == 9


# ---------------------------------------------------------------- classification


def test_classification_labels_class_names_and_stratified_split(tmp_path):
    rows = []
    for i in range(40):
        label = "setosa" if i < 20 else ("virginica" if i < 32 else "versicolor")
        rows.append([str(i * 0.1), label])
    path = write_csv(tmp_path / "t.csv", ["x", "species"], rows)
    data = load_tabular(path, "species", splits=(0.5, 0.25, 0.25))
    p = data.pipeline
    assert p.task == "classification"
    assert p.class_names == ["setosa", "versicolor", "virginica"]
    assert data.y_train.dtype == np.int64
    # stratified: each split keeps the 20:8:12 proportions
    np.testing.assert_array_equal(np.bincount(data.y_train, minlength=3), [10, 4, 6])
    for y in (data.y_val, data.y_test):
        np.testing.assert_array_equal(np.bincount(y, minlength=3), [5, 2, 3])
    # labels point at the right names
    train = split_indices(40, (0.5, 0.25, 0.25), stratify=[r[1] for r in rows])[0]
    np.testing.assert_array_equal([p.class_names[k] for k in data.y_train],
                                  [rows[i][1] for i in train])
    assert p.inverse_target(data.y_train) is data.y_train
    np.testing.assert_array_equal(p.transform_target(["virginica", "setosa"]), [2, 0])


def test_auto_task_reads_few_integer_labels_as_classes(tmp_path):
    rows = [[str(i), str(i % 2)] for i in range(10)]
    path = write_csv(tmp_path / "t.csv", ["a", "label"], rows)
    data = load_tabular(path, "label")
    assert data.pipeline.task == "classification"
    assert data.pipeline.class_names == ["0", "1"]
    assert load_tabular(path, "label", task="regression").pipeline.task == "regression"


def test_numeric_class_names_sort_by_value(tmp_path):
    rows = [[str(i), str([2, 10, 1][i % 3])] for i in range(9)]
    path = write_csv(tmp_path / "t.csv", ["a", "label"], rows)
    assert load_tabular(path, "label").pipeline.class_names == ["1", "2", "10"]


def test_log_target_is_for_regression_only(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [["1", "cat"], ["2", "dog"]])
    with pytest.raises(ValueError, match="regression"):
        load_tabular(path, "y", log_target=True)


# --------------------------------------------------------------- transform inputs


def test_transform_accepts_dicts_with_extra_and_missing_keys(houses):
    path, rows = houses
    data = no_scaling(path)
    p = data.pipeline
    single = p.transform({"Id": "7", "Area": "150", "Zone": "RL", "Price": "9"})
    batch = p.transform([{"Area": 150.0, "Zone": "RL"}])
    np.testing.assert_array_equal(single, batch)
    # the CSV's own rows, read back as dicts, give exactly the loaded features
    with open(path, newline="") as fh:
        records = list(csv.DictReader(fh))
    train = split_indices(20, (0.5, 0.25, 0.25))[0]
    np.testing.assert_array_equal(p.transform([records[i] for i in train]), data.x_train)


def test_transform_accepts_raw_arrays_when_all_numeric(tmp_path):
    rows = [[str(i), str(10 - i), str(i * 3.0)] for i in range(10)]
    path = write_csv(tmp_path / "t.csv", ["a", "b", "y"], rows)
    p = load_tabular(path, "y").pipeline
    dicts = p.transform([{"a": 1, "b": 2}, {"a": 3, "b": "NA"}])
    np.testing.assert_array_equal(p.transform(np.array([[1, 2], [3, np.nan]])), dicts)
    np.testing.assert_array_equal(p.transform([1, 2]), dicts[:1])
    np.testing.assert_array_equal(p.transform([["1", "2"], ["3", "NA"]]), dicts)
    assert p.transform([]).shape == (0, 2)
    with pytest.raises(PipelineError, match=r"expected 2 raw feature\(s\)"):
        p.transform(np.zeros((2, 3)))


def test_transform_refuses_arrays_when_categorical(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    with pytest.raises(PipelineError, match="categorical columns.*dicts"):
        p.transform(np.zeros((1, 2)))


def test_text_in_numeric_column_names_column_value_and_expectation(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    with pytest.raises(PipelineError, match=r"column 'Area' holds 'big'.*number was expected"):
        p.transform({"Area": "big", "Zone": "RL"})


def test_dict_without_any_feature_column_is_an_error(houses):
    path, _ = houses
    p = no_scaling(path).pipeline
    with pytest.raises(PipelineError, match="none of the feature columns.*Area, Zone"):
        p.transform({"area": 3})


# -------------------------------------------------------------------------- state


def test_state_round_trip_is_json_and_exact(houses):
    path, _ = houses
    p = load_tabular(path, "Price", drop=["Id"], log_target=True).pipeline
    meta, arrays = p.state()
    assert meta["kind"] == "tabular"
    meta = json.loads(json.dumps(meta))
    assert all(a.dtype.kind == "f" for a in arrays.values())
    rebuilt = pipeline_from_state(meta, {k: v.copy() for k, v in arrays.items()})
    assert isinstance(rebuilt, TabularPipeline)
    assert rebuilt.feature_names == p.feature_names
    assert rebuilt.input_shape == p.input_shape
    assert (rebuilt.task, rebuilt.class_names) == (p.task, p.class_names)
    rows = [{"Area": "123.4", "Zone": "RM"}, {"Area": "NA"}, {"Zone": "RL", "Area": 99}]
    np.testing.assert_array_equal(rebuilt.transform(rows), p.transform(rows))
    y = np.array([-1.0, 0.0, 2.5], np.float32)
    np.testing.assert_array_equal(rebuilt.inverse_target(y), p.inverse_target(y))


def test_classification_state_round_trip(tmp_path):
    rows = [[str(i), "abc"[i % 3], "yes" if i % 2 else "no"] for i in range(12)]
    path = write_csv(tmp_path / "t.csv", ["n", "c", "label"], rows)
    p = load_tabular(path, "label").pipeline
    meta, arrays = p.state()
    rebuilt = pipeline_from_state(json.loads(json.dumps(meta)), arrays)
    assert rebuilt.class_names == ["no", "yes"] and rebuilt.task == "classification"
    np.testing.assert_array_equal(rebuilt.transform({"n": 4, "c": "b"}),
                                  p.transform({"n": 4, "c": "b"}))


# ------------------------------------------------------------------------- errors


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match=r"not found.*nowhere\.csv"):
        load_tabular(tmp_path / "nowhere.csv", "y")


def test_unknown_target_lists_columns_and_suggests(houses):
    path, _ = houses
    with pytest.raises(PipelineError) as info:
        load_tabular(path, "Prce")
    message = str(info.value)
    assert "'Prce'" in message and "Did you mean 'Price'?" in message
    assert "Id, Area, Zone, Price" in message


def test_unknown_drop_column_is_an_error(houses):
    path, _ = houses
    with pytest.raises(PipelineError, match="'ID' not found.*Did you mean 'Id'"):
        load_tabular(path, "Price", drop=["ID"])


def test_row_with_wrong_field_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(PipelineError, match=r"bad\.csv, line 4: expected 3 fields.*found 2"):
        load_tabular(path, "y")


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(PipelineError, match=r"empty\.csv is empty"):
        load_tabular(empty, "y")
    header = tmp_path / "header.csv"
    header.write_text("a,y\n\n")
    with pytest.raises(PipelineError, match="no data rows"):
        load_tabular(header, "y")


@pytest.mark.parametrize("option, value", [("task", "ranking"), ("impute_numeric", "mode"),
                                           ("impute_categorical", "mean"), ("scaling", "quantile")])
def test_invalid_options_name_the_value(houses, option, value):
    path, _ = houses
    with pytest.raises(ValueError, match=f"Invalid {option}: '{value}'"):
        load_tabular(path, "Price", **{option: value})

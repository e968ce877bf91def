"""CSV cleaning: duplicates before splitting, outlier bounds and feature selection
fitted on the train split only, robust scaling, the state in checkpoints, the
counts in ``Splits.info``."""
import json
import warnings

import numpy as np
import pytest
from conftest import run, write_config

from conftest import write_csv
from micrograd.config.loader import validate
from micrograd.data import cleaning
from micrograd.data.pipeline import PipelineError, pipeline_from_state
from micrograd.data.splits import split_indices
from micrograd.data.tabular import load_tabular


SPLITS = (0.6, 0.2, 0.2)


def parts(n, splits=SPLITS, seed=0):
    return split_indices(n, splits, seed=seed)


# ------------------------------------------------------------ array functions


def test_outlier_bounds_follow_each_rule():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 100, np.nan])
    q1, q3 = np.percentile(x[:-1], [25, 75])
    assert cleaning.outlier_bounds(x, "iqr") == pytest.approx(
        (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)))
    assert cleaning.outlier_bounds(x, "iqr", 3) == pytest.approx((q1 - 3 * (q3 - q1),
                                                                   q3 + 3 * (q3 - q1)))
    present = x[:-1]
    assert cleaning.outlier_bounds(x, "zscore", 2) == pytest.approx(
        (present.mean() - 2 * present.std(), present.mean() + 2 * present.std()))
    mad = 1.4826 * np.median(np.abs(present - np.median(present)))
    assert cleaning.outlier_bounds(x, "mad") == pytest.approx(
        (np.median(present) - 3.5 * mad, np.median(present) + 3.5 * mad))
    low, high = cleaning.outlier_bounds(x, "mad")
    assert cleaning.outside(x, low, high).tolist() == [False] * 8 + [True, False]


def test_a_column_without_spread_gets_no_bounds():
    mostly_zero = np.array([0.0] * 20 + [500.0])  # IQR and MAD are 0
    for method in ("iqr", "mad"):
        assert cleaning.outlier_bounds(mostly_zero, method) == (-np.inf, np.inf)
    with pytest.raises(ValueError, match="Invalid outlier method: 'tukey'"):
        cleaning.outlier_bounds(mostly_zero, "tukey")


def test_find_duplicates_marks_repeats_and_conflicts():
    features = [np.array(["a", "a", "a", "b", "b"]), np.array(["1", "1", "1", "2", "2"])]
    duplicate, conflict = cleaning.find_duplicates(features, np.array(["x", "x", "y", "z", "z"]))
    assert duplicate.tolist() == [False, True, False, False, True]
    assert conflict.tolist() == [True, True, True, False, False]


def test_robust_center_scale_falls_back_to_the_std():
    assert cleaning.robust_center_scale(np.array([1.0, 2, 3, 4, 5])) == (3.0, 2.0)
    values = np.array([0.0] * 9 + [10.0])
    assert cleaning.robust_center_scale(values) == (0.0, pytest.approx(values.std()))
    assert cleaning.robust_center_scale(np.ones(4)) == (1.0, 1.0)


def test_scores_rank_the_informative_feature_first():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    x = np.stack([rng.normal(size=200), y + 0.1 * rng.normal(size=200), np.ones(200)], axis=1)
    for score in ("correlation", "mutual_info"):
        s = cleaning.feature_scores(x, y, score, "regression")
        assert np.argmax(s) == 1 and s[2] == 0
    labels = (y > 0).astype(int)
    for score in ("anova_f", "chi2", "mutual_info"):
        assert np.argmax(cleaning.feature_scores(x, labels, score, "classification")) == 1
    with pytest.raises(ValueError, match="'chi2' does not apply to regression"):
        cleaning.feature_scores(x, y, "chi2", "regression")


# ------------------------------------------------------------------ duplicates


def duplicated_table(tmp_path, copies=3, n=30):
    """n distinct rows (a unique feature each), every third one repeated ``copies`` times."""
    rows = []
    for i in range(n):
        row = [str(i), "A" if i % 2 else "B", str(10 * i)]
        rows.extend([row] * (copies if i % 3 == 0 else 1))
    return write_csv(tmp_path / "dups.csv", ["a", "c", "y"], rows), rows


def _row_set(x, y):
    return {tuple(np.round(r, 5)) + (round(float(t), 5),) for r, t in zip(x, y)}


def test_duplicates_are_dropped_before_splitting(tmp_path):
    path, rows = duplicated_table(tmp_path)
    with pytest.warns(UserWarning, match="20 row\\(s\\) repeat an earlier row.*kept"):
        kept = load_tabular(path, "y", splits=SPLITS, scaling="none")
    # kept: copies of one row land on both sides (what dropping prevents)
    assert _row_set(kept.x_train, kept.y_train) & _row_set(kept.x_test, kept.y_test)
    assert kept.info["duplicates"] == {"found": 20, "dropped": 0, "conflicts": 0}
    with pytest.warns(UserWarning, match="dropped before splitting"):
        data = load_tabular(path, "y", splits=SPLITS, scaling="none", duplicates="drop")
    assert data.info["duplicates"] == {"found": 20, "dropped": 20, "conflicts": 0}
    assert data.info["samples"] == 30
    assert data.info["rows"] == {"train": 18, "val": 6, "test": 6}
    sides = [_row_set(data.x_train, data.y_train), _row_set(data.x_val, data.y_val),
             _row_set(data.x_test, data.y_test)]
    assert sum(map(len, sides)) == 30 and len(set.union(*sides)) == 30


def test_missing_spellings_compare_equal_as_duplicates(tmp_path):
    path = write_csv(tmp_path / "na.csv", ["a", "y"], [["NA", "1"], ["", "1"], ["2", "1"]] * 4)
    with pytest.warns(UserWarning):
        data = load_tabular(path, "y", duplicates="drop", task="regression",
                            splits=(1.0, 0.0, 0.0))
    assert data.info["samples"] == 2


def test_conflicts_are_reported_or_dropped(tmp_path):
    rows = [[str(i % 10), str(i % 10 * 3)] for i in range(20)]
    rows += [["1", "99"], ["2", "98"]]  # same features as rows 1 and 2, other targets
    path = write_csv(tmp_path / "c.csv", ["a", "y"], rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet = load_tabular(path, "y", task="regression", duplicates="drop")
    assert quiet.info["duplicates"] == {"found": 10, "dropped": 10, "conflicts": 4}
    with pytest.warns(UserWarning, match="4 row\\(s\\) share their features.*kept"):
        load_tabular(path, "y", task="regression", duplicates="drop", conflicts="report")
    with pytest.warns(UserWarning, match="share their features.*dropped"):
        data = load_tabular(path, "y", task="regression", duplicates="drop", conflicts="drop",
                            splits=(1.0, 0.0, 0.0))
    assert data.info["samples"] == 8 and data.info["duplicates"]["dropped"] == 14
    assert sorted(data.pipeline.inverse_target(data.y_train).round().tolist()) == \
        [0.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0]


# -------------------------------------------------------------------- outliers


def outlier_table(tmp_path, n=40, test_value=None, train_value=None, name="o.csv"):
    """y = 2a + b; optionally one test row's ``a`` and one train row's ``a`` set."""
    train, _, test = parts(n)
    rows = []
    for i in range(n):
        a = float(i % 10)
        if test_value is not None and i == test[0]:
            a = test_value
        if train_value is not None and i == train[0]:
            a = train_value
        rows.append([repr(a), str(i % 3), repr(2 * (i % 10) + i % 3)])
    return write_csv(tmp_path / name, ["a", "b", "y"], rows), train, test


@pytest.mark.parametrize("method", ["iqr", "zscore", "mad"])
@pytest.mark.parametrize("action", ["clip", "drop"])
def test_an_outlier_in_the_test_split_does_not_move_the_train_statistics(tmp_path, action,
                                                                          method):
    # zscore bounds fitted on every row would move far out with the 1e6 test value
    options = {"method": method, "action": action, "columns": ["a"]}
    clean, _, _ = outlier_table(tmp_path, name="clean.csv")
    path, train, test = outlier_table(tmp_path, test_value=1e6, name="dirty.csv")
    reference = load_tabular(clean, "y", splits=SPLITS, outliers=options).pipeline
    data = load_tabular(path, "y", splits=SPLITS, outliers=options)
    p = data.pipeline
    assert (p.clip_low[0], p.clip_high[0]) == (reference.clip_low[0], reference.clip_high[0])
    assert (p.center[0], p.scale[0]) == (reference.center[0], reference.scale[0])
    assert data.info["outliers"]["a"]["found"] == 0
    assert data.info["rows"]["test"] == len(test)  # never dropped ...
    row = list(test).index(test[0])
    assert data.x_test[row, 0] == pytest.approx((p.clip_high[0] - p.center[0]) / p.scale[0])


def test_a_train_outlier_is_dropped_from_train_only_and_counted(tmp_path):
    path, train, test = outlier_table(tmp_path, train_value=1e6)
    options = {"method": "iqr", "action": "drop", "columns": ["a"]}
    with pytest.warns(UserWarning, match="a 1; dropped 1 train row"):
        data = load_tabular(path, "y", splits=SPLITS, outliers=options, scaling="none")
    assert data.info["rows"] == {"train": len(train) - 1, "val": 8, "test": len(test)}
    values = np.array([1e6] + [float(i % 10) for i in train[1:]])
    low, high = cleaning.outlier_bounds(values, "iqr")
    assert data.info["outliers"] == {"a": {"found": 1, "action": "drop", "low": low,
                                           "high": high}}
    assert data.x_train[:, 0].max() == 9.0
    # the train statistics come from the rows that stay
    kept = np.array([float(i % 10) for i in train[1:]])
    assert data.pipeline.numeric_fill[0] == pytest.approx(kept.mean())


def test_clip_keeps_the_row_with_the_value_at_the_bound(tmp_path):
    path, train, _ = outlier_table(tmp_path, train_value=1e6)
    with pytest.warns(UserWarning, match="clipped them to the bounds"):
        data = load_tabular(path, "y", splits=SPLITS, scaling="none",
                            outliers={"method": "iqr", "action": "clip"})
    assert data.info["rows"]["train"] == len(train)
    values = np.array([1e6] + [float(i % 10) for i in train[1:]])
    assert data.x_train[0, 0] == np.float32(cleaning.outlier_bounds(values, "iqr")[1])
    assert data.info["outliers"]["a"]["found"] == 1
    assert data.info["outliers"]["b"] == {"found": 0, "action": "clip", "low": -3.0, "high": 5.0}


def test_target_outliers_drop_train_rows_only(tmp_path):
    train, _, test = parts(40)
    rows = [[str(i), repr(100.0 + i % 7)] for i in range(40)]
    rows[train[1]][1] = "5000"
    rows[test[1]][1] = "9000"
    path = write_csv(tmp_path / "t.csv", ["a", "y"], rows)
    with pytest.warns(UserWarning, match="y 1; dropped 1 train row"):
        data = load_tabular(path, "y", splits=SPLITS, log_target=True, task="regression",
                            outliers={"action": "drop", "columns": ["y"]})
    assert data.info["rows"]["train"] == len(train) - 1
    assert data.pipeline.inverse_target(data.y_test).max() == pytest.approx(9000, rel=1e-4)
    with pytest.raises(PipelineError, match="categorical"):
        load_tabular(write_csv(tmp_path / "k.csv", ["c", "y"], [["A", "1"]] * 3 + [["B", "2"]]),
                     "y", task="regression", outliers={"columns": ["c"]})


# ------------------------------------------------------------------- selection


def test_selection_scores_use_train_rows_only(tmp_path):
    """``good`` follows the target on train rows, ``trap`` only on val/test rows:
    a selector that looked beyond train would take ``trap``."""
    rng = np.random.default_rng(0)
    n = 60
    train, val, test = parts(n)
    held_out = np.zeros(n, bool)
    held_out[np.concatenate([val, test])] = True
    y = rng.normal(size=n)
    good = np.where(held_out, rng.normal(size=n), y)
    trap = np.where(held_out, 100 * y, rng.normal(size=n))
    rows = [[repr(float(g)), repr(float(t)), repr(float(v))] for g, t, v in zip(good, trap, y)]
    path = write_csv(tmp_path / "s.csv", ["good", "trap", "y"], rows)
    full = load_tabular(path, "y", splits=SPLITS)
    assert np.corrcoef(np.concatenate([full.x_train[:, 1], full.x_val[:, 1], full.x_test[:, 1]]),
                       np.concatenate([full.y_train, full.y_val, full.y_test]))[0, 1] > 0.5
    data = load_tabular(path, "y", splits=SPLITS, select={"k": 1})
    assert data.pipeline.feature_names == ["good"] == data.info["features"]
    assert data.x_train.shape == (len(train), 1)
    assert data.info["selected_out"]["trap"].startswith("correlation")


def test_variance_threshold_removes_rare_one_hot_indicators(tmp_path):
    rows = [[str(i), "rare" if i == 3 else ("A" if i % 2 else "B"), str(i)] for i in range(40)]
    path = write_csv(tmp_path / "v.csv", ["a", "c", "y"], rows)
    data = load_tabular(path, "y", splits=(1.0, 0.0, 0.0), task="regression",
                        select={"variance_threshold": 0.05})
    assert data.info["features"] == ["a", "c=A", "c=B"]
    assert list(data.info["selected_out"]) == ["c=rare"]
    assert data.pipeline.transform({"a": "1", "c": "rare"}).shape == (1, 3)


def test_classification_info_and_selection(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array(["no", "yes"] * 30)
    signal = (labels == "yes") + 0.2 * rng.normal(size=60)
    rows = [[repr(float(s)), repr(float(r)), c]
            for s, r, c in zip(signal, rng.normal(size=60), labels)]
    path = write_csv(tmp_path / "c.csv", ["signal", "noise", "label"], rows)
    for score in ("anova_f", "chi2", "mutual_info"):
        data = load_tabular(path, "label", splits=SPLITS, select={"k": 1, "score": score})
        assert data.info["features"] == ["signal"], score
    assert data.info["class_balance"] == {"train": {"no": 18, "yes": 18},
                                          "val": {"no": 6, "yes": 6},
                                          "test": {"no": 6, "yes": 6}}
    with pytest.raises(ValueError, match="'correlation' does not apply to classification"):
        load_tabular(path, "label", select={"k": 1, "score": "correlation"})


# --------------------------------------------------------------------- scaling


def test_robust_scaling_uses_train_median_and_iqr(tmp_path):
    path, train, _ = outlier_table(tmp_path, train_value=1e6)
    data = load_tabular(path, "y", splits=SPLITS, scaling="robust")
    values = np.array([1e6 if i == train[0] else float(i % 10) for i in train])
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    assert (data.pipeline.center[0], data.pipeline.scale[0]) == pytest.approx((median, q3 - q1))


# --------------------------------------------------------- info, state, checkpoint


def test_info_carries_the_profile_contract(tmp_path):
    rows = [[str(i) if i % 4 else "NA", "A" if i % 3 else "", str(i)] for i in range(30)]
    path = write_csv(tmp_path / "i.csv", ["a", "c", "y"], rows)
    data = load_tabular(path, "y", task="regression")
    info = data.info
    assert info["rows"] == {"train": 24, "val": 3, "test": 3}
    # rows 0, 12, 24 (a and c missing) and 4, 8, 16, 20, 28 (a missing, c=A)
    # share their features, with other targets: missing cells compare equal
    assert info["duplicates"] == {"found": 0, "dropped": 0, "conflicts": 8}
    assert info["outliers"] == {} and info["selected_out"] == {}
    assert info["missing"] == {"a": 8, "c": 10, "y": 0}
    assert info["features"] == ["a", "c=A"] and info["n_features"] == 2
    assert "class_balance" not in info
    json.dumps(info)


def test_state_round_trip_keeps_bounds_and_selection(tmp_path):
    path, _, _ = outlier_table(tmp_path, train_value=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = load_tabular(path, "y", splits=SPLITS, scaling="robust", categorical=["b"],
                         outliers={"method": "mad", "action": "drop"},
                         select={"k": 2}).pipeline
    meta, arrays = p.state()
    q = pipeline_from_state(json.loads(json.dumps(meta)), arrays)
    assert q.feature_names == p.feature_names and len(p.feature_names) == 2
    assert np.array_equal(q.clip_high, p.clip_high) and np.isfinite(p.clip_high[0])
    rows = [{"a": "1e9", "b": "1"}, {"a": "-5", "b": "2"}, {"a": "", "b": "0"}]
    assert np.array_equal(q.transform(rows), p.transform(rows))
    at_bound = p.transform({"a": repr(float(p.clip_high[0])), "b": "1"})
    assert np.array_equal(p.transform(rows[:1]), at_bound)


def test_predict_clips_an_input_beyond_the_train_bounds(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 10, size=60)
    a[5] = 500.0  # a train or held-out outlier either way
    rows = [[repr(float(v)), repr(float(2 * min(v, 10) + 1))] for v in a]
    write_csv(tmp_path / "train.csv", ["a", "y"], rows)
    config = {
        "data": {"type": "csv", "path": "train.csv", "target": "y", "duplicates": "drop",
                 "outliers": {"method": "iqr", "action": "drop", "columns": ["a"]},
                 "select": {"k": 1}},
        "model": {"layers": [{"type": "linear", "out_features": 1}]},
        "loss": "mse",
        "optimizer": {"type": "adam", "lr": 0.05},
        "train": {"epochs": 5, "batch_size": 16, "seed": 0},
        "output": {"dir": "run"},
    }
    validate(config)
    write_config(tmp_path, config)
    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    write_csv(tmp_path / "inputs.csv", ["a"], [["1e6"], ["-1e6"], ["5"], [""]])
    result = run(["predict", "--file", "inputs.csv", "--checkpoint", "run"], tmp_path)
    assert result.exit_code == 0, result.output
    from micrograd.checkpoint import load_checkpoint
    from micrograd.data.pipeline import pipeline_from_state as rebuild
    meta, arrays = load_checkpoint(tmp_path / "run" / "best.npz")
    p = rebuild(meta["pipeline"], {k[9:]: v for k, v in arrays.items()
                                   if k.startswith("pipeline/")})
    low, high = float(p.clip_low[0]), float(p.clip_high[0])
    assert np.isfinite([low, high]).all() and p.feature_names == ["a"]
    predictions = [float(v) for v in result.output.split()]
    assert len(predictions) == 4  # every input predicted, none dropped
    bounds = run(["predict", "--input", f"a={high!r}", "--checkpoint", "run"], tmp_path)
    assert float(bounds.output.split()[0]) == pytest.approx(predictions[0])
    bounds = run(["predict", "--input", f"a={low!r}", "--checkpoint", "run"], tmp_path)
    assert float(bounds.output.split()[0]) == pytest.approx(predictions[1])


def test_config_checks_the_cleaning_options():
    base = {"type": "csv", "path": "x.csv", "target": "y"}
    for bad in ({"outliers": {"method": "tukey"}}, {"outliers": {"factor": 0}},
                {"select": {"score": "gini"}}, {"select": {"k": 0}},
                {"duplicates": "remove"}, {"scaling": "quantile"}):
        with pytest.raises(Exception, match="data"):
            validate({"data": {**base, **bad}, "model": {"layers": [
                {"type": "linear", "out_features": 1}]}, "loss": "mse",
                "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"epochs": 1}})

"""Cross-validation (issue 13): fold splits through every data kind, no leakage of a
fold's validation rows into its fitted preprocessing, the same figures whatever the
number of workers, cv.csv, and the `micrograd cv` command."""
import csv
import json

import numpy as np
import pytest

from conftest import run, write_config
from micrograd.build import build_data
from micrograd.config.loader import ConfigError, load_config
from micrograd.data.pipeline import PipelineError
from micrograd.data.splits import Fractions, split_indices
from micrograd.model_selection import cross_validate, fold_config
from micrograd.run import LATEST, restore

SPLITS = (0.7, 0.1, 0.2)


# ------------------------------------------------------------------ splits


@pytest.mark.parametrize("stratified", [False, True])
def test_folds_partition_the_pool_and_keep_the_plain_test_split(stratified):
    n, k = 103, 4
    labels = np.arange(n) % 3 if stratified else None
    plain = split_indices(n, SPLITS, seed=7, stratify=labels)
    pool = np.sort(np.concatenate(plain[:2]))
    vals = []
    for i in range(k):
        train, val, test = split_indices(n, Fractions(SPLITS, folds=k, fold=i), seed=7,
                                         stratify=labels)
        np.testing.assert_array_equal(test, plain[2])
        np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), pool)
        assert not set(train) & set(val)
        vals.append(val)
        if stratified:  # each class's share in every validation fold, within one sample
            counts = np.bincount(labels[val], minlength=3)
            expected = np.bincount(labels[pool], minlength=3) / k
            assert np.all(np.abs(counts - expected) <= 1), counts
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), pool)


def test_repeats_give_other_folds_and_the_same_repeat_the_same():
    a = split_indices(60, Fractions(SPLITS, folds=3, fold=0, repeat=0), seed=1)
    b = split_indices(60, Fractions(SPLITS, folds=3, fold=0, repeat=1), seed=1)
    c = split_indices(60, Fractions(SPLITS, folds=3, fold=0, repeat=1), seed=1)
    assert not np.array_equal(a[1], b[1])
    np.testing.assert_array_equal(b[1], c[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_too_many_folds_is_an_input_error():
    with pytest.raises(PipelineError, match="need at least 50 samples"):
        split_indices(20, Fractions(SPLITS, folds=50, fold=0))


def test_split_config_fold_keys_are_checked(tmp_path):
    path = write_config(tmp_path, _csv_config(tmp_path / "d.csv"))
    with pytest.raises(ConfigError, match="folds and fold go together"):
        load_config(path, ["data.splits.fold=1"])
    with pytest.raises(ConfigError, match="fold is 0..2"):
        load_config(path, ["data.splits.folds=3", "data.splits.fold=3"])
    plain = load_config(path).data.splits.fractions()
    assert plain == (0.7, 0.1, 0.2) and plain.folds is None


# ------------------------------------------------------------- through kinds


def _write_csv(path, n=90, seed=0, extreme_rows=()):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[list(extreme_rows)] = 1e6
    z = rng.normal(size=n)
    y = 2 * x + z
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "z", "y"])
        for row in zip(x, z, y):
            w.writerow([f"{v:.6g}" for v in row])
    return path


def _csv_config(path, epochs=2):
    return {"data": {"type": "csv", "path": str(path), "target": "y", "scaling": "standard",
                     "splits": dict(zip(("train", "val", "test"), SPLITS)), "seed": 3},
            "model": {"layers": [{"type": "linear", "out_features": 1}]},
            "loss": "mse", "optimizer": {"type": "adam", "lr": 0.01},
            "train": {"epochs": epochs, "batch_size": 16, "monitor": "r2"}}


def test_every_data_kind_gets_the_fold(tmp_path):
    """A fold config reaches split_indices through each kind: its validation part is
    the fold, its test part the plain one (CSV, text, generated arrays)."""
    text = tmp_path / "t.tsv"
    text.write_text("".join(f"word{i} other{i % 5}\t{i % 2}\n" for i in range(60)))
    sections = {
        "csv": _csv_config(_write_csv(tmp_path / "d.csv"))["data"],
        "text": {"type": "text", "path": str(text), "splits": {"train": 0.6, "val": 0.2,
                                                               "test": 0.2}},
        "synthetic": {"type": "synthetic", "kind": "blobs", "n": 80,
                      "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
    }
    for kind, data in sections.items():
        cfg = {**_csv_config(tmp_path / "d.csv"), "data": data}
        if kind != "csv":
            cfg.update(loss="cross_entropy", train={"epochs": 1, "monitor": "accuracy"},
                       model={"layers": [{"type": "linear", "out_features": 2}]})
        config = load_config(write_config(tmp_path, cfg, f"{kind}.yaml"))
        plain = build_data(config)
        sizes = []
        for i in range(3):
            fold = build_data(fold_config(config, 3, i))
            got, want = np.asarray(fold.y_test), np.asarray(plain.y_test)
            if got.dtype.kind == "f":  # a regression target scaled by the fold's train part
                assert len(got) == len(want) and np.corrcoef(got, want)[0, 1] > 1 - 1e-6
            else:
                np.testing.assert_array_equal(got, want)
            sizes.append(len(fold.y_val))
            assert len(fold.y_train) + len(fold.y_val) == len(plain.y_train) + len(plain.y_val)
        assert sum(sizes) == len(plain.y_train) + len(plain.y_val), kind


def test_no_leakage_the_scaler_of_a_fold_never_sees_its_validation_rows(tmp_path):
    """x is 1e6 only in the rows of fold 0's validation part: fold 0's fitted scaler
    (center/scale in its checkpoint) must not see them; the other folds train on
    those rows, so theirs must (which shows the test can fail)."""
    n = 90
    k = 3
    plain = split_indices(n, SPLITS, seed=3)
    pool = np.sort(np.concatenate(plain[:2]))
    fold0_val = split_indices(n, Fractions(SPLITS, folds=k, fold=0), seed=3)[1]
    assert set(fold0_val) <= set(pool)
    path = _write_csv(tmp_path / "d.csv", n, extreme_rows=fold0_val[:4])
    config = load_config(write_config(tmp_path, _csv_config(path, epochs=1)))
    result = cross_validate(config, folds=k, out_dir=tmp_path / "cv")
    centers = []
    for fold in result.folds:
        pipeline = restore(fold.run_dir / "best.npz").pipeline
        centers.append((pipeline.center[0], pipeline.scale[0]))
    assert abs(centers[0][0]) < 10 and centers[0][1] < 10, centers
    for center, scale in centers[1:]:
        assert center > 1e4 and scale > 1e5, centers


def test_no_leakage_the_vocabulary_of_a_fold_never_sees_its_validation_sentences(tmp_path):
    n = 60
    fractions = (0.6, 0.2, 0.2)
    labels = np.arange(n) % 2
    fold0_val = set(split_indices(n, Fractions(fractions, folds=3, fold=0), seed=0,
                                  stratify=labels)[1].tolist())
    lines = [f"common{i % 4} {'secret' if i in fold0_val else 'plain'}{i}\t{i % 2}\n"
             for i in range(n)]
    path = tmp_path / "t.tsv"
    path.write_text("".join(lines))
    cfg = {"data": {"type": "text", "path": str(path),
                    "splits": dict(zip(("train", "val", "test"), fractions))},
           "model": {"layers": [{"type": "linear", "out_features": 2}]},
           "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.01},
           "train": {"epochs": 1, "monitor": "accuracy"}}
    config = load_config(write_config(tmp_path, cfg))
    vocab = [build_data(fold_config(config, 3, i)).pipeline.vocabulary for i in range(3)]
    assert not any(t.startswith("secret") for t in vocab[0])
    assert any(t.startswith("secret") for t in vocab[1])


# --------------------------------------------------------------- cross_validate


def test_workers_give_the_same_results_and_cv_csv(tmp_path):
    config = load_config(write_config(tmp_path, _csv_config(_write_csv(tmp_path / "d.csv"))))
    seen = []
    one = cross_validate(config, folds=3, repeats=2, workers=1, out_dir=tmp_path / "a",
                         on_fold=seen.append)
    two = cross_validate(config, folds=3, repeats=2, workers=2, out_dir=tmp_path / "b")
    assert [(f.repeat, f.fold) for f in one.folds] == [(r, i) for r in range(2) for i in range(3)]
    assert len(seen) == 6
    assert [f.metrics for f in one.folds] == [f.metrics for f in two.folds]
    assert one.mean == two.mean and one.std == two.std
    assert one.monitor == "val_r2" and one.goal == "max" and one.score == one.mean["val_r2"]
    assert set(one.mean) == {"val_loss", "val_mse", "val_rmse", "val_mae", "val_r2"}
    values = [f.metrics["val_r2"] for f in one.folds]
    assert one.mean["val_r2"] == pytest.approx(np.mean(values))
    assert one.std["val_r2"] == pytest.approx(np.std(values, ddof=1))
    with open(tmp_path / "a" / "cv.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["fold"] for r in rows] == ["0", "1", "2"] * 2 + ["mean", "std"]
    assert [r["run_dir"] for r in rows[:2]] == ["fold-0-0", "fold-0-1"]
    assert float(rows[-2]["val_r2"]) == one.mean["val_r2"]
    assert float(rows[-1]["val_mae"]) == one.std["val_mae"]
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["status"] == "finished" and info["mean"] == one.mean
    assert (tmp_path / "b" / "fold-1-2" / "best.npz").is_file()
    assert not LATEST.exists()  # folds do not become the latest run


def test_a_failing_fold_is_named(tmp_path):
    config = load_config(write_config(tmp_path, _csv_config(_write_csv(tmp_path / "d.csv", n=12))))
    with pytest.raises(PipelineError, match=r"fold 0 of 11 \(repeat 0, .*fold-0-0\): 11 folds"):
        cross_validate(config, folds=11, out_dir=tmp_path / "cv")
    assert json.loads((tmp_path / "cv" / "run.json").read_text())["status"] == "failed"
    # In parallel, every fold fails; whichever a worker reports first is named.
    with pytest.raises(PipelineError, match=r"fold \d+ of 11") as caught:
        cross_validate(config, folds=11, workers=2, out_dir=tmp_path / "cv2")
    assert str(caught.value).startswith(f"fold {caught.value.fold} of 11")


# ------------------------------------------------------------------ the command


def test_cli_table_json_and_exit_codes(tmp_path):
    path = write_config(tmp_path, _csv_config(_write_csv(tmp_path / "d.csv")))
    result = run(["cv", path, "--folds", "3", "--set", "output.dir=out"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "fold-0-2" in result.output and "± std" in result.output
    assert "val_r2" in result.output and "run folder: out" in result.output
    assert (tmp_path / "out" / "cv.csv").is_file()
    again = run(["cv", path, "--folds", "3", "--set", "output.dir=out"], tmp_path)
    assert again.exit_code == 2 and "holds an earlier run" in again.output
    assert "--resume" not in again.output
    forced = run(["cv", path, "--folds", "3", "--set", "output.dir=out", "--force",
                  "--json", "-"], tmp_path)
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.output)
    assert report["monitor"] == "val_r2" and len(report["folds"]) == 3
    assert report["folds"][0]["name"] == "fold-0-0"
    written = run(["cv", path, "-k", "2", "--json", "r.json"], tmp_path)
    assert written.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["std"]
    assert next((tmp_path / "runs").glob("config-cv-*/fold-0-1/best.npz"))
    assert run(["cv", path, "--folds", "500"], tmp_path).exit_code == 2
    assert run(["cv", path, "--folds", "1"], tmp_path).exit_code == 2
    missing = run(["cv", path, "--set", f"data.path={tmp_path / 'nope.csv'}"], tmp_path)
    assert missing.exit_code == 1 and "fold 0 of 5" in missing.output, missing.output

"""IDX image folders, synthetic data and splits, on small files made in tmp dirs."""
import json

import numpy as np
import pytest

from micrograd.data.idx import IDXError, read_idx, write_idx
from micrograd.data.images import ImagePipeline, load_idx_images
from micrograd.data.pipeline import PipelineError, pipeline_from_state
from micrograd.data.splits import kfold_indices, split_indices
from micrograd.data.synthetic import ArrayPipeline, load_synthetic


def make_idx_folder(folder, n_train=60, n_test=20, size=28, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        if n:
            write_idx(folder / f"{split}-images-idx3-ubyte{ext}",
                      rng.integers(0, 256, (n, size, size)).astype(np.uint8))
            write_idx(folder / f"{split}-labels-idx1-ubyte{ext}",
                      (np.arange(n) % 10).astype(np.uint8))
    return folder


# ------------------------------------------------------------------ IDX files


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), data)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, data)
    floats = np.linspace(0, 1, 5).astype(np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", floats)), floats)


def test_idx_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(12))
    with pytest.raises(IDXError, match="bad-images-idx3-ubyte.*magic"):
        read_idx(path)


def test_idx_truncated_data_is_an_error(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros((10, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(IDXError, match=r"x\.idx.*truncated.*\(10, 4, 4\)"):
        read_idx(path)


def test_idx_truncated_gzip_is_an_error(tmp_path):
    path = write_idx(tmp_path / "x.idx.gz", np.zeros((50, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(IDXError, match=r"x\.idx\.gz"):
        read_idx(path)


def test_idx_trailing_bytes_is_an_error(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros((2, 2), np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(IDXError, match="trailing"):
        read_idx(path)


# ------------------------------------------------------------------ image folders


def test_idx_folder_splits_and_normalisation(tmp_path):
    make_idx_folder(tmp_path)
    s = load_idx_images(tmp_path, splits=(0.8, 0.2, 0.0), mean=0.5, std=0.5)
    assert s.x_train.shape == (48, 1, 28, 28) and s.x_train.dtype == np.float32
    assert s.x_val.shape == (12, 1, 28, 28)
    assert s.x_test.shape == (20, 1, 28, 28)  # the t10k files
    assert s.y_train.dtype == np.int64
    assert -1.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(s.x_test[:, 0], (raw / 255.0 - 0.5) / 0.5, atol=1e-6)
    assert s.pipeline.class_names == [str(d) for d in range(10)]


def test_idx_folder_with_only_test_files_is_split_three_ways(tmp_path):
    make_idx_folder(tmp_path, n_train=0, n_test=100, gz=False)
    s = load_idx_images(tmp_path, splits=(0.6, 0.2, 0.2))
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (60, 20, 20)


def test_missing_idx_files_say_what_to_place_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\].*Place"):
        load_idx_images(tmp_path)


def test_mismatched_label_count_is_an_error(tmp_path):
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8))
    with pytest.raises(IDXError, match="59 labels for 60 images"):
        load_idx_images(tmp_path)


def test_image_pipeline_transform_and_state():
    p = ImagePipeline((1, 28, 28), mean=0.1307, std=0.3081, class_names=list("0123456789"))
    img = np.full((28, 28), 255, np.uint8)
    out = p.transform(img)
    assert out.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(out, (1 - 0.1307) / 0.3081, rtol=1e-6)
    np.testing.assert_allclose(p.transform(np.ones((3, 1, 28, 28))), out.repeat(3, 0), rtol=1e-6)
    with pytest.raises(PipelineError, match="28x28"):
        p.transform(np.zeros((32, 32)))
    meta, arrays = p.state()
    json.dumps(meta)
    q = pipeline_from_state(meta, arrays)
    np.testing.assert_array_equal(q.transform(img), out)


def test_loading_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, micrograd.tensor, micrograd.nn, micrograd.data.images; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ synthetic


def test_linear_toy_is_the_design_documents():
    s = load_synthetic("linear", splits=(0.8, 0.2, 0.0))
    x = np.concatenate([s.x_train, s.x_val])[:, 0]
    y = np.concatenate([s.y_train, s.y_val])
    assert sorted(x.tolist()) == [float(i) for i in range(1, 11)]
    np.testing.assert_allclose(y, 2 * x)
    assert len(s.y_train) == 8 and s.pipeline.task == "regression"


@pytest.mark.parametrize("kind", ["blobs", "moons"])
def test_classification_sets(kind):
    s = load_synthetic(kind, splits=(0.5, 0.25, 0.25), n=200, seed=3)
    assert s.pipeline.task == "classification" and s.pipeline.class_names == ["0", "1"]
    assert s.x_train.shape == (100, 2) and s.y_train.dtype == np.int64
    # stratified: each split keeps the 50/50 balance
    for y in (s.y_train, s.y_val, s.y_test):
        assert abs(y.mean() - 0.5) <= 0.05


def test_array_pipeline_inputs_and_errors():
    p = ArrayPipeline.fit(np.array([[1.0, 2.0], [3.0, 6.0]]), standardize=True)
    np.testing.assert_allclose(p.transform([[1.0, 2.0], [3.0, 6.0]]), [[-1, -1], [1, 1]])
    assert p.transform([2.0, 4.0]).shape == (1, 2)
    with pytest.raises(PipelineError, match="2 feature"):
        p.transform([1.0, 2.0, 3.0])
    with pytest.raises(PipelineError, match="expected numbers"):
        p.transform("hello")
    q = pipeline_from_state(*p.state())
    np.testing.assert_array_equal(q.transform([2.0, 4.0]), p.transform([2.0, 4.0]))
    one = ArrayPipeline.fit(np.array([[1.0], [2.0]]))
    assert one.transform(11).tolist() == [[11.0]]
    assert one.transform([1, 2, 3]).shape == (3, 1)  # one feature: a list is many samples


# ------------------------------------------------------------------ splits


def test_split_indices_deterministic_disjoint_and_complete():
    a = split_indices(103, (0.7, 0.2, 0.1), seed=5)
    b = split_indices(103, (0.7, 0.2, 0.1), seed=5)
    c = split_indices(103, (0.7, 0.2, 0.1), seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert [len(p) for p in a] == [72, 21, 10]
    assert sorted(np.concatenate(a).tolist()) == list(range(103))


def test_split_indices_stratified():
    labels = np.array([0] * 90 + [1] * 10)
    train, val, test = split_indices(100, (0.8, 0.1, 0.1), seed=0, stratify=labels)
    assert labels[train].sum() == 8 and labels[val].sum() == 1 and labels[test].sum() == 1


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, (0.5, 0.1))


def test_kfold_covers_every_sample_once():
    labels = np.array([0, 1] * 25)
    folds = kfold_indices(50, k=5, seed=0, stratify=labels)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(50))
    for train, v in folds:
        assert len(v) == 10 and not set(train) & set(v)
        assert labels[v].sum() == 5

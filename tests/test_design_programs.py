"""The design document's three programs, run as written, on generated data."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import linear_regression  # noqa: E402
import logistic_regression  # noqa: E402
import mnist_cnn  # noqa: E402


def test_linear_regression_predicts_22_for_11(capsys):
    prediction = linear_regression.main()
    assert prediction == pytest.approx(22.0, abs=0.5)
    assert "prediction for x = 11" in capsys.readouterr().out


def test_logistic_regression_separates_two_blobs():
    assert logistic_regression.main() >= 0.95


def synthetic_digits(n, seed):
    """28x28 images of three shapes (horizontal bar, vertical bar, ring) with noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        r, c = rng.integers(6, 16, 2)
        if label == 0:
            images[i, r:r + 4, 4:24] = 255
        elif label == 1:
            images[i, 4:24, c:c + 4] = 255
        else:
            images[i, r:r + 10, c:c + 10] = 255
            images[i, r + 3:r + 7, c + 3:c + 7] = 0
    return mnist_cnn.normalise(images), labels.astype(np.int64)


def test_cnn_learns_generated_digits():
    x, y = synthetic_digits(300, seed=0)
    accuracy = mnist_cnn.train(x[:240], y[:240], x[240:], y[240:], epochs=3, batch_size=16,
                               log=lambda *_: None)
    assert accuracy >= 0.9


def test_cnn_shapes_match_the_design_document():
    model = mnist_cnn.build_model()
    import micrograd.nn as mn
    import micrograd.tensor as mt

    features = model[:6](mt.Tensor(np.zeros((2, 1, 28, 28))))
    assert features.shape == (2, 64, 5, 5)
    # mn.fuse computes Flatten and Linear together, in the Linear's place.
    assert type(model[6]) is mn.Identity and model[7].in_features == 64 * 5 * 5
    assert model(mt.Tensor(np.zeros((2, 1, 28, 28)))).shape == (2, 10)

"""The design document's second program: logistic regression on two blobs.

``Sequential([Linear(2, 1), Sigmoid()])`` outputs a probability per point and
is trained with ``CrossEntropyLoss`` on 0/1 targets (a single probability
column is binary log loss) and the SGD optimiser.

    python examples/logistic_regression.py
"""
import numpy as np

import micrograd.nn as mn
import micrograd.tensor as mt


def make_blobs(n=200, seed=0):
    """Two Gaussian clouds, around (-2, -2) (class 0) and (2, 2) (class 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    centres = np.where(labels[:, None] == 1, 2.0, -2.0)
    points = centres + rng.standard_normal((n, 2))
    return points, labels


def main(epochs=100, seed=0):
    mt.manual_seed(seed)
    points, labels = make_blobs(seed=seed)
    x_train, y_train = mt.Tensor(points[:150]), mt.Tensor(labels[:150])
    x_test, y_test = mt.Tensor(points[150:]), mt.Tensor(labels[150:])

    model = mn.Sequential([mn.Linear(2, 1), mn.Sigmoid()])
    loss_fn = mt.CrossEntropyLoss()
    optimizer = mt.SGD(model.parameters(), lr=0.1)

    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        optimizer.step()
        if epoch % 25 == 0:
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}")

    with mt.no_grad():
        predicted = (model(x_test).squeeze(1) > 0.5).float()
    accuracy = (predicted == y_test).float().mean().item()
    print(f"test accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()

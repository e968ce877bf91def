"""The design document's third program: a small CNN learns handwritten digits.

Conv(1->32, 3) - ReLU - AvgPool(2) - Conv(32->64, 3) - ReLU - AvgPool(2) -
Flatten - Linear(64*5*5 -> 10), trained with Adam through a DataLoader.
(The document writes 64*4*4, but a 28x28 digit arrives at the Linear layer as
64 channels of 5x5.)

Trains 2 epochs on 80% of a set of real MNIST digits and reports the accuracy
on the other 20% (8,000 and 2,000 of the 10,000-digit MNIST test set):

    python examples/mnist_cnn.py [MNIST_FOLDER]

The folder holds t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]
(gzip or raw). It is the argument, else the MNIST_FOLDER environment variable,
else the MNIST folder of micrograd's data folder ($MICROGRAD_DATA or
~/.cache/micrograd: mnist/ or mnist-t10k/, as `micrograd train
configs/mnist_cnn.yaml` finds it; nothing is downloaded here), else the 3,000
digits shipped inside micrograd (2,400 train, 600 held out; a note on stderr
says so). Missing or damaged files print one line saying so and exit 1.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd.data.download import cache_dir, find_dataset
from micrograd.data.images import FILES, find_idx_file, read_split
from micrograd.data.pipeline import DataError
from micrograd.datasets import DIGITS


def data_folder(argv=()):
    """The MNIST folder: the first argument, else $MNIST_FOLDER, else the data folder's
    MNIST, else the digits shipped inside micrograd."""
    if argv or os.environ.get("MNIST_FOLDER"):
        return Path(argv[0] if argv else os.environ["MNIST_FOLDER"])
    found = find_dataset("mnist")
    if found is not None:
        return found
    print(f"note: no MNIST in {cache_dir()} (set MICROGRAD_DATA, MNIST_FOLDER or pass a "
          f"folder); using the 3,000 digits shipped inside micrograd", file=sys.stderr)
    return DIGITS


def read_digits(folder):
    """(images uint8 (N, 28, 28), labels int64) of the t10k files in ``folder``.

    Raises DataError with one line saying where the files are expected and how
    to provide them when they are missing, or naming a damaged file.
    """
    folder = Path(folder)
    missing = [s for s in FILES["test"] if find_idx_file(folder, s) is None]
    if missing:
        where = "does not exist" if not folder.is_dir() else "lacks " + ", ".join(
            m + "[.gz]" for m in missing)
        raise DataError(
            f"MNIST folder {folder} {where}: expected t10k-images-idx3-ubyte.gz and "
            f"t10k-labels-idx1-ubyte.gz (gzip or raw) there. Pass a folder holding them "
            f"(python examples/mnist_cnn.py FOLDER or MNIST_FOLDER=FOLDER), or place them in "
            f"{cache_dir() / 'mnist'} or {cache_dir() / 'mnist-t10k'} (micrograd's data folder, "
            f"set by MICROGRAD_DATA)"
        )
    return read_split(folder, "test", "mnist")


def build_model():
    # mn.fuse computes each Conv2d, ReLU, AvgPool2d run as one node, and Flatten with
    # the Linear: same values and parameter names, fewer passes over memory.
    return mn.fuse(mn.Sequential([
        mn.Conv2d(1, 32, 3), mn.ReLU(), mn.AvgPool2d(2),
        mn.Conv2d(32, 64, 3), mn.ReLU(), mn.AvgPool2d(2),
        mn.Flatten(), mn.Linear(64 * 5 * 5, 10),
    ]))


def normalise(images):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1]."""
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]


def train(images, labels, test_images, test_labels, epochs=2, batch_size=64, lr=1e-3, seed=0,
          log=print):
    mt.manual_seed(seed)
    model = build_model()
    loss_fn = mt.CrossEntropyLoss()
    optimizer = mt.Adam(model.parameters(), lr=lr)
    loader = mt.DataLoader(mt.TensorDataset(images, labels), batch_size=batch_size,
                           shuffle=True, seed=seed)

    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(targets)
        seconds = time.perf_counter() - start
        log(f"epoch {epoch + 1}: loss {total / len(labels):.4f}, "
            f"{len(labels) / seconds:.0f} samples/s")

    model.eval()
    correct = 0
    test_loader = mt.DataLoader(mt.TensorDataset(test_images, test_labels), batch_size=500)
    with mt.no_grad():
        for inputs, targets in test_loader:
            outputs = model(inputs)
            correct += (mt.argmax(outputs, 1) == targets).float().sum().item()
    return correct / len(test_labels)


def main(folder=None):
    images, labels = read_digits(data_folder() if folder is None else folder)
    images = normalise(images)
    n = len(labels) * 4 // 5  # 8,000 of the 10,000 test digits
    accuracy = train(images[:n], labels[:n], images[n:], labels[n:])
    print(f"test accuracy on {len(labels) - n:,} held-out digits: {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    try:
        main(data_folder(sys.argv[1:]))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

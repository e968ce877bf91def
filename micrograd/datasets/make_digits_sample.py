"""Make the shipped digits sample from the MNIST test files.

    python -m micrograd.datasets.make_digits_sample MNIST_T10K_FOLDER [PER_CLASS]

reads ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]`` from
the folder, keeps the first PER_CLASS (default 300) digits of each class in
file order (in that order, so the sample is the same on every machine), and
writes them as gzip IDX files with a zero timestamp (byte-identical output)
into ``micrograd/datasets/digits/``. Run once by a maintainer; micrograd only
reads the result.
"""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np

from micrograd.data.images import read_split

OUT = Path(__file__).resolve().parent / "digits"


def select(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` items of each class, in file order."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class]
                           for c in range(int(labels.max()) + 1)])
    return np.sort(keep)


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000 08 NDIM, big-endian sizes, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                    *array.shape)
    return header + array.tobytes()


def write_gz(path: Path, data: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                compresslevel=9, mtime=0) as gz:
        gz.write(data)


def main(argv) -> None:
    folder = Path(argv[0])
    per_class = int(argv[1]) if len(argv) > 1 else 300
    images, labels = read_split(folder, "test", "mnist")
    keep = select(labels, per_class)
    OUT.mkdir(exist_ok=True)
    write_gz(OUT / "t10k-images-idx3-ubyte.gz", idx_bytes(images[keep]))
    write_gz(OUT / "t10k-labels-idx1-ubyte.gz", idx_bytes(labels[keep]))
    print(f"wrote {len(keep):,} digits ({np.bincount(labels[keep]).tolist()} per class) "
          f"to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

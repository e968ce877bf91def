"""MNIST-style image datasets from IDX folders, and their image pipeline.

A folder holds the standard files (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
``t10k-labels-idx1-ubyte[.gz]``), as torchvision's ``MNIST/raw`` and Debian's
``dataset-fashion-mnist`` lay them out. Pixels are scaled to [0, 1], then
normalised with a configurable mean and std.

Where the folder is (``image_folder``): the 3,000 MNIST digits shipped inside
micrograd (``micrograd/datasets``) for ``sample: true``; ``data.root`` when the
config names one; else the data folder (``download.py``: $MICROGRAD_DATA or the
user's cache), downloaded over HTTPS when missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import IDXError, read_idx
from .kinds import DataKind, register_kind
from .pipeline import Pipeline, PipelineError, Splits
from .splits import split_indices

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}


class ImagePipeline(Pipeline):
    """Grey images in, (N, 1, H, W) float32 normalised as in training out.

    ``transform`` takes one image (H, W) or a batch (N, H, W) / (N, 1, H, W);
    uint8 pixels (or any values above 1) are read as 0..255 and scaled to [0, 1]
    first, then ``(x - mean) / std``.

    Example::

        >>> p = ImagePipeline((1, 28, 28), mean=0.5, std=0.5, class_names=["0", "1"])
        >>> p.transform(np.zeros((28, 28), np.uint8)).shape
        (1, 1, 28, 28)
    """

    kind = "image"

    def __init__(self, input_shape, mean=0.0, std=1.0, class_names=None):
        self.task = "classification"
        self.input_shape = tuple(int(n) for n in input_shape)
        self.mean, self.std = float(mean), float(std)
        self.class_names = class_names

    def transform(self, raw) -> np.ndarray:
        x = np.asarray(raw)
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise PipelineError(f"expected an image array of numbers, got dtype {x.dtype}")
        c, h, w = self.input_shape
        if x.shape[-2:] != (h, w) or x.ndim not in (2, 3, 4) or (x.ndim == 4 and x.shape[1] != c):
            raise PipelineError(
                f"expected an image of {h}x{w} pixels ({c} channel(s)): an array of shape "
                f"({h}, {w}), (N, {h}, {w}) or (N, {c}, {h}, {w}); got shape {x.shape}"
            )
        if x.dtype == np.uint8:
            # One table lookup per pixel: 60,000 images normalise in a fraction of a second.
            lut = ((np.arange(256) / 255.0 - self.mean) / self.std).astype(np.float32)
            return lut[x.reshape(-1, c, h, w)]
        x = x.reshape(-1, c, h, w).astype(np.float32)
        if x.size and x.max() > 1.0:
            x = x / 255.0
        return ((x - self.mean) / self.std).astype(np.float32)

    def get_state(self):
        return {"input_shape": list(self.input_shape), "mean": self.mean, "std": self.std,
                "class_names": self.class_names}, {}

    @classmethod
    def from_state(cls, meta, arrays):
        return cls(meta["input_shape"], meta["mean"], meta["std"], meta.get("class_names"))


@register_kind
class ImageKind(DataKind):
    """Grey images from IDX folders: the config's ``type: mnist`` and
    ``type: fashion_mnist`` (``sample: true``: the digits shipped inside micrograd).

    ``predict --input`` takes the path of a ``.npy`` array or a PNG/JPEG image
    (``load_image``), ``predict --file`` one path per line; ``eval --data``
    reads the t10k files of an IDX folder.
    """

    name = "image"
    pipeline_class = ImagePipeline

    @classmethod
    def from_config(cls, section) -> Splits:
        return load_idx_images(image_folder(section), name=section.type, mean=section.mean,
                               std=section.std, splits=section.splits.fractions(),
                               use_test_files=section.use_test_files, seed=section.seed,
                               download=bool(section.root is not None and section.download),
                               limit=section.limit)

    def expects(self) -> str:
        _, h, w = self.pipeline.input_shape
        return f"a .npy array or PNG/JPEG image of {h}x{w} pixels"

    def parse(self, text: str) -> np.ndarray:
        return load_image(text, self.pipeline.input_shape)

    def model_input(self, raw_inputs) -> np.ndarray:
        return self.pipeline.transform(np.stack([np.asarray(r) for r in raw_inputs]))

    def read_labelled(self, path):
        images, labels = read_split(path, "test", getattr(self.section, "type", "mnist"))
        return self.pipeline.transform(images), labels


def load_image(path_text: str, input_shape) -> np.ndarray:
    """An image input: a .npy array, or PNG/JPEG when Pillow is installed."""
    path = Path(path_text)
    if not path.is_file():
        raise PipelineError(f"image input {path} does not exist (expected a .npy array or a "
                            f"PNG/JPEG file)")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise PipelineError(f"{path}: not a plain numeric .npy array ({exc})") from None
        if array.dtype.kind in "fc":
            bad = ~np.isfinite(array)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise PipelineError(f"{path}: {int(bad.sum())} pixel value(s) are not finite "
                                    f"numbers (NaN or infinite; the first at index {where}); "
                                    f"expected an image of finite pixel values")
        return array
    try:
        from PIL import Image
    except ImportError:
        raise PipelineError(
            f"{path}: reading {path.suffix or 'image'} files needs Pillow "
            f"(pip install 'micrograd-trainer[vision]'); a .npy array works without it"
        ) from None
    try:
        img = Image.open(path).convert("L")
    except OSError as exc:
        raise PipelineError(f"{path}: not a readable image ({exc})") from None
    _, h, w = input_shape
    if img.size != (w, h):
        raise PipelineError(f"{path}: image is {img.size[0]}x{img.size[1]} pixels, the model "
                            f"expects {w}x{h}")
    return np.asarray(img, dtype=np.uint8)


def find_idx_file(root: Path, stem: str) -> Path | None:
    """The file ``stem`` or ``stem.gz`` under root (or torchvision's raw/ subfolders)."""
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def image_folder(section) -> Path:
    """The IDX folder a config's data section reads: the shipped digits for ``sample:
    true``; its root; else the data folder, fetching the files unless ``download: false``."""
    if section.sample:
        from micrograd.datasets import DIGITS
        return DIGITS
    if section.root is not None:
        return Path(section.root)
    from .download import dataset_folder
    return dataset_folder(section.type, download=section.download is not False)


class IDXFilesMissing(IDXError, FileNotFoundError):
    """The IDX folder or some of its files are missing; the message says what to place where.

    A ``DataError`` (the CLI exits 1) and, as before, a ``FileNotFoundError``.
    """


DISPLAY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _missing(root: Path, name: str, split: str, missing, download: bool) -> IDXFilesMissing:
    files = ", ".join(m + "[.gz]" for m in missing)
    if not root.exists():
        where = f"{name} data folder {root} does not exist (expected the IDX files {files} in it)"
    elif not root.is_dir():
        where = (f"{name} data folder {root} is a file, not a folder (expected the IDX files "
                 f"{files} in it)")
    else:
        where = f"{name} {split} files not found in {root}: missing {files}"
    return IDXFilesMissing(
        f"{where}. Place the IDX files (gzip or raw) in that folder"
        + (", set download: true to fetch them over HTTPS, or leave data.root out to use "
           "the data folder ($MICROGRAD_DATA or your cache)." if not download and
           name in ("mnist", "fashion_mnist") else ".")
    )


def _value(v) -> str:
    return str(int(v)) if float(v).is_integer() else f"{float(v):g}"


def check_labels(labels: np.ndarray, path: Path, name: str = "mnist") -> np.ndarray:
    """Labels as int64 after checking they are whole numbers and, for MNIST and
    Fashion-MNIST, class indices 0..9; a DataError names the file, the first bad
    label and its item index."""
    path = Path(path)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            i = int(np.argmax(bad))
            raise IDXError(f"label {_value(labels[i]) if np.isfinite(labels[i]) else labels[i]} "
                           f"at item {i} of {path}: labels must be whole numbers "
                           f"(class indices), this one is not an integer")
    labels = labels.astype(np.int64)
    classes = CLASS_NAMES.get(name)
    high = None if classes is None else len(classes) - 1
    bad = (labels < 0) if high is None else (labels < 0) | (labels > high)
    if bad.any():
        i = int(np.argmax(bad))
        rule = ("labels are class indices 0, 1, 2, ..." if high is None else
                f"{DISPLAY_NAMES.get(name, name)} labels are 0..{high}")
        raise IDXError(f"label {labels[i]} at item {i} of {path}: {rule}")
    return labels


def check_images(images: np.ndarray, path: Path) -> np.ndarray:
    """Float images must hold finite pixels; a DataError names the file and the first bad item."""
    if images.dtype.kind == "f" and images.size:
        finite = np.isfinite(images)
        if not finite.all():
            i = int(np.argmin(finite.reshape(len(images), -1).all(axis=1)))
            r, c = (int(v) for v in np.argwhere(~finite[i])[0])
            what = "NaN" if np.isnan(images[i, r, c]) else "infinite"
            raise IDXError(f"{path}: item {i} has a {what} pixel (row {r}, column {c}); image "
                           f"pixels must be finite numbers")
    return images


def read_split(root, split="train", name="mnist", download=False):
    """(images (N, H, W) as stored, labels int64 (N,)) of one split of an IDX folder.

    Raises ``IDXFilesMissing`` (a ``DataError`` and ``FileNotFoundError``) when
    the folder or a file is missing, and ``IDXError`` naming the file when a
    file is damaged, image and label counts differ, a float image holds NaN or
    infinity, or a label is not a class index (0..9 for MNIST and Fashion-MNIST).
    """
    root = Path(root)
    stems = FILES[split]
    paths = [find_idx_file(root, s) for s in stems]
    if None in paths and download:
        from .download import fetch_files
        fetch_files(name, root, [s for s, p in zip(stems, paths) if p is None])
        paths = [find_idx_file(root, s) for s in stems]
    if None in paths:
        raise _missing(root, name, split, [s for s, p in zip(stems, paths) if p is None], download)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3:
        raise IDXError(f"{paths[0]}: expected images of shape (N, H, W), got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise IDXError(
            f"{paths[1]}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{len(images)} images in {paths[0].name}"
        )
    if not len(images):
        raise IDXError(f"{paths[0]}: holds no images (expected at least one)")
    return check_images(images, paths[0]), check_labels(labels, paths[1], name)


def load_idx_images(root, *, name="mnist", mean=0.5, std=0.5, splits=(0.9, 0.1, 0.0),
                    use_test_files=True, seed=0, download=False, limit=None) -> Splits:
    """An IDX image folder as train/validation/test arrays.

    The train files are split into train and validation by ``splits`` (stratified,
    seeded); the t10k files are the test split when ``use_test_files`` is set.
    A folder with only the t10k files (like ``shared/data/mnist-t10k``) is read
    as the whole dataset and split three ways by ``splits`` instead.
    ``limit`` keeps the first N samples of each file (quick runs).
    """
    root = Path(root)
    has_train = all(find_idx_file(root, s) for s in FILES["train"])
    class_names = CLASS_NAMES.get(name)
    if has_train or download:
        x, y = read_split(root, "train", name, download)
        if limit:
            x, y = x[:limit], y[:limit]
        train, val, test = _three(split_indices(len(x), splits, seed, stratify=y))
        parts = [(x[train], y[train]), (x[val], y[val]), (x[test], y[test])]
        if use_test_files:
            xt, yt = read_split(root, "test", name, download)
            if limit:
                xt, yt = xt[:limit], yt[:limit]
            parts[2] = (xt, yt)
    else:
        x, y = read_split(root, "test", name, download)
        if limit:
            x, y = x[:limit], y[:limit]
        idx = _three(split_indices(len(x), splits, seed, stratify=y))
        parts = [(x[i], y[i]) for i in idx]
    h, w = parts[0][0].shape[1:]
    if class_names is None or len(class_names) <= int(y.max()):
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    pipeline = ImagePipeline((1, h, w), mean, std, class_names)
    xs = [pipeline.transform(p[0]) if len(p[0]) else np.empty((0, 1, h, w), np.float32)
          for p in parts]
    return Splits(xs[0], parts[0][1], xs[1], parts[1][1], xs[2], parts[2][1], pipeline,
                  info={"root": str(root), "name": name})


def _three(parts):
    parts = list(parts)
    while len(parts) < 3:
        parts.append(np.empty(0, dtype=np.int64))
    return parts[:3]

"""Data loading: datasets and the DataLoader that batches them into Tensors.

``Dataset`` is the interface (``__len__``, ``__getitem__``, and optionally
``__getitems__`` for vectorised batches); ``TensorDataset``, ``Subset`` and
``random_split`` build datasets from arrays and from each other; ``DataLoader``
shuffles and batches any of them.

Datasets on disk and generated ones are read by data kinds (``kinds.py``: the
registry, and the table from a config's ``data.type`` to a kind), one module
per kind holding its pipeline, its loader and its ``DataKind``: ``tabular.py``
(CSV tables), ``text.py`` (labelled sentences), ``images.py`` (IDX image
folders), ``array.py`` (numeric vectors; ``synthetic.py`` generates them).
"""
from .dataloader import DataLoader, default_collate  # noqa: F401
from .dataset import Dataset, Subset, TensorDataset, random_split  # noqa: F401

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]

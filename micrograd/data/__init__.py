"""Data loading: datasets and the DataLoader that batches them into Tensors.

``Dataset`` is the interface (``__len__``, ``__getitem__``, and optionally
``__getitems__`` for vectorised batches); ``TensorDataset``, ``Subset`` and
``random_split`` build datasets from arrays and from each other; ``DataLoader``
shuffles and batches any of them. Readers for datasets on disk sit beside
these, one module per format.
"""
from .dataloader import DataLoader, default_collate  # noqa: F401
from .dataset import Dataset, Subset, TensorDataset, random_split  # noqa: F401

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]

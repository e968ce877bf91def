"""Lookup tables: ``Embedding`` (one row per index) and ``EmbeddingBag`` (a pooled row per bag)."""
from __future__ import annotations

import numpy as np

from micrograd.engine.tensor import DEFAULT_DTYPE

from . import functional as F
from . import init
from .module import Module, Parameter
from .registry import LayerPlan, LayerShapeError, fmt, register_layer


def _table(num_embeddings, embedding_dim, padding_idx, weight, dtype):
    """The checked (num_embeddings, embedding_dim) weight, and padding_idx made non-negative."""
    for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    padding_idx = F._padding_index(padding_idx, num_embeddings)
    if weight is None:
        return Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype or DEFAULT_DTYPE)), \
            padding_idx
    weight = weight if isinstance(weight, Parameter) else Parameter(weight)
    if weight.shape != (num_embeddings, embedding_dim):
        raise ValueError(f"Shape of weight does not match num_embeddings and embedding_dim: "
                         f"{weight.shape} vs {(num_embeddings, embedding_dim)}")
    return weight, padding_idx


def _vocabulary(num_embeddings):
    if num_embeddings is None:
        raise LayerShapeError(
            "num_embeddings (the number of token ids) is needed: give it, or use data that "
            "gives token ids (a text dataset with vectorizer: ids), which implies it")
    return num_embeddings


@register_layer("embedding")
class Embedding(Module):
    r"""A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by index.

    Args:
        num_embeddings: rows in the table (the vocabulary size).
        embedding_dim: size of each vector.
        padding_idx: a row that starts at zero and gets no gradient, so it stays a
            constant "nothing here" vector (negative counts from the end).
        max_norm: rescale each looked-up row whose ``norm_type``-norm exceeds this
            down to it, in place, before the lookup.
        norm_type: the p of that p-norm (default 2).
        scale_grad_by_freq: divide each row's gradient by how often its index
            occurs in the batch.
        dtype: the table's dtype, float32 by default.

    Shape:
        - Input: integer indices (int64 or int32) of any shape ``(*)``, each in
          ``[0, num_embeddings)``. A float input is an error, not a cast.
        - Output: ``(*, embedding_dim)``, of the table's dtype.

    Attributes:
        weight: ``(num_embeddings, embedding_dim)``, initialised from N(0, 1) as in
            PyTorch, with row ``padding_idx`` zeroed.

    Examples::

        >>> emb = mn.Embedding(10, 3, padding_idx=0)
        >>> emb(mt.Tensor([[1, 2, 0], [4, 0, 0]], dtype=np.int64)).shape
        (2, 3, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 _weight=None, _freeze: bool = False, dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight, self.padding_idx = _table(num_embeddings, embedding_dim, padding_idx,
                                               _weight, dtype)
        self.weight.requires_grad = not _freeze
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        if _weight is None:
            self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, embedding_dim: int, num_embeddings=None, padding_idx=None,
             max_norm=None) -> LayerPlan:
        """Token ids of any shape -> that shape plus ``embedding_dim``."""
        n = _vocabulary(num_embeddings)
        return LayerPlan((*in_shape, embedding_dim), n * embedding_dim,
                         lambda: cls(n, embedding_dim, padding_idx=padding_idx, max_norm=max_norm))

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False):
        """An Embedding whose table is ``embeddings`` (2-D, shared, not copied);
        ``freeze`` keeps it out of training (``weight.requires_grad = False``)."""
        data = getattr(embeddings, "data", embeddings)
        if np.ndim(data) != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, dim = np.shape(data)
        return cls(rows, dim, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm,
                           self.norm_type, self.scale_grad_by_freq)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s


@register_layer("embedding_bag")
class EmbeddingBag(Module):
    r"""One vector per bag of indices: the sum, mean or max of the bag's rows of a table.

    An :class:`Embedding` followed by a reduction over each bag, in one node and
    without the (N, L, embedding_dim) intermediate: the usual way to turn a
    padded batch of token ids into fixed-size features.

    Args:
        num_embeddings: rows in the table (the vocabulary size).
        embedding_dim: size of each vector.
        max_norm, norm_type: as in :class:`Embedding`.
        mode: ``"mean"`` (default), ``"sum"`` or ``"max"``.
        padding_idx: entries equal to it are left out of their bag (a mean divides
            by the bag's other entries; a bag of only padding gives zeros); its row
            starts at zero and gets no gradient.
        dtype: the table's dtype, float32 by default.

    The options after ``embedding_dim`` are keyword-only.

    Shape:
        - Input: integer indices ``(N, L)``, one bag per row; or 1-D indices with
          ``offsets`` ``(N,)``, the start of each bag (``offsets[0] == 0``).
        - Output: ``(N, embedding_dim)``.

    Attributes:
        weight: ``(num_embeddings, embedding_dim)``, initialised from N(0, 1), with
            row ``padding_idx`` zeroed.

    Examples::

        >>> bag = mn.EmbeddingBag(10, 3, mode="mean", padding_idx=0)
        >>> ids = mt.Tensor([[1, 2, 0, 0], [4, 5, 6, 0]], dtype=np.int64)
        >>> bag(ids).shape
        (2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, max_norm=None,
                 norm_type: float = 2.0, mode: str = "mean", padding_idx=None,
                 _weight=None, dtype=None):
        super().__init__()
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight, self.padding_idx = _table(num_embeddings, embedding_dim, padding_idx,
                                               _weight, dtype)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.mode = mode
        if _weight is None:
            self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, embedding_dim: int, num_embeddings=None, mode: str = "mean",
             padding_idx=None, max_norm=None) -> LayerPlan:
        """(length,) token ids per sample -> one ``embedding_dim`` vector."""
        if len(in_shape) != 1:
            raise LayerShapeError(f"an embedding_bag layer takes (length,) token ids per "
                                  f"sample, but the input arriving there has shape "
                                  f"{fmt(in_shape)}")
        n = _vocabulary(num_embeddings)
        return LayerPlan((embedding_dim,), n * embedding_dim,
                         lambda: cls(n, embedding_dim, mode=mode, padding_idx=padding_idx,
                                     max_norm=max_norm))

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input, offsets=None):
        return F.embedding_bag(input, self.weight, offsets, max_norm=self.max_norm,
                               norm_type=self.norm_type, mode=self.mode,
                               padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        s += f", mode='{self.mode}'"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s

"""Batch normalisation layers, over the engine's fused BatchNorm primitive."""
from __future__ import annotations

import numpy as np

from micrograd.engine.tensor import DEFAULT_DTYPE, Tensor

from . import functional as F
from . import init
from .module import Module, Parameter
from .registry import LayerPlan, check_size, flat_features, image_shape, register_layer


class _BatchNorm(Module):
    _expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = dtype or DEFAULT_DTYPE
        if affine:
            self.weight = Parameter(np.empty(num_features, dtype=dtype))
            self.bias = Parameter(np.empty(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features), dtype=dtype))
            self.register_buffer("running_var", Tensor(np.ones(num_features), dtype=dtype))
            self.register_buffer("num_batches_tracked", Tensor(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, num_features=None, eps: float = 1e-5, momentum=0.1,
             affine: bool = True, track_running_stats: bool = True) -> LayerPlan:
        """Shape kept; ``num_features`` inferred from the channels (see ``registry.py``).
        Holds weight and bias, and running mean, variance and batch count."""
        c = check_size("num_features", num_features, cls._channels(in_shape))
        values = (2 * c if affine else 0) + (2 * c + 1 if track_running_stats else 0)
        return LayerPlan(tuple(in_shape), values, lambda: cls(
            c, eps=eps, momentum=momentum, affine=affine,
            track_running_stats=track_running_stats))

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        x = F._tensor(input)
        return F.batch_norm(x, *self._normalisation_args(x))

    def _normalisation_args(self, x):
        """Check x and count the batch; F.batch_norm's arguments after x: (running_mean,
        running_var, weight, bias, training, momentum, eps) as this layer normalises."""
        if x.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"expected {dims} input (got {x.ndim}D input)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got an input with "
                             f"{x.shape[1]} channels, shape {x.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                # momentum=None: a cumulative average of all batches seen, as PyTorch.
                momentum = 1.0 / float(self.num_batches_tracked.item())
        # Without running statistics there is nothing else to normalise with, so
        # batch statistics are used in evaluation too (PyTorch does the same).
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return (self.running_mean if track else None, self.running_var if track else None,
                self.weight, self.bias, use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


@register_layer("batchnorm1d")
class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation over a ``(N, C)`` or ``(N, C, L)`` input:

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    per channel C. In training, E and Var are the batch's (over N, and L),
    with the biased variance; ``running_mean`` and ``running_var`` are updated
    as ``(1 - momentum) * running + momentum * batch_stat`` using the unbiased
    variance, and ``num_batches_tracked`` counts the batches. In evaluation
    the running statistics are used. All as PyTorch.

    Args:
        num_features: C.
        eps: added to the variance for stability (default 1e-5).
        momentum: weight of the new batch in the running statistics (default
            0.1); None gives a cumulative average.
        affine: learn gamma (``weight``, init 1) and beta (``bias``, init 0).
        track_running_stats: keep running statistics (buffers in the state
            dict); if False, batch statistics are used in evaluation too.
        dtype: dtype of parameters and running statistics, float32 by default.

    Shape:
        - Input: ``(N, C)`` or ``(N, C, L)``.
        - Output: same shape as the input.

    Examples::

        >>> m = mn.BatchNorm1d(100)
        >>> m(mt.randn(20, 100)).shape
        (20, 100)
    """

    _expected_dims = (2, 3)

    @staticmethod
    def _channels(in_shape):
        # A config's (C,) sample; the layer itself also takes (C, L).
        return flat_features(in_shape, "a batchnorm1d layer")


@register_layer("batchnorm2d")
class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation of each channel of an ``(N, C, H, W)`` input, the
    statistics taken over N, H and W. Otherwise as :class:`BatchNorm1d`:

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats, dtype: as BatchNorm1d.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: same shape as the input.

    Examples::

        >>> m = mn.BatchNorm2d(16)
        >>> m(mt.randn(8, 16, 5, 5)).shape
        (8, 16, 5, 5)
    """

    _expected_dims = (4,)

    @staticmethod
    def _channels(in_shape):
        return image_shape(in_shape)[0]

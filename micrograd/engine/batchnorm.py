"""Fused batch normalisation (``torch.nn.functional.batch_norm``).

One graph node rather than a composition of about ten (mean, sub, var, sqrt,
div, mul, add and their broadcasts): backward then uses the closed form of the
gradient through the batch statistics, which is faster and needs only xhat and
1/std saved.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel (axis 1).

    In training the statistics are the batch's own over every axis but 1
    (biased variance), and ``running_mean``/``running_var`` arrays, when given,
    are updated in place with ``momentum`` (unbiased variance), as PyTorch's
    kernel does. Otherwise the running statistics normalise.
    """

    def forward(self, x, weight, bias, running_mean=None, running_var=None,
                training=False, momentum=0.1, eps=1e-5):
        if x.ndim < 2:
            raise ValueError(f"batch_norm expects input (N, C, ...), got shape {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if training:
            count = x.size // x.shape[1]
            if count <= 1:
                raise ValueError("Expected more than 1 value per channel when training, "
                                 f"got input size {x.shape}")
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += momentum * var * (count / (count - 1))
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
            mean, var = running_mean, running_var
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False).reshape(shape)
        xhat = (x - mean.reshape(shape).astype(x.dtype, copy=False)) * invstd
        self.xhat, self.invstd, self.weight = xhat, invstd, weight.reshape(shape)
        self.axes, self.training = axes, training
        return xhat * self.weight + bias.reshape(shape)

    def backward(self, g):
        xhat, axes = self.xhat, self.axes
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gxhat = g * self.weight
            if self.training:
                # The batch mean and variance depend on x: their gradient removes
                # the components of gxhat along 1 and along xhat.
                gxhat = (gxhat - gxhat.mean(axis=axes, keepdims=True)
                         - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
            gx = gxhat * self.invstd
        if self.needs_input_grad[1]:
            gw = (g * xhat).sum(axis=axes)
        if self.needs_input_grad[2]:
            gb = g.sum(axis=axes)
        return gx, gw, gb

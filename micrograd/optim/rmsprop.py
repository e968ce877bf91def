"""RMSprop: gradients scaled by a running root mean square, optionally centred."""
from __future__ import annotations

import numpy as np

from micrograd import kernels

from .optimizer import Optimizer, _check_lr, _check_non_negative

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), as ``torch.optim.RMSprop``.

    For each parameter :math:`\theta` with gradient :math:`g`:

    .. math::
        g &\leftarrow g + \lambda \theta \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) g^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g \quad \text{(centered only)} \\
        d &= \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) or } \sqrt{v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g / d, \quad \theta \leftarrow \theta - \gamma b_t
            \quad \text{(momentum } \mu > 0\text{)} \\
        \theta &\leftarrow \theta - \gamma g / d \quad \text{(otherwise)}

    Args:
        params: Tensors to optimise, or parameter-group dicts.
        lr: learning rate :math:`\gamma` (default 1e-2).
        alpha: smoothing constant :math:`\alpha` (default 0.99).
        eps: :math:`\epsilon`, added to the denominator (default 1e-8).
        weight_decay: L2 penalty :math:`\lambda` (default 0).
        momentum: momentum factor :math:`\mu` (default 0).
        centered: divide by an estimate of the gradient's variance rather than
            its second moment.

    Example::

        >>> optimizer = mt.RMSprop(model.parameters(), lr=1e-2, momentum=0.9)
        >>> optimizer.zero_grad()
        >>> loss_fn(model(x), y).backward()
        >>> optimizer.step()
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_lr(group["lr"])
        _check_non_negative(group["eps"], "epsilon value")
        _check_non_negative(group["momentum"], "momentum value")
        _check_non_negative(group["weight_decay"], "weight_decay value")
        _check_non_negative(group["alpha"], "alpha value")

    def _update(self, param, grad, state, group):
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
        state["step"] += 1

        loops = (None if group["centered"] or momentum != 0
                 else kernels.for_arrays(param, grad, state["square_avg"], same_bits=True))
        if loops is not None:
            # One compiled loop, the same operations as the NumPy code below.
            cast = param.dtype.type
            loops.rmsprop(param, grad, state["square_avg"], cast(alpha), cast(1 - alpha),
                          cast(group["lr"]), cast(group["eps"]), cast(group["weight_decay"]))
            return

        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param

        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state.setdefault("grad_avg", np.zeros_like(param))
            grad_avg += (1 - alpha) * (grad - grad_avg)
            denom = np.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denom = np.sqrt(square_avg) + group["eps"]

        if momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(param))
            buf *= momentum
            buf += grad / denom
            param -= group["lr"] * buf
        else:
            param -= group["lr"] * grad / denom

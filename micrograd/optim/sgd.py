"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

import numpy as np

from micrograd import kernels

from .optimizer import Optimizer, _check_lr, _check_non_negative

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, as ``torch.optim.SGD``.

    For each parameter :math:`\theta` with gradient :math:`g` at step t:

    .. math::
        g &\leftarrow g + \lambda \theta \\
        b_t &= \mu b_{t-1} + (1 - \tau) g \quad (b_1 = g) \\
        g &\leftarrow g + \mu b_t \text{ (Nesterov) or } b_t \text{ (momentum)} \\
        \theta &\leftarrow \theta - \gamma g

    where :math:`\gamma` is ``lr``, :math:`\mu` ``momentum``, :math:`\tau`
    ``dampening`` and :math:`\lambda` ``weight_decay``. With ``momentum=0``
    this is plain :math:`\theta \leftarrow \theta - \gamma g`.

    Args:
        params: Tensors to optimise, or parameter-group dicts.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).

    Example::

        >>> optimizer = mt.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> optimizer.zero_grad()
        >>> loss_fn(model(x), y).backward()
        >>> optimizer.step()
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_lr(group["lr"])
        _check_non_negative(group["momentum"], "momentum value")
        _check_non_negative(group["weight_decay"], "weight_decay value")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, param, grad, state, group):
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        loops = kernels.for_arrays(param, grad, param if buf is None else buf, same_bits=True)
        if loops is not None:
            # One compiled loop, the same operations as the NumPy code below.
            first = momentum != 0 and buf is None
            if first:
                buf = state["momentum_buffer"] = np.empty_like(param)
            cast = param.dtype.type
            loops.sgd(param, grad, param if buf is None else buf, cast(group["lr"]),
                      cast(group["weight_decay"]), cast(momentum),
                      cast(1 - group["dampening"]), group["nesterov"], first)
            return
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param -= group["lr"] * grad

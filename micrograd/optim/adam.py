"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

import math

import numpy as np

from micrograd import kernels

from .optimizer import Optimizer, _check_lr, _check_non_negative

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    For each parameter :math:`\theta` with gradient :math:`g` at step t:

    .. math::
        g &\leftarrow g + \lambda \theta \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (amsgrad) or } v_t \\
        \theta &\leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Args:
        params: Tensors to optimise, or parameter-group dicts.
        lr: learning rate :math:`\gamma` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)`, decay rates of the moment estimates.
        eps: :math:`\epsilon`, added to the denominator (default 1e-8).
        weight_decay: L2 penalty :math:`\lambda`, added to the gradient (default 0).
        amsgrad: use the running maximum of :math:`v_t` (Reddi et al., 2018).

    Example::

        >>> optimizer = mt.Adam(model.parameters(), lr=1e-3)
        >>> optimizer.zero_grad()
        >>> loss_fn(model(x), y).backward()
        >>> optimizer.step()
    """

    #: AdamW decays the weights directly instead of adding lambda theta to g.
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_lr(group["lr"])
        _check_non_negative(group["eps"], "epsilon value")
        beta1, beta2 = group["betas"]
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        _check_non_negative(group["weight_decay"], "weight_decay value")

    def _update(self, param, grad, state, group):
        lr, weight_decay = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        step = state["step"]

        if weight_decay != 0:
            if self.decoupled_weight_decay:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param

        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        arrays = [param, grad, state["exp_avg"], state["exp_avg_sq"]]
        if group["amsgrad"]:
            arrays.append(state["max_exp_avg_sq"])
        coefficients = _Coefficients(lr, beta1, beta2, group["eps"], step)
        loops = kernels.for_arrays(*arrays, same_bits=True)
        if loops is not None:
            # One compiled loop, the same operations as _adam_pass.
            c, cast = coefficients, param.dtype.type
            scalars = (cast(c.one_minus_beta1), cast(c.beta2), cast(c.sqrt_one_minus_beta2),
                       cast(c.eps), cast(c.step_size))
            amsgrad = group["amsgrad"]
            loops.adam(*arrays[:4], arrays[4] if amsgrad else param, amsgrad, *scalars)
        elif all(a.flags.c_contiguous for a in arrays) and param.size > _CHUNK:
            # A chunk at a time: the 12 passes then run on data that stays in
            # the core's cache, instead of fetching six parameter-sized arrays
            # from further away 12 times (a 784x256 float32 weight is 800 kB).
            flat = [a.reshape(-1) for a in arrays]  # views: all are contiguous
            tmp, denom = self._workspace(flat[0][:_CHUNK], 2)
            for start in range(0, param.size, _CHUNK):
                chunk = [a[start:start + _CHUNK] for a in flat]
                n = chunk[0].size
                _adam_pass(*chunk[:4], chunk[4] if group["amsgrad"] else None,
                           tmp[:n], denom[:n], coefficients)
        else:
            tmp, denom = self._workspace(param, 2)
            _adam_pass(*arrays[:4], arrays[4] if group["amsgrad"] else None, tmp, denom,
                       coefficients)


#: Elements of a parameter updated at a time: pieces whose six working arrays
#: stay in the L2 cache beat whole arrays, and much smaller ones lose to
#: Python's per-call cost (bench/README.md has the measurements).
_CHUNK = 65536


class _Coefficients:
    """The scalars of one Adam step."""

    def __init__(self, lr, beta1, beta2, eps, step):
        sqrt_bias_correction2 = math.sqrt(1 - beta2**step)
        self.one_minus_beta1 = 1 - beta1
        self.beta2 = beta2
        self.sqrt_one_minus_beta2 = math.sqrt(1 - beta2)
        self.eps = eps * sqrt_bias_correction2
        self.step_size = lr * sqrt_bias_correction2 / (1 - beta1**step)


def _adam_pass(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, tmp, denom, c):
    """One Adam update in place, through the scratch arrays ``tmp`` and ``denom``.

    torch.optim.Adam's update, equal up to rounding, rearranged to cost 12 passes
    over the parameter instead of 13 (Adam is about a third of an MLP step):
      m += (1 - beta1) (g - m)               (torch's lerp)
      v = beta2 v + (sqrt(1 - beta2) g)^2
      param -= (lr sqrt(bc2) / bc1) * m / (sqrt(v) + eps sqrt(bc2))
    the last being lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) with sqrt(bc2)
    moved out of the denominator: a scalar, not a pass.
    """
    np.subtract(grad, exp_avg, out=tmp)
    tmp *= c.one_minus_beta1
    exp_avg += tmp
    np.multiply(grad, c.sqrt_one_minus_beta2, out=tmp)
    np.square(tmp, out=tmp)
    exp_avg_sq *= c.beta2
    exp_avg_sq += tmp
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        exp_avg_sq = max_exp_avg_sq
    np.sqrt(exp_avg_sq, out=denom)
    denom += c.eps
    np.divide(exp_avg, denom, out=tmp)
    tmp *= c.step_size
    param -= tmp


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The same update as :class:`Adam`, except that instead of adding
    :math:`\lambda \theta` to the gradient, each step first shrinks the weights:
    :math:`\theta \leftarrow \theta (1 - \gamma \lambda)`. ``weight_decay``
    defaults to 1e-2.

    Example::

        >>> optimizer = mt.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

import math

import numpy as np

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

        # Every step in place through two scratch arrays (no allocation), with
        # torch.optim.Adam's formulas (equal up to rounding); scalings are
        # multiplies, a third of the cost of a pass that divides:
        #   m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
        #   param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        tmp, denom = self._workspace(param, 2)
        exp_avg *= beta1
        np.multiply(grad, 1 - beta1, out=tmp)
        exp_avg += tmp
        exp_avg_sq *= beta2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - beta2
        exp_avg_sq += tmp
        if group["amsgrad"]:
            max_exp_avg_sq = state.setdefault("max_exp_avg_sq", np.zeros_like(param))
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            second_moment = max_exp_avg_sq
        else:
            second_moment = exp_avg_sq

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        np.sqrt(second_moment, out=denom)
        denom *= 1 / math.sqrt(bias_correction2)
        denom += group["eps"]
        np.divide(exp_avg, denom, out=tmp)
        tmp *= lr / bias_correction1
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

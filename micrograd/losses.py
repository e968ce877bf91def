"""Loss functions: ``loss = mt.MSELoss()(prediction, target)``.

Each loss is a small callable object (like a PyTorch ``nn.Module`` with no
parameters) over a functional form (``mse_loss``, ``cross_entropy``, ...), both
built from engine ops, so backward comes for free. ``reduction`` is ``'mean'``
(default), ``'sum'`` or ``'none'`` (one loss per element or per sample).

Losses never broadcast: a prediction and a target must hold the same values in
the same order. Shapes that differ only by size-1 dims, such as a model's
``(N, 1)`` output against ``(N,)`` labels, are the same N values and are
matched; anything else, such as ``(N, 1)`` against ``(N, 3)``, raises a
ValueError naming both shapes (PyTorch would broadcast to ``(N, 3)`` and warn).
"""
from __future__ import annotations

import numpy as np

from micrograd.engine.functions import CrossEntropy
from micrograd.engine.ops import stack
from micrograd.engine.tensor import Tensor

__all__ = [
    "MSELoss",
    "L1Loss",
    "CrossEntropyLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]

_REDUCTIONS = ("mean", "sum", "none")

# torch.nn.BCELoss clamps each log term at -100, so that p = 0 or 1 gives a
# large finite loss rather than inf. Clipping p itself at e^-100 before the log
# gives the same values and, unlike clipping the log, no 0/0 in backward.
_LOG_FLOOR = float(np.exp(-100.0))


# -------------------------------------------------------------------- helpers


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid reduction: {reduction!r} (expected one of {_REDUCTIONS})")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _as_input(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _as_target(target, like: Tensor) -> Tensor:
    """A target as a Tensor of the prediction's dtype, so float32 graphs stay float32.

    A target that itself requires a gradient is kept as it is (MSE between two
    outputs of a model is differentiable in both).
    """
    if isinstance(target, Tensor):
        if target.requires_grad or target.dtype == like.dtype:
            return target
        return Tensor._wrap(target.data.astype(like.dtype))
    return Tensor._wrap(np.asarray(target, dtype=like.dtype))


def _squeezed(shape):
    return tuple(n for n in shape if n != 1)


def _match_shapes(input: Tensor, target: Tensor, loss_name: str) -> Tensor:
    """``target`` in ``input``'s shape when both hold the same values, else ValueError."""
    if input.shape == target.shape:
        return target
    if _squeezed(input.shape) == _squeezed(target.shape):
        return target.reshape(input.shape)
    raise ValueError(
        f"{loss_name}: prediction shape {input.shape} and target shape {target.shape} "
        "do not match; losses do not broadcast (a shape differing only in size-1 dims, "
        "such as (N, 1) against (N,), is accepted)"
    )


def _value_range(x: Tensor):
    if x.data.size == 0:
        return 0.0, 0.0
    return float(np.min(x.data)), float(np.max(x.data))


# --------------------------------------------------------- functional forms


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)^2``, reduced. See :class:`MSELoss`."""
    _check_reduction(reduction)
    input = _as_input(input)
    target = _match_shapes(input, _as_target(target, input), "MSELoss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Absolute error ``|input - target|``, reduced. See :class:`L1Loss`."""
    _check_reduction(reduction)
    input = _as_input(input)
    target = _match_shapes(input, _as_target(target, input), "L1Loss")
    return _reduce((input - target).abs(), reduction)


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """``-w [y log p + (1 - y) log(1 - p)]`` on probabilities. See :class:`BCELoss`."""
    _check_reduction(reduction)
    input = _as_input(input)
    target = _match_shapes(input, _as_target(target, input), "BCELoss")
    low, high = _value_range(input)
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"BCELoss expects probabilities in [0, 1], got values in [{low:g}, {high:g}]; "
            "add a Sigmoid after the last layer, or use BCEWithLogitsLoss on the raw outputs"
        )
    log_p = input.clip(min=_LOG_FLOOR).log()
    log_not_p = (1 - input).clip(min=_LOG_FLOOR).log()
    loss = -(target * log_p + (1 - target) * log_not_p)
    if weight is not None:
        loss = loss * _as_target(weight, input)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None,
                                     reduction: str = "mean") -> Tensor:
    """Sigmoid and binary cross entropy in one stable step. See :class:`BCEWithLogitsLoss`."""
    _check_reduction(reduction)
    input = _as_input(input)
    target = _match_shapes(input, _as_target(target, input), "BCEWithLogitsLoss")
    # log sigmoid(x) and log(1 - sigmoid(x)) are the two entries of
    # log_softmax([0, x]). The fused primitive gives them without overflow and
    # with the exact gradient sigmoid(x) - y everywhere; the textbook
    # max(x, 0) - x y + log(1 + e^-|x|) built from relu and abs gets the
    # gradient wrong at x = 0, where both have a kink (and zero-initialised
    # models start exactly there).
    zeros = Tensor._wrap(np.zeros(input.shape, dtype=input.dtype))
    pair = stack([zeros, input], dim=-1).log_softmax(dim=-1)
    log_p, log_not_p = pair[..., 1], pair[..., 0]
    positive = target * log_p
    if pos_weight is not None:
        positive = positive * _as_target(pos_weight, input)
    loss = -(positive + (1 - target) * log_not_p)
    if weight is not None:
        loss = loss * _as_target(weight, input)
    return _reduce(loss, reduction)


def _check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return float(label_smoothing)


def cross_entropy(input, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross entropy of logits. See :class:`CrossEntropyLoss` for the cases."""
    _check_reduction(reduction)
    label_smoothing = _check_label_smoothing(label_smoothing)
    input = _as_input(input)
    if input.ndim < 2:
        raise ValueError(
            f"CrossEntropyLoss expects logits of shape (N, C), got shape {input.shape}; "
            "for one column of probabilities pass shape (N, 1)"
        )
    if input.shape[1] == 1:
        if weight is not None:
            raise ValueError("CrossEntropyLoss: weight has no meaning for one output column")
        if label_smoothing:
            raise ValueError("CrossEntropyLoss: label_smoothing has no meaning for one output "
                             "column of probabilities; give the model two output columns")
        return _binary_log_loss(input, target, reduction)

    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target_data.shape == input.shape:
        target = _as_target(target, input)
        if label_smoothing:
            # PyTorch's rule for probability targets: mix them with the uniform
            # distribution over the C classes.
            target = target * (1.0 - label_smoothing) + label_smoothing / input.shape[1]
        return _soft_cross_entropy(input, target, weight, reduction)
    return _class_cross_entropy(input, target_data, weight, ignore_index, reduction,
                                label_smoothing)


def _class_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing=0.0):
    """Targets are class indices, shape (N,) for logits (N, C), as ints or whole floats."""
    n_classes = input.shape[1]
    expected = input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        if _squeezed(target.shape) != _squeezed(expected):
            raise ValueError(
                f"CrossEntropyLoss: prediction shape {input.shape} and target shape "
                f"{target.shape} do not match; expected class indices of shape {expected} "
                f"or class probabilities of shape {input.shape}"
            )
        target = target.reshape(expected)
    if not np.issubdtype(target.dtype, np.integer):
        if not np.all(np.isfinite(target) & (target == np.round(target))):
            raise ValueError(
                "CrossEntropyLoss: targets of shape (N,) are class indices and must be whole "
                "numbers; for class probabilities pass a target of the logits' shape (N, C)"
            )
        target = target.astype(np.int64)
    keep = target != ignore_index
    kept = target[keep]
    if kept.size and (kept.min() < 0 or kept.max() >= n_classes):
        bad = kept[(kept < 0) | (kept >= n_classes)][0]
        raise IndexError(f"CrossEntropyLoss: target {bad} is out of bounds for {n_classes} classes")

    # One fused node (log_softmax, pick, weight, reduce); the weights it takes
    # are per sample: the target's class weight, 0 where the target is ignored.
    sample_weight = None
    if weight is not None:
        w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
        sample_weight = w.astype(input.dtype)[np.where(keep, target, 0)] * keep
    elif kept.size != target.size:
        sample_weight = keep.astype(input.dtype)
    if kept.size != target.size:
        target = np.where(keep, target, 0)
    if reduction == "mean" and kept.size == 0:
        # Every target is ignored: the mean is 0/0, NaN as in PyTorch, but no
        # sample contributes, so the gradient must be exactly 0. The fused node
        # would divide its gradient by the zero total as well; take the
        # all-zero-weight sum (gradient 0) and add the NaN as a constant.
        total = CrossEntropy.apply(input, target=target, weight=sample_weight, reduction="sum")
        return total + Tensor._wrap(np.array(np.nan, dtype=input.dtype))
    loss = CrossEntropy.apply(input, target=target, weight=sample_weight, reduction=reduction)
    if not label_smoothing:
        return loss
    return (1.0 - label_smoothing) * loss + _smoothing_term(
        input, weight, keep, sample_weight, reduction) * (label_smoothing / n_classes)


def _smoothing_term(input, weight, keep, sample_weight, reduction):
    """PyTorch's label-smoothing term: -sum_c w_c log softmax(x_i)_c per sample, 0 for
    ignored samples; 'mean' divides by the same total as the class term (the
    kept samples' target weights, or their count)."""
    log_p = input.log_softmax(dim=1)
    if weight is not None:
        w = _as_target(weight, input).reshape((1, input.shape[1]) + (1,) * (input.ndim - 2))
        log_p = log_p * w
    smooth = -log_p.sum(dim=1)
    if not keep.all():
        smooth = smooth * Tensor._wrap(keep.astype(input.dtype))
    if reduction == "none":
        return smooth
    if reduction == "sum":
        return smooth.sum()
    total = sample_weight.sum() if sample_weight is not None else keep.size
    return smooth.sum() * (1.0 / float(total))


def _soft_cross_entropy(input, target, weight, reduction):
    """Targets are class probabilities (or one-hot rows) of the logits' shape."""
    log_p = input.log_softmax(dim=1)
    if weight is not None:
        w = _as_target(weight, input).reshape((1, input.shape[1]) + (1,) * (input.ndim - 2))
        log_p = log_p * w
    return _reduce(-(target * log_p).sum(dim=1), reduction)


def _binary_log_loss(input, target, reduction):
    """One column of probabilities against 0/1 targets: binary log loss.

    The design document's logistic regression ends in ``Linear(2, 1), Sigmoid()``
    and trains with CrossEntropyLoss on labels of shape (N,). Softmax over one
    column is constant, so read the column as p(class 1) instead.
    """
    target = _as_target(target, input)
    expected = input.shape[:1] + input.shape[2:]
    if _squeezed(target.shape) != _squeezed(expected):
        raise ValueError(
            f"CrossEntropyLoss: prediction shape {input.shape} and target shape "
            f"{target.shape} do not match; one column of probabilities takes 0/1 "
            f"targets of shape {expected}"
        )
    target = target.reshape(expected)
    p = input.reshape(expected)
    low, high = _value_range(p)
    if low < 0.0 or high > 1.0:
        raise ValueError(
            "CrossEntropyLoss got one output column, read as the probability of class 1, "
            f"but its values lie in [{low:g}, {high:g}], outside [0, 1]; add a Sigmoid "
            "after the last layer, or use BCEWithLogitsLoss on the raw outputs"
        )
    t_low, t_high = _value_range(target)
    if t_low < 0.0 or t_high > 1.0:
        raise ValueError(
            "CrossEntropyLoss with one output column takes 0/1 targets, "
            f"got values in [{t_low:g}, {t_high:g}]"
        )
    eps = float(np.finfo(input.dtype).eps)
    p = p.clip(eps, 1 - eps)
    loss = -(target * p.log() + (1 - target) * (1 - p).log())
    return _reduce(loss, reduction)


# ------------------------------------------------------------ loss objects


class _Loss:
    """A callable loss: ``loss_fn(prediction, target)`` calls ``forward``."""

    def __init__(self, reduction: str = "mean"):
        self.reduction = _check_reduction(reduction)

    def __call__(self, input, target) -> Tensor:
        return self.forward(input, target)

    def forward(self, input, target) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class MSELoss(_Loss):
    r"""Mean squared error: :math:`\ell_i = (x_i - y_i)^2`, then mean, sum or none.

    Shape: prediction and target of the same shape (or differing only in size-1
    dims); ``'none'`` returns the prediction's shape, the others a scalar.

    Example::

        >>> loss_fn = mt.MSELoss()
        >>> loss_fn(mt.Tensor([[1.0], [2.0]]), [1.0, 4.0])
        tensor(2.)
    """

    def forward(self, input, target) -> Tensor:
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    r"""Mean absolute error: :math:`\ell_i = |x_i - y_i|`, then mean, sum or none.

    Shape: as :class:`MSELoss`.

    Example::

        >>> mt.L1Loss(reduction="sum")(mt.Tensor([1.0, 2.0]), [0.0, 4.0])
        tensor(3.)
    """

    def forward(self, input, target) -> Tensor:
        return l1_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    r"""Softmax cross entropy of logits, as ``torch.nn.CrossEntropyLoss``.

    With class-index targets :math:`y_i`:
    :math:`\ell_i = -w_{y_i} \log \mathrm{softmax}(x_i)_{y_i}`; ``'mean'`` divides
    by :math:`\sum_i w_{y_i}` over the samples whose target is not ``ignore_index``.
    With probability targets :math:`q_i`:
    :math:`\ell_i = -\sum_c w_c q_{ic} \log \mathrm{softmax}(x_i)_c`; ``'mean'``
    divides by N.

    One output column is the special case of the design document: a model
    ending in ``Sigmoid`` gives p = P(class 1) in a column of shape (N, 1), and
    the loss is the binary log loss
    :math:`\ell_i = -[y_i \log p_i + (1 - y_i) \log(1 - p_i)]` with p clipped to
    [eps, 1 - eps] (eps of the dtype). Values outside [0, 1] there raise a
    ValueError: add a Sigmoid, or use :class:`BCEWithLogitsLoss`.

    Args:
        weight: optional per-class weights, shape (C,).
        ignore_index: class-index targets equal to it add nothing to the loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
        label_smoothing: in [0, 1], default 0. As PyTorch: with class-index
            targets the loss becomes :math:`(1 - \varepsilon)\,\ell_i +
            \frac{\varepsilon}{C} \sum_c -w_c \log \mathrm{softmax}(x_i)_c`
            (ignored samples add nothing; ``'mean'`` divides both terms by the
            same total); probability targets become
            :math:`(1 - \varepsilon) q_i + \varepsilon / C`. Not for one output column.

    Shape:
        - prediction: (N, C) logits, or (N, C, d1, ...) with classes on dim 1.
        - target: (N,) class indices (int, or float holding whole numbers), or
          (N, C) class probabilities; with C = 1, (N,) labels in {0, 1}.
        - output: a scalar, or (N,) (resp. (N, d1, ...)) for ``'none'``.

    Example::

        >>> loss_fn = mt.CrossEntropyLoss()
        >>> logits = mt.Tensor([[2.0, 0.0, 0.0]], requires_grad=True)
        >>> loss = loss_fn(logits, [0])
        >>> loss.backward()
        >>> smoothed = mt.CrossEntropyLoss(label_smoothing=0.1)(logits, [0])
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def forward(self, input, target) -> Tensor:
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                             self.label_smoothing)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.label_smoothing:
            s += f", label_smoothing={self.label_smoothing}"
        return s


class BCELoss(_Loss):
    r"""Binary cross entropy of probabilities:
    :math:`\ell_i = -w_i [y_i \log p_i + (1 - y_i) \log(1 - p_i)]`.

    Each log is floored at -100, as in PyTorch, so p = 0 or 1 gives a finite
    loss. Predictions outside [0, 1] raise a ValueError.

    Args:
        weight: optional rescaling of each element, broadcast against the loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.

    Shape: as :class:`MSELoss`.

    Example::

        >>> p = mt.Tensor([0.9, 0.2], requires_grad=True)
        >>> mt.BCELoss()(p, [1.0, 0.0]).backward()
    """

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input, target) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    r"""Binary cross entropy of logits, with the sigmoid folded in for stability:

    .. math::
        \ell_i = w_i [\max(x_i, 0) - x_i y_i + \log(1 + e^{-|x_i|})]

    and, with ``pos_weight`` :math:`p_c` (weight of the positive term),
    :math:`\ell_i = -w_i [p_c y_i \log \sigma(x_i) + (1 - y_i) \log(1 - \sigma(x_i))]`.

    Args:
        weight: optional rescaling of each element, broadcast against the loss.
        pos_weight: optional weight of positive examples, broadcast against the
            target (shape (C,) for (N, C) multi-label targets).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.

    Shape: as :class:`MSELoss`.

    Example::

        >>> logits = mt.Tensor([3.0, -1.0], requires_grad=True)
        >>> mt.BCEWithLogitsLoss()(logits, [1.0, 0.0]).backward()
    """

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight = weight
        self.pos_weight = pos_weight

    def forward(self, input, target) -> Tensor:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, self.pos_weight, self.reduction
        )

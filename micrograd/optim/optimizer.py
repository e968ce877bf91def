"""``Optimizer``: the bookkeeping every optimiser shares.

Parameter groups, lazily created per-parameter state, ``zero_grad``, ``step``
and ``state_dict``, as ``torch.optim.Optimizer``. A subclass validates its
hyper-parameters in ``_validate`` and writes its update in ``_update``; nothing
else.
"""
from __future__ import annotations

import copy

import numpy as np

from micrograd.engine.autograd import enable_grad
from micrograd.engine.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of the optimisers.

    Args:
        params: an iterable of Tensors, or of dicts ("parameter groups") each
            holding ``"params"`` and any hyper-parameters that override
            ``defaults`` for that group.
        defaults: the subclass's hyper-parameters (``lr``, ...).

    Attributes:
        param_groups: list of dicts, each with ``"params"`` and every
            hyper-parameter; a scheduler or the user may change ``group["lr"]``.
        state: per-parameter state (dict keyed by the parameter Tensor), filled
            by the subclass on a parameter's first update.
    """

    def __init__(self, params, defaults: dict):
        self._validate(defaults)
        self.defaults = dict(defaults)
        self.state: dict = {}
        self._scratch: dict = {}  # dtype -> flat array, see _workspace
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors "
                "or dicts, but got a Tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ subclasses

    def _validate(self, group: dict) -> None:
        """Raise ValueError naming any invalid hyper-parameter in ``group``."""

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        """Update ``param`` in place from ``grad`` (never modify ``grad``)."""
        raise NotImplementedError

    def _workspace(self, param: np.ndarray, count: int) -> list[np.ndarray]:
        """``count`` scratch arrays shaped like ``param``, for updates written in place.

        Views of one flat buffer per dtype, grown to the largest parameter and
        reused by every parameter and step: an update then allocates nothing.
        Their contents are garbage on entry and are not state (never saved).
        """
        size = param.size
        flat = self._scratch.get(param.dtype)
        if flat is None or flat.size < count * size:
            flat = self._scratch[param.dtype] = np.empty(count * size, dtype=param.dtype)
        return [flat[i * size:(i + 1) * size].reshape(param.shape) for i in range(count)]

    # ----------------------------------------------------------- bookkeeping

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters, with hyper-parameters defaulting to ``defaults``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group holds the same parameter twice")
        for name, value in self.defaults.items():
            group.setdefault(name, value)
        self._validate(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (None by default, else zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given.

        ``closure`` re-evaluates the model and returns the loss (with grad
        enabled), as in PyTorch.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._update(p.data, p.grad.data, self.state.setdefault(p, {}), group)
        return loss

    # ---------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """The optimiser's state as plain data: numbers, lists and NumPy arrays.

        As PyTorch's: ``{"state": {index: {name: value}}, "param_groups": [...]}``
        where parameters are numbered in the order of the groups. Arrays are
        copies, so the dict is a snapshot.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {k: _snapshot(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (possibly after a JSON round trip:
        string keys and lists are accepted)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}"
            )
        params_by_index = {}
        for saved, group in zip(saved_groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict has a parameter group of {len(saved['params'])} "
                    f"parameters where the optimizer's has {len(group['params'])}"
                )
            params_by_index.update(zip(saved["params"], group["params"]))

        state = {}
        for key, saved_state in state_dict["state"].items():
            p = params_by_index[int(key)]
            state[p] = {k: _restore(v, p) for k, v in saved_state.items()}

        groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new = dict(group)
            for k, v in saved.items():
                if k == "params":
                    continue
                # JSON turns tuples (Adam's betas) into lists.
                new[k] = tuple(v) if isinstance(group.get(k), tuple) else copy.deepcopy(v)
            groups.append(new)
        self.state = state
        self.param_groups = groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in group if k != "params"):
                lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


def _snapshot(value):
    return value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)


def _restore(value, param: Tensor):
    """Saved state back on a parameter: arrays copied, floating ones in its dtype."""
    if isinstance(value, (np.ndarray, list)):
        arr = np.array(value)
        if np.issubdtype(arr.dtype, np.floating) or isinstance(value, list):
            arr = arr.astype(param.dtype)
        return arr
    return copy.deepcopy(value)


def _check_lr(lr):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def _check_non_negative(value, what):
    """``what`` is PyTorch's wording, e.g. ``"momentum value"``."""
    if not 0.0 <= value:
        raise ValueError(f"Invalid {what}: {value}")

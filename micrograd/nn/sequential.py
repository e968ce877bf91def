"""Sequential, the container that chains layers."""
from __future__ import annotations

from collections import OrderedDict

from .module import Module


class Sequential(Module):
    r"""Feeds the input through each module in turn and returns the last output.

    Build it from a list (as the design document writes it), from modules as
    separate arguments, or from an OrderedDict of names to modules. Without
    names the modules are called ``"0"``, ``"1"``, ..., so parameters are
    ``0.weight``, ``0.bias``, ``2.weight``... exactly as in PyTorch.

    Indexing gives a module (``model[0]``, ``model[-1]``), slicing a new
    Sequential sharing the same modules; ``len``, iteration and ``append``
    work as on a list.

    Shape: whatever the first module accepts, to whatever the last produces.

    It calls each module as it is; ``mn.fuse(model)`` is the pass that
    rewrites runs of layers computed faster together (``fuse.py``).

    Examples::

        >>> model = mn.Sequential([mn.Linear(2, 16), mn.ReLU(), mn.Linear(16, 1)])
        >>> model(mt.randn(8, 2)).shape
        (8, 1)
        >>> [name for name, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, _check_module(module, name))
            return
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = args[0]
        for i, module in enumerate(args):
            self.add_module(str(i), _check_module(module, i))

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self))]

    def __setitem__(self, idx, module):
        key = list(self._modules.keys())[_index(idx, len(self))]
        self.add_module(key, _check_module(module, key))

    def __delitem__(self, idx):
        keys = list(self._modules.keys())
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self))]]:
            del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), _check_module(module, len(self)))
        return self

    def extend(self, modules) -> Sequential:
        for module in modules:
            self.append(module)
        return self


def _check_module(module, name):
    if not isinstance(module, Module):
        raise TypeError(f"Sequential entry {name} is a {type(module).__name__}, not a Module")
    return module


def _index(idx, n):
    idx = int(idx)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a Sequential of length {n}")
    return idx % n

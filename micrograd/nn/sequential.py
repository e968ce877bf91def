"""Sequential, the container that chains layers."""
from __future__ import annotations

from collections import OrderedDict

from micrograd.engine.conv import conv_output_size

from . import functional as F
from .activation import ReLU
from .conv import Conv2d
from .module import Module
from .pooling import AvgPool2d


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

    Two runs of layers are computed together, with fewer passes over memory
    (PyTorch's Sequential does not do this): ``Conv2d, ReLU, AvgPool2d`` with
    non-overlapping, unpadded pooling windows (``F.conv_relu_avg_pool2d``:
    the same values and gradients to float rounding), and any other ``ReLU``
    directly followed by an ``AvgPool2d`` (``F.relu_avg_pool2d``: the same
    values and gradients bit for bit). Subclasses of these layers are called
    as written.

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
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            if _conv_relu_avg_pool(modules[i:i + 3]):
                # The three layers at once: the convolution computes only what
                # pooling reads, in cache when it is cheap to redo (functional.py),
                # and only what a next such run reads.
                conv, _, pool = modules[i:i + 3]
                input = F._tensor(input)
                input = F.conv_relu_avg_pool2d(
                    input, conv.weight, conv.bias, conv.stride, conv.padding, pool.kernel_size,
                    output_size=_rows_read_by_next_run(input.shape, conv, pool,
                                                       modules[i + 3:i + 6]))
                i += 3
                continue
            if i + 1 < len(modules) and _relu_then_avg_pool(modules[i], modules[i + 1]):
                # One fused node instead of two passes over the activation each
                # way (engine/conv.py, ReLUAvgPool2d): same values and gradients.
                pool = modules[i + 1]
                input = F.relu_avg_pool2d(input, pool.kernel_size, pool.stride, pool.padding)
                i += 2
                continue
            input = modules[i](input)
            i += 1
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


def _relu_then_avg_pool(first, second):
    # Exact types: a subclass may have overridden forward.
    return type(first) is ReLU and type(second) is AvgPool2d


def _conv_relu_avg_pool(run):
    # Exact types, and pooling windows that do not overlap and are not padded.
    if len(run) < 3 or (type(run[0]), type(run[1]), type(run[2])) != (Conv2d, ReLU, AvgPool2d):
        return False
    kernel, stride, padding = F._pool_args(run[2].kernel_size, run[2].stride, run[2].padding)
    return stride == kernel and padding == (0, 0)


def _rows_read_by_next_run(shape, conv, pool, run):
    """(rows, columns) of the output of a fused Conv2d, ReLU, AvgPool2d run (whose
    input has ``shape``) that the next fused run reads, or None when it reads
    them all (or is not one, or the input is not an image: the layers report it).

    A next convolution without padding reads rows up to (covered - 1) * stride
    + kernel of its input, where ``covered`` is what its own pooling reads. On
    the seed CNN the second convolution (13 x 13 input, 11 x 11 output pooled
    to 5 x 5 from 10 x 10) never reads the first run's last row and column: the
    first layer then computes 24 x 24 of its 26 x 26 positions, 15% less work.
    The final output is the same; only the unread parts are never computed.
    """
    if len(shape) not in (3, 4) or not _conv_relu_avg_pool(run) or run[0].padding != (0, 0):
        return None
    size = shape[-2:]
    kernel = conv.kernel_size
    pool_k = F._pair(pool.kernel_size, "kernel_size")
    read = []
    for axis in (0, 1):
        # This run's output size, then the next run's covered convolution output.
        out = conv_output_size(size[axis], kernel[axis], conv.stride[axis],
                               conv.padding[axis]) // pool_k[axis]
        nxt_kernel, nxt_stride = run[0].kernel_size[axis], run[0].stride[axis]
        nxt_pool = F._pair(run[2].kernel_size, "kernel_size")[axis]
        covered = conv_output_size(out, nxt_kernel, nxt_stride) // nxt_pool * nxt_pool
        if covered < 1:
            return None  # the next run will report its own error
        read.append(min(out, (covered - 1) * nxt_stride + nxt_kernel))
    return tuple(read)


def _check_module(module, name):
    if not isinstance(module, Module):
        raise TypeError(f"Sequential entry {name} is a {type(module).__name__}, not a Module")
    return module


def _index(idx, n):
    idx = int(idx)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a Sequential of length {n}")
    return idx % n

"""Fusion as an explicit pass: ``mn.fuse(model)`` rewrites runs of layers that are
faster computed together (``torch.ao.quantization.fuse_modules`` is the model).

Inside every ``Sequential`` of the model, first each ``ReLU, MaxPool2d`` becomes
``MaxPool2d, ReLU``: the maximum commutes with the rectifier (values, the
window's first maximum that takes the gradient, and the zero gradient of a
window that is all non-positive), so ReLU runs on the pooled output. Then:

- ``BatchNorm2d, MaxPool2d`` (and a ``ReLU`` after them) becomes
  ``BatchNormMaxPool2d, Identity`` (``, Identity``) when the compiled loops are
  there (numba, micrograd/kernels): one node that never writes the normalised
  activation, in training and evaluation;
- otherwise ``Conv2d, BatchNorm2d`` and ``Linear, BatchNorm1d`` become
  ``ConvBatchNorm2d, FoldedBatchNorm2d`` (``LinearBatchNorm1d, FoldedBatchNorm1d``):
  in evaluation the normalisation is folded into the layer's weights or
  written over its output, in training it runs as before; a ``ReLU``, ``Tanh``
  or ``Sigmoid`` after them is applied by the fused layer too (its place
  holds an ``Identity``), in place under no_grad;
- ``Conv2d, ReLU, AvgPool2d`` with non-overlapping, unpadded pooling windows
  becomes a ``ConvReLUAvgPool2d`` module (``F.conv_relu_avg_pool2d``: the same
  values and gradients, to float rounding);
- any other ``ReLU`` directly followed by an ``AvgPool2d`` becomes a
  ``ReLUAvgPool2d`` module (``F.relu_avg_pool2d``: the same values and
  gradients bit for bit);
- ``Flatten, Linear`` becomes ``Identity, FlattenLinear``: a channels-last
  image batch is multiplied by the weight with its columns reordered, instead
  of being copied into (c, h, w) order (the same values to float rounding).

Only these exact classes are fused: a subclass may have overridden ``forward``.
"""
from __future__ import annotations

from micrograd import kernels
from micrograd.engine import functions
from micrograd.engine.autograd import is_grad_enabled
from micrograd.engine.batchnorm import normalise_in_place
from micrograd.engine.conv import conv_output_size
from micrograd.engine.tensor import Tensor

from . import functional as F
from .activation import ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv2d
from .flatten import Flatten
from .linear import Identity, Linear
from .module import Module
from .pooling import AvgPool2d, MaxPool2d
from .sequential import Sequential


def fuse(model: Module) -> Module:
    """Fuse the runs above in every ``Sequential`` of ``model`` (``model`` itself
    or any module inside it), in place; returns ``model``.

    The fused module takes the first layer's place and the others become
    ``Identity`` (a folded BatchNorm becomes a ``FoldedBatchNorm*d`` that keeps
    its parameters and buffers; a moved ReLU trades places with the pooling
    layer), so indices, ``len`` and every parameter and buffer name stay as they
    were (``0.weight``, ``0.bias``, ``3.weight``...): state dicts and
    checkpoints move between a fused and an unfused model, and between this
    one and PyTorch. A fused module holds the convolution's own Parameter
    objects, so an optimiser built before or after fusing trains the same
    tensors.

    In a module of your own, only the Sequentials inside it are rewritten: the
    layers your ``forward`` calls one by one stay as they are, since the pass
    cannot know in which order you call them. A ``Sequential`` subclass is
    left alone too. Fusing twice changes nothing.

    Where a fused convolution run is directly followed by another one whose
    convolution is unpadded, the first computes only the rows and columns of
    its output that the second reads (the final output is the same). Such a
    first module is then a part of its Sequential, not a layer to call alone.

    Example::

        >>> model = mn.fuse(mn.Sequential([mn.Conv2d(1, 8, 3), mn.ReLU(), mn.AvgPool2d(2)]))
        >>> model
        Sequential(
          (0): ConvReLUAvgPool2d(1, 8, kernel_size=(3, 3), stride=(1, 1), pool_size=(2, 2))
          (1): Identity()
          (2): Identity()
        )
    """
    for module in list(model.modules()):
        if type(module) is Sequential:
            _fuse_sequential(module)
    return model


def _fuse_sequential(seq: Sequential) -> None:
    names, modules = list(seq._modules), list(seq._modules.values())
    _move_relus_after_max_pools(seq, names, modules)
    previous = None  # the fused convolution run ending just before position i
    i = 0
    while i < len(modules):
        if _is_conv_relu_avg_pool(modules[i:i + 3]):
            conv, relu, pool = modules[i:i + 3]
            fused = ConvReLUAvgPool2d(conv, pool)
            if previous is not None and fused.padding == (0, 0):
                previous.next_run = (fused.kernel_size, fused.stride, fused.pool_size)
            _replace(seq, names[i:i + 3], [fused, Identity(), Identity()], conv.training)
            previous, i = fused, i + 3
            continue
        previous = None
        if _is_batch_norm_max_pool(modules[i:i + 2]):
            bn, pool = modules[i:i + 2]
            fused = _retype(bn, BatchNormMaxPool2d)
            object.__setattr__(fused, "pool", pool)  # read, not registered: no new names
            # A ReLU after the pooling (moved there above) is applied in the node too.
            run = 3 if i + 2 < len(modules) and type(modules[i + 2]) is ReLU else 2
            fused.relu = run == 3
            modules[i:i + run] = [fused] + [Identity() for _ in range(run - 1)]
            _replace(seq, names[i:i + run], modules[i:i + run], bn.training)
            i += run
            continue
        if _is_layer_batch_norm(modules[i:i + 2]) and not (
                kernels.available() and _is_batch_norm_max_pool(modules[i + 1:i + 3])):
            # (A BatchNorm that a MaxPool2d follows is fused with the pooling
            # instead, when the compiled loops are there: in training too.)
            layer, bn = modules[i:i + 2]
            fused_cls, folded_cls = _BATCH_NORM_FUSIONS[type(layer), type(bn)]
            folded = _retype(bn, folded_cls)
            fused = _retype(layer, fused_cls)
            object.__setattr__(fused, "_batch_norm", folded)  # read, not registered: no new names
            # An activation after the BatchNorm is applied by the fused layer too:
            # under no_grad in place, on the output that only it holds.
            run = 3 if i + 2 < len(modules) and type(modules[i + 2]) in _IN_PLACE else 2
            object.__setattr__(fused, "activation", modules[i + 2] if run == 3 else None)
            modules[i:i + run] = [fused, folded] + [Identity()] * (run - 2)
            _replace(seq, names[i:i + run], modules[i:i + run], layer.training)
            i += run
            continue
        if _is_flatten_linear(modules[i:i + 2]) and not _is_layer_batch_norm(modules[i + 1:i + 3]):
            flatten, layer = modules[i:i + 2]
            _replace(seq, names[i:i + 2], [Identity(), _retype(layer, FlattenLinear)],
                     layer.training)
            i += 2
            continue
        if i + 1 < len(modules) and _is_relu_avg_pool(modules[i:i + 2]):
            relu, pool = modules[i:i + 2]
            fused = ReLUAvgPool2d(pool.kernel_size, pool.stride, pool.padding)
            _replace(seq, names[i:i + 2], [fused, Identity()], pool.training)
            i += 2
            continue
        i += 1


def _move_relus_after_max_pools(seq, names, modules):
    """max(relu(x)) = relu(max(x)), gradients included: each ReLU directly before
    a MaxPool2d trades places with it (bubbling past consecutive ones), so ReLU
    runs on the pooled output, a quarter of the size for 2 x 2 windows, and the
    pooling meets whatever came before the ReLU (a BatchNorm2d to fuse with)."""
    i = 0
    while i + 1 < len(modules):
        if _is_relu_max_pool(modules[i:i + 2]):
            modules[i:i + 2] = modules[i + 1], modules[i]
            _replace(seq, names[i:i + 2], modules[i:i + 2], modules[i].training)
            i = max(i - 1, 0)  # the pool may now follow another ReLU
            continue
        i += 1


def _is_batch_norm_max_pool(run):
    return len(run) == 2 and type(run[0]) is BatchNorm2d and type(run[1]) is MaxPool2d


def _retype(module, cls):
    """A new module of ``cls`` holding ``module``'s parameters, buffers and settings
    (the same objects): the original stays a working layer for whoever holds it."""
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    return new


def _is_layer_batch_norm(run):
    if len(run) != 2 or (type(run[0]), type(run[1])) not in _BATCH_NORM_FUSIONS:
        return False
    layer, bn = run
    width = layer.out_channels if isinstance(layer, Conv2d) else layer.out_features
    # Folding needs running statistics (without them evaluation uses the batch's),
    # and a BatchNorm of the layer's width (else it reports its own error).
    return bn.track_running_stats and bn.num_features == width


def _replace(seq, names, modules, training):
    for name, module in zip(names, modules):
        module.training = training
        seq.add_module(name, module)  # an existing name keeps its place


def _is_flatten_linear(run):
    return (len(run) == 2 and type(run[0]) is Flatten and type(run[1]) is Linear
            and (run[0].start_dim, run[0].end_dim) == (1, -1))


def _is_relu_max_pool(run):
    return len(run) == 2 and type(run[0]) is ReLU and type(run[1]) is MaxPool2d


def _is_relu_avg_pool(run):
    # Exact types: a subclass may have overridden forward.
    return (len(run) == 2 and type(run[0]) is ReLU and type(run[1]) is AvgPool2d
            and _is_plain_avg_pool(run[1]))


def _is_plain_avg_pool(pool):
    """The fused nodes compute the default mean only: no ceil_mode, padding
    counted, no divisor_override."""
    return not pool.ceil_mode and pool.count_include_pad and pool.divisor_override is None


def _is_plain_conv(conv):
    """The fused node is a dense, single-group convolution with symmetric zero padding."""
    return (conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def _is_conv_relu_avg_pool(run):
    # Exact types, and pooling windows that do not overlap and are not padded.
    if len(run) < 3 or (type(run[0]), type(run[1]), type(run[2])) != (Conv2d, ReLU, AvgPool2d):
        return False
    if not (_is_plain_conv(run[0]) and _is_plain_avg_pool(run[2])):
        return False
    kernel, stride, padding = F._pool_args(run[2].kernel_size, run[2].stride, run[2].padding)
    return stride == kernel and padding == (0, 0)


class ReLUAvgPool2d(AvgPool2d):
    r"""``avg_pool2d(relu(x))`` as one node, fewer passes over memory: the same values
    and gradients as ``ReLU`` then ``AvgPool2d`` bit for bit. ``fuse`` builds it.

    Args: kernel_size, stride, padding as :class:`AvgPool2d`.

    Shape: as :class:`AvgPool2d`.
    """

    def forward(self, input):
        return F.relu_avg_pool2d(input, self.kernel_size, self.stride, self.padding)


class ConvReLUAvgPool2d(Module):
    r"""``avg_pool2d(relu(conv2d(x)), pool_size)`` for non-overlapping, unpadded
    pooling, computed together: the convolution computes only the output rows
    and columns the pooling reads (``F.conv_relu_avg_pool2d``). The same values
    and gradients as the three layers, to float rounding. ``fuse`` builds it.

    Args:
        conv: the ``Conv2d`` whose parameters it takes over: ``weight`` and
            ``bias`` are the same Parameter objects, under the same names.
        pool: the ``AvgPool2d``; its stride equals its kernel and it is unpadded.

    Attributes:
        next_run: ``(kernel_size, stride, pool_size)`` of the fused run that
            reads this one's output, set by ``fuse``; this module then computes
            only the part of its output that run reads. None: all of it.

    Shape:
        - Input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        - Output: ``(N, C_out, H_conv // ph, W_conv // pw)``, ``H_conv`` as in
          :class:`Conv2d`; fewer rows and columns when ``next_run`` reads fewer.
    """

    def __init__(self, conv: Conv2d, pool: AvgPool2d):
        super().__init__()
        kernel, stride, padding = F._pool_args(pool.kernel_size, pool.stride, pool.padding)
        if stride != kernel or padding != (0, 0):
            raise ValueError(f"ConvReLUAvgPool2d needs non-overlapping, unpadded pooling, got "
                             f"kernel_size={kernel}, stride={stride}, padding={padding}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.pool_size = kernel
        self.weight = conv.weight
        if conv.bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = conv.bias
        self.next_run = None

    def forward(self, input):
        x = F._tensor(input)
        return F.conv_relu_avg_pool2d(x, self.weight, self.bias, self.stride, self.padding,
                                      self.pool_size, output_size=self._read_by_next_run(x.shape))

    def _read_by_next_run(self, shape):
        """(rows, columns) of this run's output (for an input of ``shape``) that the
        next run reads, or None when it reads them all (or the input is not an
        image: the layers report it).

        An unpadded next convolution reads rows up to (covered - 1) * stride +
        kernel of its input, where ``covered`` is what its own pooling reads. On
        the seed CNN the second convolution (13 x 13 input, 11 x 11 output
        pooled to 5 x 5 from 10 x 10) never reads the first run's last row and
        column: the first layer then computes 24 x 24 of its 26 x 26 positions.
        """
        if self.next_run is None or len(shape) not in (3, 4):
            return None
        next_kernel, next_stride, next_pool = self.next_run
        read = []
        for axis in (0, 1):
            out = conv_output_size(shape[axis - 2], self.kernel_size[axis], self.stride[axis],
                                   self.padding[axis]) // self.pool_size[axis]
            covered = (conv_output_size(out, next_kernel[axis], next_stride[axis])
                       // next_pool[axis] * next_pool[axis])
            if covered < 1:
                return None  # the next run will report its own error
            read.append(min(out, (covered - 1) * next_stride[axis] + next_kernel[axis]))
        return tuple(read)

    def extra_repr(self) -> str:
        return Conv2d.extra_repr(self) + f", pool_size={self.pool_size}"


# ------------------------------------------------ BatchNorm folded under eval


class _FoldedBatchNorm:
    """The BatchNorm after a layer that applies it (``ConvBatchNorm2d``,
    ``LinearBatchNorm1d``): it keeps its parameters, buffers and names, and
    passes its input on, since the layer before it has already normalised."""

    def forward(self, input):
        return input

    def normalise(self, input):
        """What this BatchNorm computes as a layer of its own."""
        return super().forward(input)


class FoldedBatchNorm2d(_FoldedBatchNorm, BatchNorm2d):
    """A ``BatchNorm2d`` applied by the ``ConvBatchNorm2d`` before it; ``fuse`` builds it."""


class FoldedBatchNorm1d(_FoldedBatchNorm, BatchNorm1d):
    """A ``BatchNorm1d`` applied by the ``LinearBatchNorm1d`` before it; ``fuse`` builds it."""


#: The activations a layer with its BatchNorm applies too, with the engine's
#: function that computes each (``values(a, out)``).
_IN_PLACE = {ReLU: functions.ReLU, Tanh: functions.Tanh, Sigmoid: functions.Sigmoid}


class _WithBatchNorm:
    """A layer followed by its BatchNorm (and the ReLU, Tanh or Sigmoid after it,
    ``activation``, when there is one). In training: the layer, the BatchNorm
    (batch statistics, running averages updated) and the activation, as apart.
    In evaluation the BatchNorm is an affine map per output channel: folded
    into the layer's weights (w' = w * s and b' = (b - mean) * s + beta with
    s = gamma / sqrt(running_var + eps)) where the weight is smaller than the
    output, else applied to the output. The same values to float rounding;
    gradients still reach every parameter. Under no_grad the output is a new
    array that nothing else holds, so the BatchNorm and the activation are
    written over it: no further array, and no graph nodes."""

    _input_dims = ()
    activation = None

    def forward(self, input):
        bn, activation = self._batch_norm, self.activation
        if not (bn.training or is_grad_enabled()):
            y = self._normalised_in_place(input)
            if y is not None:
                return y
        x = F._tensor(input)
        if bn.training or x.ndim not in self._input_dims or bn.running_mean is None:
            y = bn.normalise(super().forward(x))
        elif self._folding_pays(x):
            y = self._with_weights(x, *self._folded())
            if not is_grad_enabled():
                return y if activation is None else self._activate_in_place(y)
        else:
            y = bn.normalise(super().forward(x))
        return y if activation is None else activation(y)

    def _normalised_in_place(self, input):
        """Evaluation under no_grad where folding does not pay: the layer's product
        without its bias, then the BatchNorm and the activation written over it
        (the bias goes into the mean the BatchNorm subtracts, a sigmoid's
        negation into its scale and shift); None where that does not apply.
        Between a step's large products, every attribute looked up costs a
        cache miss, so this reads the registries directly."""
        x = input.data if isinstance(input, Tensor) else None
        if x is None or x.ndim not in self._input_dims or x.dtype.kind != "f":
            return None
        bn, weight = self._batch_norm, self._parameters["weight"]
        stats, affine = bn._buffers, bn._parameters
        if stats["running_mean"] is None or self._folding_pays(x, weight):
            return None
        y = self._product(x, weight)
        activation = self.activation
        normalise_in_place(y, stats["running_mean"].data, stats["running_var"].data,
                           _array(affine["weight"]), _array(affine["bias"]), bn.eps,
                           layer_bias=_array(self._parameters["bias"]),
                           activation=None if activation is None else _IN_PLACE[type(activation)])
        return Tensor._wrap(y)

    def _folded(self):
        """(weight, bias) with the BatchNorm folded in."""
        bn = self._batch_norm
        scale = (bn.running_var + bn.eps) ** -0.5
        if bn.weight is not None:
            scale = scale * bn.weight
        mean = bn.running_mean if self.bias is None else bn.running_mean - self.bias
        shift = -(mean * scale)
        if bn.bias is not None:
            shift = shift + bn.bias
        return self.weight * scale.reshape((-1,) + (1,) * (self.weight.ndim - 1)), shift

    def _activate_in_place(self, y):
        """y's activation written over it."""
        _IN_PLACE[type(self.activation)].values(y.data, y.data)
        return y

    def _folding_pays(self, x, weight=None):
        """Folding scales the weight each call; normalising, the output: fold when
        the weight is the smaller (a wide Linear on a small batch is not)."""
        return (self.weight if weight is None else weight).size <= self._output_size(x)

    def extra_repr(self) -> str:
        activation = self.activation
        return super().extra_repr() + (
            "" if activation is None else f", activation={type(activation).__name__}")


def _array(tensor):
    """A Parameter's array, or None where there is none (no bias, affine=False)."""
    return None if tensor is None else tensor.data


class ConvBatchNorm2d(_WithBatchNorm, Conv2d):
    r"""A ``Conv2d`` and the ``BatchNorm2d`` after it; ``fuse`` builds it, holding the
    convolution's own Parameters under its names; the BatchNorm stays in the
    next place (as a ``FoldedBatchNorm2d``) with its names.

    Shape: as :class:`Conv2d` on ``(N, C_in, H, W)``.
    """

    _input_dims = (4,)

    def _with_weights(self, x, weight, bias):
        return self._conv_forward(x, weight, bias)

    def _product(self, x, weight):
        """The convolution of the array x by the Parameter ``weight``, without bias."""
        return self._conv_forward(Tensor._wrap(x), weight, None).data

    def _output_size(self, x):
        # About N * C_out * H_out * W_out (a heuristic: padding and kernel ignored).
        return x.shape[0] * self.out_channels * max(1, x.shape[2] * x.shape[3]
                                                     // (self.stride[0] * self.stride[1]))


class LinearBatchNorm1d(_WithBatchNorm, Linear):
    r"""A ``Linear`` and the ``BatchNorm1d`` after it, as :class:`ConvBatchNorm2d`.

    Shape: as :class:`Linear` on ``(N, in_features)``; other inputs take the
    two layers apart.
    """

    _input_dims = (2,)

    def _with_weights(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def _product(self, x, weight):
        """x @ weight.T for the array x and the Parameter ``weight``."""
        return functions.Linear.values(x, weight.data)

    def _output_size(self, x):
        return x.shape[0] * self.out_features


_BATCH_NORM_FUSIONS = {
    (Conv2d, BatchNorm2d): (ConvBatchNorm2d, FoldedBatchNorm2d),
    (Linear, BatchNorm1d): (LinearBatchNorm1d, FoldedBatchNorm1d),
}


class FlattenLinear(Linear):
    r"""A ``Flatten`` and the ``Linear`` after it (``F.flatten_linear``): a channels-last
    image batch (a convolution's or pooling layer's output) is never copied
    into (c, h, w) order; the weight's columns are reordered instead when that
    is the smaller copy. ``fuse`` builds it in the Linear's place, holding its
    parameters under their names; the Flatten's place holds an ``Identity``.

    Shape: ``(N, C, H, W)`` -> ``(N, out_features)`` with ``in_features = C*H*W``;
    any other input is flattened from dim 1, as the Flatten did.

    Example::

        >>> model = mn.fuse(mn.Sequential(mn.Conv2d(1, 4, 3), mn.Flatten(), mn.Linear(4 * 6 * 6, 2)))
        >>> model[2], model(mt.randn(8, 1, 8, 8)).shape
        (FlattenLinear(in_features=144, out_features=2, bias=True), (8, 2))
    """

    def forward(self, input):
        return F.flatten_linear(input, self.weight, self.bias)


class BatchNormMaxPool2d(BatchNorm2d):
    r"""A ``BatchNorm2d`` and the ``MaxPool2d`` after it (and a ``ReLU`` when
    ``relu``), computed together (``F.batch_norm_max_pool2d``: with the compiled
    loops the normalised activation is never written); ``fuse`` builds it. It
    holds the BatchNorm's parameters and buffers under their names; the
    pooling layer's (and ReLU's) place holds an ``Identity``.

    Shape: ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``, as the MaxPool2d.
    """

    def forward(self, input):
        x = F._tensor(input)
        pool = self.pool
        return F.batch_norm_max_pool2d(x, *self._normalisation_args(x), pool.kernel_size,
                                       pool.stride, pool.padding, pool.dilation, pool.ceil_mode,
                                       self.relu)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", pool=({self.pool.extra_repr()})"
                + (", relu=True" if self.relu else ""))

"""Layers as functions (``torch.nn.functional``): the layers' ``forward`` calls these.

Each delegates to an engine primitive or a short composition of them. Inputs
may be Tensors or array-likes; an array is wrapped without a copy and keeps
its dtype (as ``from_numpy``).

Dtypes, as in PyTorch's ``nn.functional``: nothing here casts its input.
Integers stay integers until a float op needs them, and then it is an error
naming the dtype, not a silent cast: ``linear``, ``conv2d``, pooling,
``batch_norm``, ``dropout``, ``sigmoid``, ``tanh``, ``softmax`` and
``log_softmax`` take floating inputs only (call ``.float()`` on numbers that
happen to be integers). ``embedding`` and ``embedding_bag`` take integer
indices only; ``flatten`` and ``relu``, exact on any dtype, take both.
"""
from __future__ import annotations

import warnings

import numpy as np

from micrograd import kernels
from micrograd.engine import batchnorm as _batchnorm
from micrograd.engine import conv as _conv
from micrograd.engine import embedding as _embedding
from micrograd.engine import functions as _functions
from micrograd.engine import pad as _pad
from micrograd.engine import pooling as _pooling
from micrograd.engine.grouped_conv import GroupedConv2d as _GroupedConv2d
from micrograd.engine.batchnorm import BatchNorm as _BatchNorm
from micrograd.engine.random import default_generator
from micrograd.engine.tensor import Tensor


def _tensor(x, floating=True) -> Tensor:
    """``x`` as a Tensor, never cast; unless ``floating=False``, a non-floating
    dtype is an error (see the module docstring)."""
    t = x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x))
    if floating and t.dtype.kind != "f":
        raise RuntimeError(
            f"expected a floating-point input, got {t.dtype}: integers are indices or "
            "labels here (mn.Embedding looks indices up); call .float() to compute "
            "with them as numbers"
        )
    return t


def _pair(v, name):
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(i, (int, np.integer)) for i in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(pair[0]), int(pair[1])


def _batched(x, fn):
    """Run a (N, C, H, W) function on an unbatched (C, H, W) input too, as PyTorch does."""
    if x.ndim == 3:
        return fn(x.unsqueeze(0)).squeeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected a 3D (C, H, W) or 4D (N, C, H, W) input, got shape {x.shape}")
    return fn(x)


# ------------------------------------------------------------------ layers


def linear(input, weight, bias=None):
    """y = x W^T + b, with x (..., in), W (out, in), b (out,)."""
    params = (_tensor(weight),) if bias is None else (_tensor(weight), _tensor(bias))
    return _functions.Linear.apply(_tensor(input), *params)


def flatten_linear(input, weight, bias=None):
    """``linear(input.flatten(1), weight, bias)`` for an image batch (N, C, H, W),
    without copying a channels-last input into (c, h, w) order: the weight's
    columns are reordered instead when that is the smaller copy
    (``engine.functions.FlattenLinear``)."""
    x = _tensor(input)
    if x.ndim != 4:
        return linear(x.flatten(1), weight, bias)
    params = (_tensor(weight),) if bias is None else (_tensor(weight), _tensor(bias))
    return _functions.FlattenLinear.apply(x, *params)


#: Convolution ``padding_mode`` -> the ``pad`` mode that makes it ('zeros' pads in the conv).
PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                 "circular": "circular"}


def conv_padding(padding, kernel, dilation, stride):
    """``padding`` (int, pair, 'valid' or 'same') as (top, bottom, left, right) cells,
    PyTorch's rules: 'same' pads dilation * (k - 1) in all, the odd cell (even
    kernels) at the bottom and right, and refuses strides other than 1."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             f"{{'same', 'valid'}}")
        if padding == "valid":
            return (0, 0, 0, 0)
        if stride != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions")
        (th, tw) = (d * (k - 1) for d, k in zip(dilation, kernel))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = _pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    return (ph, ph, pw, pw)


def conv_args(stride, dilation, groups, padding_mode="zeros"):
    """Check and normalise the arguments a convolution's shapes do not decide."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) < 1:
        raise ValueError(f"stride should be greater than zero, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"dilation should be greater than zero, got {dilation}")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError("groups must be a positive integer")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, but got "
                         f"padding_mode={padding_mode!r}")
    return stride, dilation, int(groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of x (N, C, H, W) with W (O, C/groups, kh, kw), plus b (O,),
    as ``torch.nn.functional.conv2d``.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (the output
    keeps H x W; stride 1 only). ``dilation`` spaces the kernel taps apart.
    ``groups`` splits the channels into that many independent convolutions
    (groups = C: depthwise). Example: ``conv2d(x, w, padding='same', dilation=2)``.
    """
    weight = _tensor(weight)
    stride, dilation, groups = conv_args(stride, dilation, groups)
    top, bottom, left, right = conv_padding(padding, weight.shape[2:], dilation, stride)
    params = (weight,) if bias is None else (weight, _tensor(bias))

    def run(x):
        if x.shape[1] != weight.shape[1] * groups:
            per_group = f" and groups={groups}" if groups > 1 else ""
            raise ValueError(f"conv2d expects input (N, {weight.shape[1] * groups}, H, W) for "
                             f"weight {tuple(weight.shape)}{per_group}, got {tuple(x.shape)}")
        pad = (top, left)
        if (top, left) != (bottom, right):
            # The engine pads symmetrically: the extra cell of an even 'same'
            # kernel is padded here first, at the bottom and right.
            x = _pad.Pad2d.apply(x, pads=(0, right - left, 0, bottom - top), mode="constant")
        if groups > 1:
            return _GroupedConv2d.apply(x, *params, stride=stride, padding=pad,
                                        dilation=dilation, groups=groups)
        if dilation != (1, 1):
            return _conv.Conv2d.apply(x, *params, stride=stride, padding=pad, dilation=dilation)
        return _conv.Conv2d.apply(x, *params, stride=stride, padding=pad)

    return _batched(_tensor(input), run)


def pad(input, pad, mode="constant", value=None):
    """Pad the last two axes of a (N, C, H, W) or (C, H, W) input, as
    ``torch.nn.functional.pad``: ``pad = (left, right, top, bottom)`` (or
    ``(left, right)``, the W axis only, for ``'constant'``), each >= 0.

    ``mode``: ``'constant'`` (``value``, default 0), ``'reflect'`` (mirrored,
    the edge not repeated; pads < the axis), ``'replicate'`` (the edge repeated)
    or ``'circular'`` (wrapped; pads <= the axis). Example:
    ``pad(x, (1, 1, 2, 2), mode='reflect')`` turns (N, C, 5, 5) into (N, C, 9, 7).
    """
    if mode not in _pad.MODES:
        raise ValueError(f"Unrecognised padding mode {mode!r}; expected one of {_pad.MODES}")
    pads = tuple(pad)
    if len(pads) == 2 and mode == "constant":
        pads += (0, 0)
    if len(pads) != 4 or not all(isinstance(p, (int, np.integer)) for p in pads):
        raise ValueError(f"pad must be 4 ints (left, right, top, bottom) for mode {mode!r}, "
                         f"got {pad!r}")
    if min(pads) < 0:
        raise ValueError(f"negative padding (cropping) is not supported, got {pads}")
    if mode != "constant" and value:
        raise ValueError(f"padding mode {mode!r} doesn't take in value argument")
    fill = 0.0 if value is None else float(value)
    return _batched(_tensor(input), lambda x: _pad.Pad2d.apply(
        x, pads=tuple(int(p) for p in pads), mode=mode, value=fill))


def _pool_args(kernel_size, stride, padding, dilation=1):
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    if min(kernel) < 1:
        raise ValueError(f"kernel_size should be greater than zero, got {kernel}")
    if min(dilation) < 1:
        raise ValueError(f"dilation should be greater than zero, got {dilation}")
    # More padding than this would let a window hold nothing but padding.
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(p > e // 2 for p, e in zip(padding, effective)) or min(padding) < 0:
        raise ValueError(f"pad should be at most half of effective kernel size, but got "
                         f"pad={padding}, kernel_size={kernel} and dilation={dilation}")
    if min(stride) < 1:
        raise ValueError(f"stride should be at least 1, got {stride}")
    return kernel, stride, padding


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over each window of x (N, C, H, W); stride defaults to kernel_size.
    Padding is -inf, so it never wins. ``dilation`` spaces the window's cells
    apart; ``ceil_mode`` rounds the output size up (PyTorch's rule: the last
    window starts inside the input or its left padding)."""
    if return_indices:
        raise ValueError("return_indices=True is not supported: micrograd has no "
                         "max_unpool2d to take the indices")
    kernel, stride, padding = _pool_args(kernel_size, stride, padding, dilation)
    dilation = _pair(dilation, "dilation")
    if dilation == (1, 1) and not ceil_mode:
        return _batched(_tensor(input), lambda x: _pooling.MaxPool2d.apply(
            x, kernel_size=kernel, stride=stride, padding=padding))
    return _batched(_tensor(input), lambda x: _pooling.MaxPool2d.apply(
        x, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
        ceil_mode=bool(ceil_mode)))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each window of x (N, C, H, W), as ``torch.nn.functional.avg_pool2d``:
    zero padding counts in the mean unless ``count_include_pad=False``;
    ``ceil_mode`` rounds the output size up (cells past the padding never
    count); ``divisor_override`` divides every window's sum by that number."""
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    if divisor_override is not None and (
            not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ValueError(f"divisor must be not zero, got divisor_override={divisor_override!r}")
    if not ceil_mode and count_include_pad and divisor_override is None:
        return _batched(_tensor(input), lambda x: _pooling.AvgPool2d.apply(
            x, kernel_size=kernel, stride=stride, padding=padding))
    return _batched(_tensor(input), lambda x: _pooling.AvgPool2d.apply(
        x, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad), divisor_override=divisor_override))


def relu_avg_pool2d(input, kernel_size, stride=None, padding=0):
    """avg_pool2d(relu(x)) as one fused node: the same values and gradients, fewer
    passes over memory (``mn.fuse`` puts it in for a ReLU followed by an AvgPool2d)."""
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    return _batched(_tensor(input), lambda x: _conv.ReLUAvgPool2d.apply(
        x, kernel_size=kernel, stride=stride, padding=padding))


#: Largest in_channels * kh * kw for which ``conv_relu_avg_pool2d`` uses the
#: chunked node that redoes the convolution in backward (ConvReLUAvgPool2d): a
#: first layer (1 x 3 x 3) is then faster than convolution, ReLU and pooling
#: apart; a deeper one (32 x 3 x 3) is faster as one whole GEMM (bench/README.md).
RECOMPUTE_MAX_COLUMNS = 64


def conv_relu_avg_pool2d(input, weight, bias=None, stride=1, padding=0, pool_size=2,
                         output_size=None):
    """avg_pool2d(relu(conv2d(x, W, b, stride, padding)), pool_size) for
    non-overlapping, unpadded pooling windows, in fewer passes over memory: the
    same values and gradients, to float rounding. ``mn.fuse`` puts it in for a
    Conv2d, ReLU, AvgPool2d run (the ``ConvReLUAvgPool2d`` module).
    ``output_size=(h, w)`` computes only the top-left h x w corner of the
    result, the part a next layer reads.

    A convolution with few input channels runs as one chunked node
    (engine/conv.py, ConvReLUAvgPool2d); a larger one as a Conv2d node that
    computes only the output rows and columns that pooling reads (an 11 x 11
    output pooled by 2 needs only 10 x 10: 17% of the GEMM work saved),
    followed by the fused ReLU + pooling node.
    """
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d needs stride >= 1 and padding >= 0, got {stride}, {padding}")
    pool = _pair(pool_size, "pool_size")
    if min(pool) < 1:
        raise ValueError(f"pool_size should be at least 1, got {pool}")
    weight = _tensor(weight)
    params = (weight,) if bias is None else (weight, _tensor(bias))
    o, c, kh, kw = weight.shape

    def run(x):
        if c * kh * kw <= RECOMPUTE_MAX_COLUMNS:
            return _conv.ConvReLUAvgPool2d.apply(x, *params, stride=stride, padding=padding,
                                                 pool=pool, out_size=output_size)
        _conv.check_kernel_fits(x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1], kh, kw)
        conv_h, conv_w = (_conv.conv_output_size(x.shape[2 + i], (kh, kw)[i], stride[i], padding[i])
                          for i in (0, 1))
        out_h, out_w = conv_h // pool[0], conv_w // pool[1]
        if out_h < 1 or out_w < 1:
            raise ValueError(f"avg_pool2d window {pool} is larger than its input "
                             f"{(conv_h, conv_w)}")
        if output_size is not None:
            out_h, out_w = min(out_h, output_size[0]), min(out_w, output_size[1])
        covered = out_h * pool[0], out_w * pool[1]
        y = _conv.Conv2d.apply(x, *params, stride=stride, padding=padding, crop=covered)
        return _conv.ReLUAvgPool2d.apply(y, kernel_size=pool, stride=pool, padding=(0, 0))

    return _batched(_tensor(input), run)


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one (``torch.flatten``; the Flatten layer starts at 1)."""
    return _tensor(input, floating=False).flatten(start_dim, end_dim)


# ------------------------------------------------------------- activations


def relu(input):
    return _tensor(input, floating=False).relu()


def sigmoid(input):
    return _tensor(input).sigmoid()


def tanh(input):
    return _tensor(input).tanh()


def _softmax_dim(dim, ndim, name):
    if dim is not None:
        return dim
    # PyTorch's legacy rule for a missing dim, with its warning.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None):
    x = _tensor(input)
    return x.softmax(_softmax_dim(dim, x.ndim, "softmax"))


def log_softmax(input, dim=None):
    x = _tensor(input)
    return x.log_softmax(_softmax_dim(dim, x.ndim, "log_softmax"))


# ------------------------------------------------------------ regularisers


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p)
    (inverted dropout: evaluation needs no rescaling). Identity unless training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _tensor(input)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # 32 random bits per value (half a 64-bit draw of the generator), kept where
    # they reach p * 2^32: the probability is p to within 2^-33, for half the
    # generator's work of a float64 uniform per value, and a seed gives the same
    # mask whatever x's dtype.
    size = int(np.prod(x.shape))
    bits = default_generator().bit_generator.random_raw((size + 1) // 2).view(np.uint32)
    keep = (bits[:size] >= np.uint32(min(round(p * 2.0**32), 2**32 - 1))).reshape(x.shape)
    # keep * (1 / (1 - p)) straight into x's dtype: the same values as dividing
    # in float64 and casting, without two float64 temporaries.
    mask = np.multiply(keep, np.dtype(x.dtype).type(1.0 / (1.0 - p)))
    return x * Tensor._wrap(mask)


def batch_norm(input, running_mean, running_var, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel (axis 1) of x (N, C, ...) then scale by weight, shift by bias.

    Training uses the batch's statistics and updates ``running_mean`` and
    ``running_var`` (Tensors, or None) in place with ``momentum``; otherwise the
    running statistics are used.
    """
    x = _tensor(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    # Constants stand in for a missing weight or bias: no gradient is asked of them.
    if weight is None:
        weight = Tensor._wrap(np.ones(channels, dtype=x.dtype))
    if bias is None:
        bias = Tensor._wrap(np.zeros(channels, dtype=x.dtype))
    return _BatchNorm.apply(
        x, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=training, momentum=momentum, eps=eps,
    )


def batch_norm_max_pool2d(input, running_mean, running_var, weight=None, bias=None,
                          training=False, momentum=0.1, eps=1e-5, kernel_size=2, stride=None,
                          padding=0, dilation=1, ceil_mode=False, relu=False):
    """max_pool2d(batch_norm(x, ...), kernel_size, ...), then relu with ``relu=True``:
    the same values, and gradients
    to float rounding, in one node that never writes the normalised activation
    (``engine/batchnorm.py``, BatchNormMaxPool2d) when the compiled loops can take
    x (channels-last, numba installed); the two functions otherwise."""
    x = _tensor(input)
    kernel, stride, padding = _pool_args(kernel_size, stride, padding, dilation)
    dilation = _pair(dilation, "dilation")
    loops = (kernels.for_any_strides(x.data)
             if x.ndim == 4 and _batchnorm.channels_last_matrix(x.data) is not None else None)
    if loops is None:
        y = batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
        y = max_pool2d(y, kernel, stride, padding, dilation, ceil_mode)
        return y.relu() if relu else y
    channels = x.shape[1]
    if weight is None:
        weight = Tensor._wrap(np.ones(channels, dtype=x.dtype))
    if bias is None:
        bias = Tensor._wrap(np.zeros(channels, dtype=x.dtype))
    return _batchnorm.BatchNormMaxPool2d.apply(
        x, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=training, momentum=momentum, eps=eps, kernel=kernel, stride=stride,
        padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode), relu=bool(relu),
        loops=loops)


# --------------------------------------------------------------- embeddings


def _padding_index(padding_idx, num_embeddings):
    """PyTorch's padding_idx rule: None, or an int in [-num_embeddings, num_embeddings),
    a negative one counting from the end."""
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must be within num_embeddings ({num_embeddings}), "
                         f"got {padding_idx}")
    return int(padding_idx) % num_embeddings


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False):
    """Rows of ``weight`` (V, D) at integer indices ``input`` (any shape): (*, D).

    ``padding_idx``'s row gets no gradient. ``max_norm`` first rescales, in
    place, every looked-up row whose ``norm_type``-norm exceeds it.
    """
    indices = _tensor(input, floating=False).data
    _embedding.check_indices(indices, weight.shape[0])
    padding_idx = _padding_index(padding_idx, weight.shape[0])
    if max_norm is not None:
        _embedding.renorm_rows_(weight.data, indices, max_norm, norm_type)
    return _embedding.Embedding.apply(weight, indices=indices, padding_idx=padding_idx,
                                      scale_grad_by_freq=scale_grad_by_freq)


def embedding_bag(input, weight, offsets=None, *, max_norm=None, norm_type=2.0,
                  mode="mean", padding_idx=None):
    """One pooled row of ``weight`` (V, D) per bag of integer indices: (N, D).

    Bags are the rows of a 2-D ``input`` (N, L), or, for a 1-D ``input``, the
    runs that start at each of ``offsets`` (N,). ``mode`` is 'sum', 'mean' or
    'max'; entries equal to ``padding_idx`` are left out of the bag, and a bag
    left empty gives zeros.
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    indices = _tensor(input, floating=False).data
    num_embeddings = weight.shape[0]
    _embedding.check_indices(indices, num_embeddings)
    padding_idx = _padding_index(padding_idx, num_embeddings)
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is "
                             "treated as a mini-batch of fixed length sequences")
        mask = np.ones(indices.shape, dtype=bool)
    elif indices.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        indices, mask = _bags_from_offsets(indices, _tensor(offsets, floating=False).data)
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{indices.ndim}")
    if padding_idx is not None:
        mask &= indices != padding_idx
    if max_norm is not None:
        _embedding.renorm_rows_(weight.data, indices[mask], max_norm, norm_type)
    return _embedding.EmbeddingBag.apply(weight, indices=indices, mask=mask, mode=mode)


def _bags_from_offsets(indices, offsets):
    """1-D indices cut at ``offsets`` -> (N, longest bag) indices and the mask of real entries."""
    offsets = offsets.astype(np.int64).reshape(-1)
    if offsets.size == 0 or offsets[0] != 0 or (np.diff(offsets) < 0).any() \
            or offsets[-1] > len(indices):
        raise ValueError(f"offsets must start at 0, never decrease and stay within the "
                         f"input's {len(indices)} indices, got {offsets.tolist()[:8]}")
    lengths = np.diff(np.r_[offsets, len(indices)])
    width = max(int(lengths.max()), 1)
    mask = np.arange(width) < lengths[:, None]
    padded = np.zeros(mask.shape, dtype=indices.dtype)
    padded[mask] = indices
    return padded, mask

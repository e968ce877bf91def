"""Config -> objects: the dataset, the model (with layer sizes inferred), the
loss, the optimiser and the scheduler.

Layer input sizes (``in_features``, ``in_channels``, ``num_features``) follow
from the shape that arrives at each layer, so nobody computes 64*5*5 by hand;
where a config gives one and it is wrong, the error names the layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import micrograd.nn as mn
from micrograd import losses, optim
from micrograd.config.loader import ConfigError
from micrograd.config.schema import Config
from micrograd.data.pipeline import Splits


class ModelConfigError(ConfigError):
    """A layer list that does not fit the data's shape; names the layer."""


# ------------------------------------------------------------------- data


def build_data(config: Config) -> Splits:
    """Load and split the dataset the config describes, fitting preprocessing on train:
    the data kind that reads ``config.data.type`` does it (``micrograd.data.kinds``)."""
    from micrograd.data.kinds import load_data

    return load_data(config.data)


# ------------------------------------------------------------------ model


@dataclass
class LayerRow:
    """One line of the model summary."""

    index: int
    type: str
    layer: mn.Module
    output_shape: tuple
    params: int


def _fmt(shape):
    return "x".join(str(n) for n in shape)


def build_model(config: Config, input_shape=None,
                max_values=None) -> tuple[mn.Sequential, list[LayerRow]]:
    """The config's layers as a ``Sequential``, each size inferred from the shape
    arriving at it; also returns the summary rows (output shape, parameters).

    ``max_values`` caps the numbers the parameters and buffers would hold,
    checked before anything is allocated (a stored config read from a
    checkpoint must not make us allocate more than the checkpoint holds).
    """
    given, arriving = tuple(config.model.input_shape or ()), tuple(input_shape or ())
    if given and arriving and given != arriving:
        raise ModelConfigError(
            f"model.input_shape: the config gives {_fmt(given)}, but the data produces inputs "
            f"of shape {_fmt(arriving)}; remove input_shape to have it inferred"
        )
    shape = given or arriving
    if not shape:
        raise ModelConfigError(
            "model.input_shape: the data does not imply an input shape; give one, "
            "e.g. input_shape: [1, 28, 28]"
        )
    plans, total = [], 0
    for i, spec in enumerate(config.model.layers):
        where = f"model.layers.{i} ({spec.type})"
        make, shape, values = _plan_layer(spec, shape, where)
        plans.append((i, spec, make, shape))
        total += values
    if max_values is not None and total > max_values:
        raise ModelConfigError(
            f"the model holds {total:,} values in its parameters and buffers, more than the "
            f"{max_values:,} allowed here"
        )
    layers, rows = [], []
    for i, spec, make, shape in plans:
        layer = make()
        layers.append(layer)
        params = sum(p.size for p in layer.parameters())
        rows.append(LayerRow(i, spec.type, layer, shape, params))
    return mn.Sequential(layers), rows


def _plan_layer(spec, shape, where):
    """(a function building the layer, its output shape, the values its parameters
    and buffers hold), without allocating anything yet."""
    t = spec.type
    if t == "linear":
        if len(shape) != 1:
            raise ModelConfigError(
                f"{where}: a linear layer takes a flat vector, but the input arriving there has "
                f"shape {_fmt(shape)}; add a 'flatten' layer before it"
            )
        _check_size(where, "in_features", spec.in_features, shape[0])
        n_in, n_out = shape[0], spec.out_features
        return (lambda: mn.Linear(n_in, n_out, bias=spec.bias), (n_out,),
                n_out * n_in + (n_out if spec.bias else 0))
    if t == "conv2d":
        c, h, w = _image_shape(shape, where)
        _check_size(where, "in_channels", spec.in_channels, c)
        oh = (h + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
        ow = (w + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
        _check_positive(where, (spec.out_channels, oh, ow), shape)
        k, n_out = spec.kernel_size, spec.out_channels
        return (lambda: mn.Conv2d(c, n_out, k, stride=spec.stride, padding=spec.padding,
                                  bias=spec.bias),
                (n_out, oh, ow), n_out * c * k * k + (n_out if spec.bias else 0))
    if t in ("maxpool2d", "avgpool2d"):
        c, h, w = _image_shape(shape, where)
        stride = spec.stride or spec.kernel_size
        oh = (h + 2 * spec.padding - spec.kernel_size) // stride + 1
        ow = (w + 2 * spec.padding - spec.kernel_size) // stride + 1
        _check_positive(where, (c, oh, ow), shape)
        cls = mn.MaxPool2d if t == "maxpool2d" else mn.AvgPool2d
        return lambda: cls(spec.kernel_size, stride=stride, padding=spec.padding), (c, oh, ow), 0
    if t == "flatten":
        return mn.Flatten, (math.prod(shape),), 0
    if t in ("relu", "sigmoid", "tanh"):
        return {"relu": mn.ReLU, "sigmoid": mn.Sigmoid, "tanh": mn.Tanh}[t], shape, 0
    if t in ("softmax", "log_softmax"):
        cls = mn.Softmax if t == "softmax" else mn.LogSoftmax
        # dims count from the sample, as in a config nobody writes the batch axis
        # (so -len(shape) is the first sample dim: one further would be the batch)
        if not -len(shape) <= spec.dim < len(shape):
            raise ModelConfigError(
                f"{where}: dim {spec.dim} is out of range for the input arriving there, of "
                f"shape {_fmt(shape)}; use 0 to {len(shape) - 1} or -1 to -{len(shape)} "
                "(dims count from the sample, without the batch axis)"
            )
        return lambda: cls(dim=spec.dim if spec.dim < 0 else spec.dim + 1), shape, 0
    if t == "dropout":
        return lambda: mn.Dropout(spec.p), shape, 0
    if t == "batchnorm1d":
        if len(shape) != 1:
            raise ModelConfigError(f"{where}: takes a flat vector, got shape {_fmt(shape)}")
        _check_size(where, "num_features", spec.num_features, shape[0])
        c = shape[0]
        # weight, bias, running mean and variance, and the batch count
        return lambda: mn.BatchNorm1d(c, eps=spec.eps, momentum=spec.momentum), shape, 4 * c + 1
    if t == "batchnorm2d":
        c, _, _ = _image_shape(shape, where)
        _check_size(where, "num_features", spec.num_features, c)
        return lambda: mn.BatchNorm2d(c, eps=spec.eps, momentum=spec.momentum), shape, 4 * c + 1
    raise ModelConfigError(f"{where}: unknown layer type {t!r}")  # pragma: no cover


def _image_shape(shape, where):
    if len(shape) != 3:
        raise ModelConfigError(
            f"{where}: expects images (channels x height x width), but the input arriving "
            f"there has shape {_fmt(shape)}"
        )
    return shape


def _check_size(where, key, given, arriving):
    if given is not None and given != arriving:
        raise ModelConfigError(
            f"{where}: {key} is {given}, but the input arriving there has {arriving}; "
            f"remove {key} to have it inferred"
        )


def _check_positive(where, out, shape):
    if min(out) <= 0:
        raise ModelConfigError(
            f"{where}: the input of shape {_fmt(shape)} is too small for this kernel "
            f"(the output would be {_fmt(out)})"
        )


CLASSIFICATION_LOSSES = ("cross_entropy", "bce", "bce_with_logits")


def check_output(config: Config, rows: list[LayerRow], splits: Splits) -> None:
    """The target must fit the task (two classes at least), the loss the task, and
    the last layer's width the task: C classes or 1 regression value."""
    out = rows[-1].output_shape
    pipeline = splits.pipeline
    last = f"model.layers.{len(rows) - 1} ({rows[-1].type})"
    loss = config.loss.type
    csv = config.data.type == "csv"
    if pipeline.task == "classification":
        n = len(pipeline.class_names or [])
        _check_classes(pipeline, splits.y_train, csv)
        if loss not in CLASSIFICATION_LOSSES:
            raise ModelConfigError(
                f"loss: {loss} is a regression loss, but the target is classification "
                f"({n} classes); use cross_entropy"
                + (", or set data.task: regression" if csv else "")
            )
        ok = out in ((n,), (1,)) if n == 2 else out == (n,)
        if not ok:
            raise ModelConfigError(
                f"{last}: the model outputs {_fmt(out)} values per sample, but the data has "
                f"{n} classes; the last layer should output {n}"
                + (" (or 1 probability/logit for two classes)" if n == 2 else "")
            )
        return
    if loss in CLASSIFICATION_LOSSES:
        raise ModelConfigError(
            f"loss: {loss} is a classification loss, but the target is a regression target "
            "(numbers); use mse or l1" + (", or set data.task: classification" if csv else "")
        )
    if out != (1,):
        raise ModelConfigError(
            f"{last}: the model outputs {_fmt(out)} values per sample; a regression target "
            f"needs 1"
        )


def _check_classes(pipeline, y_train, csv: bool) -> None:
    """Classification needs two classes in the training data; one would train a
    model that can only ever answer it (and later crash on the 1-column output)."""
    names = list(pipeline.class_names or [])
    present = [names[i] if 0 <= i < len(names) else str(i)
               for i in np.unique(np.asarray(y_train)).tolist()]
    if len(names) >= 2 and len(present) >= 2:
        return
    target = getattr(pipeline, "target", None)
    key = "data.target" if csv else "data"
    found = ", ".join(repr(c) for c in present[:5]) or "none"
    plural = "class" if len(present) == 1 else "classes"
    raise ModelConfigError(
        f"{key}: the target{f' {target!r}' if target else ''} has only {len(present)} "
        f"{plural} ({found}) in the training data"
        + (f" (of {len(names)} in the data)" if len(names) > len(present) else "")
        + "; classification needs at least 2 classes — check the target column"
        + (", or set data.task: regression" if csv else "")
    )


# ---------------------------------------------------- loss and optimiser


LOSSES = {
    "mse": losses.MSELoss,
    "l1": losses.L1Loss,
    "cross_entropy": losses.CrossEntropyLoss,
    "bce": losses.BCELoss,
    "bce_with_logits": losses.BCEWithLogitsLoss,
}


def build_loss(config: Config):
    return LOSSES[config.loss.type](reduction=config.loss.reduction)


def build_optimizer(config: Config, parameters):
    o = config.optimizer
    params = list(parameters)
    if o.type == "sgd":
        return optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                         weight_decay=o.weight_decay)
    if o.type in ("adam", "adamw"):
        cls = optim.Adam if o.type == "adam" else optim.AdamW
        kwargs = {} if o.weight_decay is None else {"weight_decay": o.weight_decay}
        return cls(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, amsgrad=o.amsgrad,
                   **kwargs)
    return optim.RMSprop(params, lr=o.lr, alpha=o.alpha, eps=o.eps, momentum=o.momentum,
                         centered=o.centered, weight_decay=o.weight_decay)


def build_scheduler(config: Config, optimizer):
    s = config.scheduler
    if s is None:
        return None
    if s.type == "step":
        return optim.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.type == "exponential":
        return optim.ExponentialLR(optimizer, gamma=s.gamma)
    if s.type == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=s.t_max or config.train.epochs,
                                       eta_min=s.eta_min)
    return optim.ReduceLROnPlateau(optimizer, mode="min", factor=s.factor, patience=s.patience,
                                   min_lr=s.min_lr)

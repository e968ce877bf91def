"""Config -> objects: the dataset, the model (with layer sizes inferred), the
loss, the optimiser and the scheduler.

Layer input sizes (``in_features``, ``in_channels``, ``num_features``) follow
from the shape that arrives at each layer, so nobody computes 64*5*5 by hand;
where a config gives one and it is wrong, the error names the layer.
"""
from __future__ import annotations

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


def build_model(config: Config, input_shape=None, max_values=None,
                implied=None) -> tuple[mn.Sequential, list[LayerRow]]:
    """The config's layers as a fused ``Sequential`` (``mn.fuse``), each size inferred
    from the shape arriving at it; also returns the summary rows (output shape,
    parameters), whose layers are the ones the config lists, before fusion.

    Each layer type's class comes from the layer table (``mn.LAYERS``) and plans
    itself for the arriving shape (``cls.plan``). ``max_values`` caps the
    numbers the parameters and buffers would hold, checked before anything is
    allocated (a stored config read from a checkpoint must not make us
    allocate more than the checkpoint holds). ``implied`` holds options the data
    implies (:func:`implied_by`), given to each layer whose config has that key
    and leaves it out: an embedding's ``num_embeddings`` from token-id data.
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
    plans = []
    for i, spec in enumerate(config.model.layers):
        where = f"model.layers.{i} ({spec.type})"
        if spec.type not in mn.LAYERS:  # pragma: no cover (the schema lists the same types)
            raise ModelConfigError(f"{where}: unknown layer type {spec.type!r}")
        try:
            plan = mn.LAYERS[spec.type].plan(shape, **_arguments(spec, implied))
        except mn.LayerShapeError as exc:
            raise ModelConfigError(f"{where}: {exc}") from None
        plans.append((i, spec.type, plan))
        shape = plan.output_shape
    total = sum(plan.values for _, _, plan in plans)
    if max_values is not None and total > max_values:
        raise ModelConfigError(
            f"the model holds {total:,} values in its parameters and buffers, more than the "
            f"{max_values:,} allowed here"
        )
    rows = []
    for i, type_, plan in plans:
        layer = plan.build()
        rows.append(LayerRow(i, type_, layer, plan.output_shape,
                             sum(p.size for p in layer.parameters())))
    return mn.fuse(mn.Sequential([row.layer for row in rows])), rows


def _arguments(spec, implied=None) -> dict:
    """A config section's keys as keyword arguments, less ``type``; a key left at
    None takes what the data implies, else leaves the default (or the inference)
    to the class."""
    given = {k: v for k, v in spec.model_dump(exclude={"type"}).items() if v is not None}
    for key, value in (implied or {}).items():
        if key in type(spec).model_fields and key not in given and value is not None:
            given[key] = value
    return given


def implied_by(pipeline) -> dict:
    """Layer options that the data implies: the number of token ids of a token-id
    dataset is an embedding's ``num_embeddings``."""
    return {"num_embeddings": getattr(pipeline, "num_tokens", None)}


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
    return LOSSES[config.loss.type](**config.loss.options())


def build_optimizer(config: Config, parameters):
    """The optimiser ``optimizer.type`` names (``optim.OPTIMIZERS``), its other keys
    as the constructor's arguments."""
    o = config.optimizer
    return optim.OPTIMIZERS[o.type](list(parameters), **_arguments(o))


def build_scheduler(config: Config, optimizer):
    """The scheduler ``scheduler.type`` names (``optim.SCHEDULERS``), or None; its
    other keys are the constructor's arguments."""
    s = config.scheduler
    if s is None:
        return None
    arguments = _arguments(s)
    if "t_max" in type(s).model_fields:
        # PyTorch's T_max, lower case as every config key; by default the whole run.
        arguments["T_max"] = arguments.pop("t_max", None) or config.train.epochs
    return optim.SCHEDULERS[s.type](optimizer, **arguments)

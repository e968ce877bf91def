"""The layer table: a config's ``type: conv2d`` -> ``mn.Conv2d``, and what a layer
can say about itself before it is built.

Each layer class registers beside its definition (``@register_layer("linear")``,
as Ludwig's ``@register_encoder``) and answers ``cls.plan(in_shape, **options)``:
for the shape of one sample arriving at it (no batch axis) and the options a
config gives (its keys, less ``type``), a ``LayerPlan`` with the output shape,
the number of values its parameters and buffers will hold, and a function that
builds it. The plan infers what the shape implies (``in_features``,
``in_channels``, ``num_features``) and raises ``LayerShapeError`` for a shape
the layer cannot take, before anything is allocated. ``build_model``, the
summary and the checkpoint size guard read this table and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: The config's layer ``type`` -> the layer class.
LAYERS: dict[str, type] = {}


class LayerShapeError(ValueError):
    """An input shape (or option) a layer cannot take; the message names neither the
    layer nor its place, which the caller adds."""


@dataclass(frozen=True)
class LayerPlan:
    """What a layer will be for one arriving sample shape, before it is built."""

    output_shape: tuple
    values: int            # numbers its parameters and buffers hold
    build: Callable        # () -> the layer


def register_layer(name: str):
    """Class decorator: ``type: name`` in a config builds this layer."""
    def register(cls):
        if name in LAYERS:
            raise ValueError(f"layer type {name!r} is already registered to "
                             f"{LAYERS[name].__name__}")
        if not callable(getattr(cls, "plan", None)):
            raise TypeError(f"{cls.__name__} has no plan(in_shape, **options) classmethod")
        LAYERS[name] = cls
        return cls
    return register


def layer_class(name: str) -> type:
    """The layer class registered as ``name``; KeyError naming the known ones."""
    try:
        return LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown layer type {name!r}; known: {', '.join(sorted(LAYERS))}") \
            from None


# --------------------------------------------- helpers the layers' plans share


def fmt(shape) -> str:
    return "x".join(str(n) for n in shape)


def same_shape(cls, in_shape) -> LayerPlan:
    """The plan of a layer without options that keeps its input's shape and holds
    nothing: ``plan = classmethod(same_shape)``."""
    return LayerPlan(tuple(in_shape), 0, cls)


def flat_features(in_shape, what: str) -> int:
    if len(in_shape) != 1:
        raise LayerShapeError(
            f"{what} takes a flat vector, but the input arriving there has shape "
            f"{fmt(in_shape)}; add a 'flatten' layer before it")
    return in_shape[0]


def image_shape(in_shape) -> tuple:
    if len(in_shape) != 3:
        raise LayerShapeError(
            f"expects images (channels x height x width), but the input arriving there has "
            f"shape {fmt(in_shape)}")
    return tuple(in_shape)


def check_size(key: str, given, arriving: int) -> int:
    """``arriving``, unless an option gives another value for it."""
    if given is not None and given != arriving:
        raise LayerShapeError(
            f"{key} is {given}, but the input arriving there has {arriving}; "
            f"remove {key} to have it inferred")
    return arriving


def check_positive(out, in_shape) -> tuple:
    if min(out) <= 0:
        raise LayerShapeError(
            f"the input of shape {fmt(in_shape)} is too small for this kernel "
            f"(the output would be {fmt(out)})")
    return tuple(out)

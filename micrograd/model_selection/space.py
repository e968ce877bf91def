"""A search space: which config values a hyperparameter search varies, and over what.

A space file is YAML mapping config key paths (the paths ``--set`` takes) to
a distribution:

    optimizer.lr: {type: float, low: 1e-4, high: 1e-1, log: true}
    train.batch_size: {type: int, low: 16, high: 128, step: 16}
    model.layers.0.out_features: {type: int, low: 8, high: 64, log: true}
    optimizer.type: {type: categorical, choices: [adam, sgd]}
    optimizer.weight_decay: [0.0, 1e-4, 1e-2]     # a bare list: categorical

It is validated like a config (unknown keys and types get the line and a "did
you mean"), and then against the config it will vary: every key path must
exist there, and every bound and choice must be a value the config schema
accepts. Problems are one :class:`~micrograd.config.loader.ConfigError`.
"""
from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictFloat, \
    StrictInt, ValidationError, model_validator

from micrograd.config.loader import (ConfigError, MAX_ECHO, _line_of, _short, load_config,
                                     read_yaml, to_plain)

__all__ = ["FloatParam", "IntParam", "CategoricalParam", "SearchSpace", "load_space"]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatParam(_Param):
    """A float in [low, high], uniform or (``log``) log-uniform, optionally on a ``step`` grid."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Optional[Annotated[float, Field(gt=0)]] = None

    @model_validator(mode="after")
    def _bounds(self):
        _check_bounds(self.low, self.high)
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got low {self.low})")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be used together")
        return self

    def values(self):
        return [self.low, self.high]


class IntParam(_Param):
    """An integer in [low, high] (both included) on a ``step`` grid, or log-uniform."""

    type: Literal["int"]
    low: StrictInt
    high: StrictInt
    step: Annotated[StrictInt, Field(ge=1)] = 1
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self):
        _check_bounds(self.low, self.high)
        if self.log and self.low < 1:
            raise ValueError(f"log: true needs low >= 1 (got low {self.low})")
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be used together")
        return self

    def values(self):
        return [self.low, self.low + (self.high - self.low) // self.step * self.step]


Choice = Union[StrictBool, StrictInt, StrictFloat, str, None, list, dict]


class CategoricalParam(_Param):
    """One of ``choices``: strings, numbers, booleans or null, or whole sections (a
    list of layers, a mapping) for a key path that names a section, which is how a
    search varies the number of layers: ``model.layers: [[...], [...]]``."""

    type: Literal["categorical"]
    choices: Annotated[list[Choice], Field(min_length=1)]

    def values(self):
        return list(self.choices)

    @property
    def structured(self) -> bool:
        return any(isinstance(c, (list, dict)) for c in self.choices)

    def options(self) -> list:
        """The choices as optuna takes them: sections as their JSON text."""
        return [json.dumps(c) for c in self.choices] if self.structured else list(self.choices)

    def decode(self, option):
        return json.loads(option) if self.structured else option


def _check_bounds(low, high):
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite numbers")
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]
TYPES = ("float", "int", "categorical")


class SearchSpace(RootModel[dict[str, Param]]):
    """Key path -> distribution, in the file's order."""

    @property
    def params(self) -> dict:
        return self.root

    def grid(self) -> Optional[dict]:
        """Every parameter's values when all are finite (categorical or stepped), else None."""
        grid = {}
        for key, p in self.root.items():
            if isinstance(p, CategoricalParam):
                grid[key] = p.options()
            elif isinstance(p, IntParam) and not p.log:
                grid[key] = list(range(p.low, p.high + 1, p.step))
            elif isinstance(p, FloatParam) and p.step is not None:
                n = int(math.floor((p.high - p.low) / p.step + 1e-9))
                grid[key] = [round(p.low + i * p.step, 12) for i in range(n + 1)]
            else:
                return None
        return grid

    def suggest(self, trial) -> dict:
        """An optuna trial's values for every parameter."""
        out = {}
        for key, p in self.root.items():
            if isinstance(p, FloatParam):
                out[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                out[key] = trial.suggest_int(key, p.low, p.high, step=p.step, log=p.log)
            else:
                out[key] = p.decode(trial.suggest_categorical(key, p.options()))
        return out

    def decode(self, params: dict) -> dict:
        """A trial's stored parameters as config values (sections back from their JSON)."""
        return {key: (self.root[key].decode(value)
                      if isinstance(self.root.get(key), CategoricalParam) else value)
                for key, value in params.items()}


def overrides(values: dict) -> list[str]:
    """``--set`` strings for sampled values (JSON is YAML, so each reads back exactly)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


# ------------------------------------------------------------------ loading


def load_space(path, config_path=None, config_overrides=()) -> SearchSpace:
    """Read and validate a space file; with ``config_path``, also check every key path and
    bound against that config. Raises ConfigError naming the line."""
    path = Path(path)
    data, tree = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of config key paths to distributions, "
                          "e.g. 'optimizer.lr: {type: float, low: 1e-4, high: 1e-1, log: true}'.")
    data = {str(k): ({"type": "categorical", "choices": v} if isinstance(v, list) else v)
            for k, v in data.items()}
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, data, str(path), tree)) from None
    if config_path is not None:
        check_against(space, config_path, config_overrides, str(path), tree)
    return space


def _format(exc: ValidationError, data: dict, source: str, tree) -> str:
    lines, errors = [], exc.errors()
    for err in errors:
        loc, kind = err["loc"], err["type"]
        key = str(loc[0]) if loc else ""
        field = [str(p) for p in loc[1:] if str(p) not in TYPES]
        where = ".".join([key] + field) if key else "(top level)"
        line = _line_of(tree, loc)
        at = f"{source}, line {line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            tag = data.get(key, {}).get("type") if isinstance(data.get(key), dict) else None
            model = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}.get(tag)
            allowed = [f for f in model.model_fields if f != "type"] if model else []
            name = _short(str(loc[-1]))
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            msg = f"unknown key '{name}'" + (f" — did you mean '{close[0]}'?" if close else
                                             f" (expected one of: {', '.join(allowed)})")
        elif kind == "union_tag_invalid":
            given = _short(str(err["ctx"].get("tag", "")))
            close = difflib.get_close_matches(given, TYPES, n=1, cutoff=0.5)
            msg = f"unknown type {given!r}" + (f" — did you mean '{close[0]}'?" if close else
                                               f"; expected one of {', '.join(TYPES)}")
        elif kind == "union_tag_not_found":
            msg = f"needs a 'type' key: one of {', '.join(TYPES)}"
        elif kind == "model_attributes_type" or kind == "dict_type":
            msg = ("expected a distribution such as {type: float, low: 0.001, high: 0.1} or a "
                   f"list of choices (got {_short(repr(err.get('input')), MAX_ECHO)})")
        elif kind == "missing":
            msg = "required key is missing"
        elif "input" in err:
            msg += f" (got {_short(repr(err['input']))})"
        lines.append(f"{_short(where, 2 * MAX_ECHO)} [{at}]: {msg}")
    head = f"{source}: {len(errors)} problem{'s' if len(errors) > 1 else ''} in the search space:"
    return "\n".join([head] + [f"  - {line}" for line in lines[:20]])


def _key_line(tree, key: str):
    return _line_of(tree, [key])


def check_against(space: SearchSpace, config_path, config_overrides, source: str, tree) -> None:
    """Every key path must exist in the config, and every bound or choice must be a value
    the config schema accepts there."""
    config = load_config(config_path, config_overrides)
    plain = to_plain(config)
    problems = []
    for key, param in space.params.items():
        line = _key_line(tree, key)
        at = f"{source}, line {line}" if line else source
        section = isinstance(param, CategoricalParam) and param.structured
        missing = _missing(plain, key, section_ok=section)
        if missing:
            problems.append(f"{key} [{at}]: {missing}")
            continue
        for value in param.values():
            setting = overrides({key: value})[0]
            try:
                load_config(config_path, list(config_overrides) + [setting])
            except ConfigError as exc:
                why = str(exc).split("\n")
                reason = why[1].strip(" -") if len(why) > 1 else why[0]
                problems.append(f"{key} [{at}]: the config refuses {key}={_short(repr(value))}: "
                                f"{reason}")
                break
    if problems:
        head = (f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''} against "
                f"{config_path}:")
        raise ConfigError("\n".join([head] + [f"  - {p}" for p in problems[:20]]))


def _missing(plain, key: str, section_ok: bool = False) -> Optional[str]:
    """Why ``key`` names nothing in the config's plain data, or None when it names a value."""
    node, walked = plain, []
    for part in key.split("."):
        here = ".".join(walked) or "the config"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return (f"{here} is a list of {len(node)}; '{_short(part)}' is not an item of it "
                        f"(items are numbered from 0)")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                close = difflib.get_close_matches(part, list(node), n=1, cutoff=0.6)
                return (f"'{_short(part)}' is not a key of {here} in the config" +
                        (f" — did you mean '{'.'.join(walked + [close[0]])}'?" if close else
                         f" (its keys: {', '.join(map(str, node))})"))
            node = node[part]
        else:
            return f"{here} is a value, not a section: '{_short(part)}' is not in it"
        walked.append(part)
    if isinstance(node, (dict, list)) and not section_ok:
        return f"{key} is a section of the config, not a value; name a key inside it"
    return None
